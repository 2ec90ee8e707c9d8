package release

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

const (
	repository = "acme/gantry"
	linuxAsset = "gantry_linux_amd64.tar.gz"
	// standIn is the "gantry" executable inside the test release archives.
	standIn = "#!/bin/sh\necho \"gantry stand-in $*\"\n"
	// secretToken must never reach a server other than github.com, nor the
	// log, nor a command line.
	secretToken = "ghs_testtoken0123456789"
	// release is the version the test checkouts' VERSION files name.
	release = "v1.2.3"
	// warningPrefix starts the one line of a fallback warning.
	warningPrefix = "::warning title=gantry install::"
	errorPrefix   = "::error title=gantry install::"
	// unresolvable is a host no resolver knows (RFC 6761 reserves .invalid).
	unresolvable = "http://gantry-release-mirror.invalid"
)

// releaseServer serves GitHub-style release downloads,
// /<owner>/<repo>/releases/download/<tag>/<asset>, and records what was
// asked. Like GitHub's immutable releases it has no moving release (v1, v1.2
// are git tags only) and a published release never changes: publish refuses
// a tag twice, and only tamper (a mirror or proxy altering a download)
// changes a served file.
type releaseServer struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte // "<tag>/<asset>" → content
	tags   map[string]bool
	status int // when non-zero, every request gets this status
	flaky  int // this many requests get 503 before any succeeds
	// prefix is the path the server serves releases under ("" or a mirror's
	// /sub/path).
	prefix   string
	requests []string
	authSeen []string
}

func newReleaseServer(t *testing.T) *releaseServer {
	t.Helper()
	s := &releaseServer{files: map[string][]byte{}, tags: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *releaseServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.URL.Path)
	if a := r.Header.Get("Authorization"); a != "" {
		s.authSeen = append(s.authSeen, a)
	}
	if s.status != 0 {
		http.Error(w, "injected failure", s.status)
		return
	}
	if s.flaky > 0 {
		s.flaky--
		http.Error(w, "injected transient failure", http.StatusServiceUnavailable)
		return
	}
	prefix := s.prefix + "/" + repository + "/releases/download/"
	body, ok := s.files[strings.TrimPrefix(r.URL.Path, prefix)]
	if !strings.HasPrefix(r.URL.Path, prefix) || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(body)
}

// publish adds an immutable release with one archive per asset name and a
// checksums.txt listing them all.
func (s *releaseServer) publish(t *testing.T, tag string, assets ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tags[tag] {
		t.Fatalf("release %s is already published; releases are immutable", tag)
	}
	s.tags[tag] = true
	var sums strings.Builder
	for _, name := range assets {
		var body []byte
		if strings.HasSuffix(name, ".zip") {
			body = zipArchive(t, "gantry.exe", standIn)
		} else {
			body = tarArchive(t, "gantry", standIn)
		}
		s.files[tag+"/"+name] = body
		sum := sha256.Sum256(body)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	}
	s.files[tag+"/checksums.txt"] = []byte(sums.String())
}

// tamper replaces what the server sends for path: a mirror or proxy that
// alters a download, which a real immutable release never does.
func (s *releaseServer) tamper(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
}

func (s *releaseServer) get(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path]
}

func (s *releaseServer) failWith(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// takeRequests returns the paths requested since the last call.
func (s *releaseServer) takeRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}

func tarArchive(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	files := []struct {
		name, body string
		mode       int64
	}{
		{name, content, 0o755},
		{"README.md", "# gantry\n", 0o644},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipArchive(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hangingServer accepts connections and never answers: a proxy or mirror
// that hangs. It returns its base URL.
func hangingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// closedPort returns the base URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// newSrc returns a gantry checkout for GANTRY_SRC_DIR: a go.mod and, when
// versionFile is not nil, a VERSION file with exactly that content.
func newSrc(t *testing.T, versionFile *string) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module github.com/gantry-dev/gantry\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if versionFile != nil {
		if err := os.WriteFile(filepath.Join(src, "VERSION"), []byte(*versionFile), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// file returns a pointer to content, for newSrc.
func file(content string) *string { return &content }

// runner is one simulated job: its own temp dir, outputs and PATH file, and a
// tool cache that may be shared with later jobs.
type runner struct {
	script    string
	toolCache string
	temp      string
	output    string
	path      string
	env       map[string]string
}

func newRunner(t *testing.T, s *releaseServer, toolCache string) *runner {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if toolCache == "" {
		toolCache = t.TempDir()
	}
	dir := t.TempDir()
	r := &runner{
		script:    script,
		toolCache: toolCache,
		temp:      filepath.Join(dir, "temp"),
		output:    filepath.Join(dir, "github_output"),
		path:      filepath.Join(dir, "github_path"),
	}
	if err := os.Mkdir(r.temp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{r.output, r.path} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.env = map[string]string{
		"GITHUB_ACTIONS":           "true",
		"RUNNER_OS":                "Linux",
		"RUNNER_ARCH":              "X64",
		"RUNNER_TOOL_CACHE":        r.toolCache,
		"RUNNER_TEMP":              r.temp,
		"GITHUB_OUTPUT":            r.output,
		"GITHUB_PATH":              r.path,
		"GANTRY_ACTION_REPOSITORY": repository,
		"GITHUB_TOKEN":             secretToken,
	}
	if s != nil {
		r.env["GANTRY_RELEASE_BASE_URL"] = s.URL
	}
	return r
}

// newJob returns a runner for a later job on the same machine: same tool
// cache, fresh temp dir and outputs.
func (r *runner) newJob(t *testing.T, s *releaseServer) *runner {
	t.Helper()
	next := newRunner(t, s, r.toolCache)
	next.script = r.script
	perJob := map[string]string{"RUNNER_TEMP": next.temp, "GITHUB_OUTPUT": next.output, "GITHUB_PATH": next.path}
	maps.Copy(next.env, r.env)
	maps.Copy(next.env, perJob)
	return next
}

// baseURL is the release base URL the runner's install step is given.
func (r *runner) baseURL() string {
	if u := r.env["GANTRY_INPUT_RELEASE_BASE_URL"]; u != "" {
		return u
	}
	return r.env["GANTRY_RELEASE_BASE_URL"]
}

// run executes install.sh with the runner's environment (anything the test
// process has from a real runner, and any proxy, removed) and returns its
// log and outputs.
func (r *runner) run(t *testing.T, args ...string) (string, map[string]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{r.script}, args...)...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "RUNNER_") || strings.HasPrefix(k, "GANTRY_") ||
			strings.HasPrefix(k, "GH_") || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), r.outputs(t), err
}

func (r *runner) outputs(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(r.output)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("GITHUB_OUTPUT line %q is not name=value", sc.Text())
		}
		got[k] = v
	}
	return got
}

func (r *runner) pathEntries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// withPath puts dir first on the runner's PATH.
func (r *runner) withPath(dir string) {
	r.env["PATH"] = dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// minimalPath gives the runner a PATH of only the tools install.sh uses, so
// that no gh is on it whatever the machine has.
func (r *runner) minimalPath(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range []string{"bash", "cat", "tr", "awk", "sort", "grep", "head", "tail", "wc", "mktemp", "rm", "mkdir", "mv", "chmod", "dirname", "tar", "gzip", "sha256sum", "curl", "go", "unzip"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			if tool == "go" || tool == "unzip" {
				continue
			}
			t.Fatalf("%s is not on PATH", tool)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	r.env["PATH"] = dir
}

// fakeGH is a stand-in gh on PATH: it records each call's argv and the
// environment gh reads, and answers `attestation verify` with pass or fail.
type fakeGH struct{ dir string }

// newFakeGH writes the stand-in; mode is "pass", "fail" or "old" (a gh
// without the attestation command).
func newFakeGH(t *testing.T, r *runner, mode string) *fakeGH {
	t.Helper()
	g := &fakeGH{dir: t.TempDir()}
	bin := filepath.Join(g.dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/bin/sh
log=%[1]q
mode=%[2]q
for a in "$@"; do printf '%%s\n' "$a"; done >>"$log/argv"
echo "--" >>"$log/argv"
if [ "$1" = attestation ] && [ "$mode" = old ]; then
	echo 'unknown command "attestation" for "gh"' >&2
	exit 1
fi
case "$*" in
"attestation verify --help") exit 0 ;;
"attestation verify "*)
	printf 'GH_TOKEN=%%s\nGH_HOST=%%s\n' "$GH_TOKEN" "$GH_HOST" >"$log/env"
	sha256sum <"$3" | cut -d' ' -f1 >"$log/verified-sum"
	if [ "$mode" = fail ]; then
		echo 'Loaded digest sha256:0000 for file://x'
		echo 'Error: verifying with issuer "sigstore.dev": no attestations matched the policy' >&2
		exit 1
	fi
	echo 'Verification succeeded!'
	exit 0
	;;
esac
exit 2
`, g.dir, mode)
	if err := os.WriteFile(filepath.Join(bin, "gh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r.withPath(bin)
	return g
}

// calls returns the argv of every call, in order.
func (g *fakeGH) calls(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir, "argv"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls [][]string
	var cur []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "--" {
			calls = append(calls, cur)
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	return calls
}

// verifyCalls returns the calls that verified a file (not the --help probe).
func (g *fakeGH) verifyCalls(t *testing.T) [][]string {
	t.Helper()
	var v [][]string
	for _, c := range g.calls(t) {
		if len(c) > 2 && c[0] == "attestation" && c[1] == "verify" && c[2] != "--help" {
			v = append(v, c)
		}
	}
	return v
}

func (g *fakeGH) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// runBinary runs an installed gantry and returns its output.
func runBinary(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("running %s: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func cacheKey(t *testing.T, s *releaseServer, tag, asset string) string {
	t.Helper()
	return tag + "-" + sha256Hex(s.get(tag + "/" + asset))[:12]
}

func checksumsPath(tag string) string {
	return "/" + repository + "/releases/download/" + tag + "/checksums.txt"
}
func assetPath(tag, asset string) string {
	return "/" + repository + "/releases/download/" + tag + "/" + asset
}

// assertNothingInstalled fails when the tool cache holds any gantry copy.
func assertNothingInstalled(t *testing.T, r *runner) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(r.toolCache, "gantry"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("tool cache has %v, want nothing installed", names)
	}
}

// linesWith returns the log lines that start with prefix.
func linesWith(log, prefix string) []string {
	var got []string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, prefix) {
			got = append(got, l)
		}
	}
	return got
}

// built are the outputs of a run that leaves gantry to be built from the
// checkout (its VERSION stamped in).
var built = map[string]string{"need-build": "true", "need-go": "false", "bin": "{temp}/gantry-src-build/gantry", "version": release}

// fallbackWarning is what every download-failure warning says besides the
// URL and the failure.
var fallbackWarning = []string{
	"building gantry " + release + " from this action's own source instead",
	"set the action's release-base-url input (or the GANTRY_RELEASE_BASE_URL variable)",
	"/" + repository + "/releases/download/" + release + "/",
}

func TestInstall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// ref is GANTRY_ACTION_REF; versionFile the checkout's VERSION
		// (nil: none); env adds or overrides variables.
		ref         string
		versionFile *string
		env         map[string]string
		args        []string
		// setup publishes releases and may run earlier jobs; it returns the
		// runner for the run under test.
		setup func(t *testing.T, s *releaseServer, r *runner) *runner
		// wantErr is a substring of the one ::error line of a run that must
		// fail (and write no outputs).
		wantErr string
		// want are outputs the run must write; "{cache}" and "{temp}" stand
		// for the runner's tool cache and temp dir.
		want         map[string]string
		wantRequests []string
		// wantWarning are substrings of the run's one ::warning line
		// ("{base}": the release base URL); nil: no warning at all.
		wantWarning []string
		check       func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string)
	}{
		// --- the exact version of a release commit ---------------------------
		{
			name:        "release commit at v1.2.3 downloads, verifies and installs v1.2.3",
			ref:         "v1.2.3",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset, "gantry_windows_amd64.zip")
				return r
			},
			want:         map[string]string{"need-build": "false", "need-go": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				wantBin := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, release, linuxAsset), "amd64", "gantry")
				if out["bin"] != wantBin {
					t.Errorf("bin = %q, want %q", out["bin"], wantBin)
				}
				if got := runBinary(t, out["bin"], "version"); got != "gantry stand-in version" {
					t.Errorf("installed binary printed %q", got)
				}
				if !strings.Contains(log, "verified sha256") {
					t.Errorf("log does not mention the verification:\n%s", log)
				}
				if p := r.pathEntries(t); len(p) != 0 {
					t.Errorf("GITHUB_PATH = %v without --add-path", p)
				}
			},
		},
		{
			name:         "major tag v1 installs the exact release its commit names",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			setup:        publish(release, linuxAsset),
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check:        logHas("action ref v1 is release v1.2.3 (its VERSION file)"),
		},
		{
			name:         "minor tag v1.2 installs the exact release its commit names",
			ref:          "v1.2",
			versionFile:  file("v1.2.3\n"),
			setup:        publish(release, linuxAsset),
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
		},
		{
			name:         "full SHA of a release commit installs its release",
			ref:          "0123456789abcdef0123456789abcdef01234567",
			versionFile:  file("v1.2.3"), // no final newline: also one line
			setup:        publish(release, linuxAsset),
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
		},
		{
			name:         "pre-release commit installs its pre-release",
			ref:          "v2.0.0-rc.1",
			versionFile:  file("v2.0.0-rc.1\n"),
			setup:        publish("v2.0.0-rc.1", linuxAsset),
			want:         map[string]string{"need-build": "false", "version": "v2.0.0-rc.1"},
			wantRequests: []string{checksumsPath("v2.0.0-rc.1"), assetPath("v2.0.0-rc.1", linuxAsset)},
		},
		{
			name:        "ref and repository derived from the action path",
			ref:         "",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_ACTION_REPOSITORY": ""},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				// The runner unpacks uses: acme/gantry/actions/deploy@v1
				// into _actions/acme/gantry/v1.
				root := filepath.Join(t.TempDir(), "_actions", "acme", "gantry", "v1")
				script := filepath.Join(root, "scripts", "install.sh")
				if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(r.script)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(script, b, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "VERSION"), []byte(release+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				delete(r.env, "GANTRY_SRC_DIR")
				r.script = script
				return r
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check:        logHas("action ref v1 of acme/gantry taken from the action path", "action ref v1 is release v1.2.3"),
		},

		// --- no VERSION: build from source -----------------------------------
		{
			name:         "branch ref builds from source",
			ref:          "main",
			want:         map[string]string{"need-build": "true", "need-go": "false", "bin": "{temp}/gantry-src-build/gantry", "version": "main"},
			wantRequests: nil,
			check:        logHas("ref main is not a release commit (no VERSION file"),
		},
		{
			name:         "a tag without VERSION builds from source: v1 has no release to download",
			ref:          "v1",
			setup:        publish(release, linuxAsset),
			want:         map[string]string{"need-build": "true", "version": "v1"},
			wantRequests: nil,
		},
		{
			name:         "commit SHA ref builds from source",
			ref:          "0123456789abcdef0123456789abcdef01234567",
			want:         map[string]string{"need-build": "true", "version": "0123456789abcdef0123456789abcdef01234567"},
			wantRequests: nil,
		},
		{
			name:         "empty ref (local action) builds from source",
			ref:          "",
			env:          map[string]string{"GANTRY_ACTION_REPOSITORY": ""},
			want:         map[string]string{"need-build": "true", "bin": "{temp}/gantry-src-build/gantry", "version": "dev"},
			wantRequests: nil,
			check:        logHas("no VERSION file and no action ref"),
		},
		{
			name:         "unknown architecture builds from source without asking the server",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			env:          map[string]string{"RUNNER_ARCH": "ARM"},
			setup:        publish(release, linuxAsset),
			want:         built,
			wantRequests: nil,
			check:        logHas("no release binary for Linux/ARM"),
		},
		{
			name:  "need-go when the go on PATH is older than go.mod",
			ref:   "main",
			setup: fakeGo("go1.20.14"),
			want:  map[string]string{"need-build": "true", "need-go": "true"},
		},

		// --- a VERSION file that is not one release line ------------------------
		{name: "VERSION naming a major tag is refused", ref: "v1", versionFile: file("v1\n"), wantErr: "holds 'v1', not one line vX.Y.Z"},
		{name: "VERSION without the v is refused", ref: "v1", versionFile: file("1.2.3\n"), wantErr: "holds '1.2.3', not one line vX.Y.Z"},
		{name: "VERSION of two lines is refused", ref: "v1", versionFile: file("v1.2.3\nv1.2.4\n"), wantErr: "not one line vX.Y.Z"},
		{name: "VERSION with a CR is refused", ref: "v1", versionFile: file("v1.2.3\r\n"), wantErr: "holds 'v1.2.3?', not one line vX.Y.Z"},
		{name: "VERSION with a blank line is refused", ref: "v1", versionFile: file("v1.2.3\n\n"), wantErr: "not one line vX.Y.Z"},
		{name: "VERSION with spaces is refused", ref: "v1", versionFile: file(" v1.2.3\n"), wantErr: "not one line vX.Y.Z"},
		{name: "empty VERSION is refused", ref: "v1", versionFile: file(""), wantErr: "holds '', not one line vX.Y.Z"},
		{name: "VERSION with a path is refused", ref: "v1", versionFile: file("v1.2.3/../../x\n"), wantErr: "not one line vX.Y.Z"},
		{name: "oversized VERSION is refused", ref: "v1", versionFile: file(strings.Repeat("v1.2.3", 20)), wantErr: "holds 120 bytes"},

		// --- the tool cache -----------------------------------------------------
		{
			name:        "release cached by an earlier job is re-hashed against checksums.txt",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				mustRun(t, r)
				s.takeRequests()
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				for _, want := range []string{"cache hit", "re-hashed against sha256", "only checksums.txt downloaded"} {
					if !strings.Contains(log, want) {
						t.Errorf("log does not say %q:\n%s", want, log)
					}
				}
				if got := runBinary(t, out["bin"]); got != "gantry stand-in" {
					t.Errorf("cached binary printed %q", got)
				}
			},
		},
		{
			name:        "a replaced cached binary is downloaded again",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				mustRun(t, r)
				s.takeRequests()
				bin := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, release, linuxAsset), "amd64", "gantry")
				if err := os.WriteFile(bin, []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "is not the one in its release archive") || !strings.Contains(log, "downloading it again") {
					t.Errorf("log does not report the failed re-hash:\n%s", log)
				}
				if got := runBinary(t, out["bin"]); got != "gantry stand-in" {
					t.Errorf("binary printed %q, want the release's", got)
				}
			},
		},
		{
			name:        "a poisoned cache (archive and binary replaced together) is downloaded again",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				mustRun(t, r)
				s.takeRequests()
				dir := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, release, linuxAsset), "amd64")
				evil := "#!/bin/sh\necho evil\n"
				if err := os.WriteFile(dir+".tar.gz", tarArchive(t, "gantry", evil), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "gantry"), []byte(evil), 0o755); err != nil {
					t.Fatal(err)
				}
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "does not match checksums.txt (its archive has sha256") {
					t.Errorf("log does not report the failed re-hash:\n%s", log)
				}
				if got := runBinary(t, out["bin"]); got != "gantry stand-in" {
					t.Errorf("binary printed %q, want the release's", got)
				}
			},
		},
		{
			name:        "a replaced binary resolved earlier in the same job is downloaded again",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				out := mustRun(t, r)
				s.takeRequests()
				if err := os.WriteFile(out["bin"], []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return r
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if got := runBinary(t, out["bin"]); got != "gantry stand-in" {
					t.Errorf("binary printed %q, want the release's", got)
				}
			},
		},
		{
			name:        "a release resolved earlier in the same job downloads nothing",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				mustRun(t, r)
				s.takeRequests()
				return r
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: nil,
			check:        logHas("cache hit", "resolved earlier in this job, nothing downloaded"),
		},

		// --- tampering: fail, never build around it ------------------------------
		{
			name:        "checksum mismatch fails at once, installs and builds nothing",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				s.tamper(release+"/"+linuxAsset, tarArchive(t, "gantry", "#!/bin/sh\necho tampered\n"))
				return r
			},
			wantErr:      "checksum mismatch for " + linuxAsset + " of gantry v1.2.3: expected sha256 ",
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				assertNothingInstalled(t, r)
				if !strings.Contains(log, "nothing installed and nothing built") {
					t.Errorf("the error does not say nothing was built:\n%s", log)
				}
			},
		},
		{
			name:        "missing checksum entry fails before downloading the archive",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, "gantry_darwin_arm64.tar.gz")
				return r
			},
			wantErr:      "checksums.txt of gantry v1.2.3 (acme/gantry) has no entry for " + linuxAsset,
			wantRequests: []string{checksumsPath(release)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				assertNothingInstalled(t, r)
			},
		},
		{
			name:        "malformed sum in checksums.txt fails",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release)
				s.tamper(release+"/checksums.txt", []byte("abc%0A::set-output  "+linuxAsset+"\n"))
				return r
			},
			wantErr:      "checksums.txt of gantry v1.2.3 (acme/gantry) has a malformed sum for " + linuxAsset + ": abc%250a::set-output",
			wantRequests: []string{checksumsPath(release)},
		},
		{
			name:        "an asset listed twice with different sums fails",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				sums := string(s.get(release + "/checksums.txt"))
				s.tamper(release+"/checksums.txt", []byte(sums+strings.Repeat("0", 64)+"  "+linuxAsset+"\n"))
				return r
			},
			wantErr:      "lists " + linuxAsset + " more than once with different sums",
			wantRequests: []string{checksumsPath(release)},
		},

		// --- the release cannot be downloaded: build from source, warn -----------
		{
			name:        "DNS failure builds from source with a warning",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_RELEASE_BASE_URL": unresolvable, "GANTRY_INSTALL_RETRIES": "0"},
			want:        built,
			wantWarning: []string{"could not download gantry v1.2.3 from {base}/acme/gantry/releases/download/v1.2.3/checksums.txt: ", "gantry-release-mirror.invalid (curl exit 6)"},
		},
		{
			name:        "connection refused builds from source with a warning",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_INSTALL_RETRIES": "0"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				r.env["GANTRY_RELEASE_BASE_URL"] = closedPort(t)
				return r
			},
			want:        built,
			wantWarning: []string{"could not download gantry v1.2.3 from {base}/acme/gantry/releases/download/v1.2.3/checksums.txt: ", "(curl exit 7)"},
		},
		{
			name:        "a server that never answers times out and builds from source",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_INSTALL_RETRIES": "0", "GANTRY_INSTALL_MAX_TIME": "1"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				r.env["GANTRY_RELEASE_BASE_URL"] = hangingServer(t)
				return r
			},
			want:        built,
			wantWarning: []string{"could not download gantry v1.2.3 from {base}/acme/gantry/releases/download/v1.2.3/checksums.txt: ", "timed out", "(curl exit 28)"},
		},
		{
			name:         "HTTP 5xx is retried, then builds from source",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			env:          map[string]string{"GANTRY_INSTALL_RETRIES": "1"},
			setup:        failWith(http.StatusBadGateway),
			want:         built,
			wantRequests: []string{checksumsPath(release), checksumsPath(release)},
			wantWarning:  []string{"could not download gantry v1.2.3 from {base}/acme/gantry/releases/download/v1.2.3/checksums.txt: HTTP 502;"},
		},
		{
			name:         "HTTP 403 (rate limit, blocked) builds from source",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			setup:        failWith(http.StatusForbidden),
			want:         built,
			wantRequests: []string{checksumsPath(release)},
			wantWarning:  []string{"checksums.txt: HTTP 403;"},
		},
		{
			name:         "a release missing from the server (HTTP 404) builds from source",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			want:         built,
			wantRequests: []string{checksumsPath(release)},
			wantWarning:  []string{"could not download gantry v1.2.3 from {base}/acme/gantry/releases/download/v1.2.3/checksums.txt: HTTP 404;"},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				assertNothingInstalled(t, r)
			},
		},
		{
			name:        "an archive missing from the release (HTTP 404) builds from source",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"RUNNER_OS": "macOS", "RUNNER_ARCH": "X64"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset, "gantry_darwin_arm64.tar.gz")
				s.tamper(release+"/checksums.txt", append(s.get(release+"/checksums.txt"), strings.Repeat("0", 64)+"  gantry_darwin_amd64.tar.gz\n"...))
				return r
			},
			want:         built,
			wantRequests: []string{checksumsPath(release), assetPath(release, "gantry_darwin_amd64.tar.gz")},
			wantWarning:  []string{"from {base}/acme/gantry/releases/download/v1.2.3/gantry_darwin_amd64.tar.gz: HTTP 404;"},
		},
		{
			name:        "transient server errors are retried and then install",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				s.mu.Lock()
				s.flaky = 2
				s.mu.Unlock()
				return r
			},
			want: map[string]string{"need-build": "false"},
			wantRequests: []string{
				checksumsPath(release), checksumsPath(release), checksumsPath(release),
				assetPath(release, linuxAsset),
			},
		},
		{
			name:        "the warning escapes % so it stays the runner's data",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_INSTALL_RETRIES": "0"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				r.env["GANTRY_RELEASE_BASE_URL"] = s.URL + "/mirror%0A::error::x"
				return r
			},
			want:         built,
			wantRequests: []string{"/mirror\n::error::x" + checksumsPath(release)},
			wantWarning:  []string{"/mirror%250A::error::x/acme/gantry/releases/download/v1.2.3/checksums.txt: HTTP 404;"},
		},

		// --- an explicit version ------------------------------------------------
		{
			name:         "explicit GANTRY_VERSION wins over the checkout's VERSION",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			env:          map[string]string{"GANTRY_VERSION": "1.2.4"},
			setup:        publish("v1.2.4", linuxAsset),
			want:         map[string]string{"need-build": "false", "version": "v1.2.4"},
			wantRequests: []string{checksumsPath("v1.2.4"), assetPath("v1.2.4", linuxAsset)},
		},
		{
			name:         "explicit GANTRY_VERSION installs on a branch",
			ref:          "main",
			env:          map[string]string{"GANTRY_VERSION": "v1.2.3"},
			setup:        publish(release, linuxAsset),
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
		},
		{
			name:         "explicit GANTRY_VERSION that does not exist fails, builds nothing",
			ref:          "main",
			env:          map[string]string{"GANTRY_VERSION": "v7.7.7"},
			wantErr:      "could not download gantry v7.7.7 from http://",
			wantRequests: []string{checksumsPath("v7.7.7")},
			check:        logHas("checksums.txt: HTTP 404; nothing installed: GANTRY_VERSION (the version input) asks for that release's binary"),
		},
		{
			name:        "explicit GANTRY_VERSION without a route to the server fails",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_VERSION": "v1.2.4", "GANTRY_RELEASE_BASE_URL": unresolvable, "GANTRY_INSTALL_RETRIES": "0"},
			wantErr:     "could not download gantry v1.2.4 from " + unresolvable,
		},
		{
			name:         "GANTRY_VERSION equal to the checkout's VERSION builds it when it cannot be downloaded",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			env:          map[string]string{"GANTRY_VERSION": "v1.2.3"},
			want:         built,
			wantRequests: []string{checksumsPath(release)},
			wantWarning:  []string{"HTTP 404;"},
		},
		{
			name:    "GANTRY_VERSION naming a moving tag is refused",
			ref:     "main",
			env:     map[string]string{"GANTRY_VERSION": "v1"},
			wantErr: "GANTRY_VERSION 'v1' is not a release version: want one such as v1.2.3 (v1 and v1.2 are moving git tags",
		},
		{
			name:    "GANTRY_VERSION that is not a version fails",
			env:     map[string]string{"GANTRY_VERSION": "main; rm -rf /"},
			wantErr: "is not a release version",
		},

		// --- where releases come from -------------------------------------------
		{
			name:        "release-base-url input wins over GANTRY_RELEASE_BASE_URL",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"GANTRY_RELEASE_BASE_URL": unresolvable},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				r.env["GANTRY_INPUT_RELEASE_BASE_URL"] = s.URL + "/"
				return r
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
		},
		{
			name:        "a mirror under a path serves the release",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, release, linuxAsset)
				s.prefix = "/github-mirror"
				r.env["GANTRY_INPUT_RELEASE_BASE_URL"] = s.URL + "/github-mirror"
				return r
			},
			want:         map[string]string{"need-build": "false", "version": release},
			wantRequests: []string{"/github-mirror" + checksumsPath(release), "/github-mirror" + assetPath(release, linuxAsset)},
		},
		{name: "release-base-url that is not http(s) is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INPUT_RELEASE_BASE_URL": "ftp://mirror.example.com"}, wantErr: "the release-base-url input 'ftp://mirror.example.com' is not an http:// or https:// URL"},
		{name: "release-base-url without a scheme is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INPUT_RELEASE_BASE_URL": "mirror.example.com"}, wantErr: "is not an http:// or https:// URL"},
		{name: "release-base-url with a space is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INPUT_RELEASE_BASE_URL": "https://mirror.example.com/a b"}, wantErr: "is not an http:// or https:// URL"},
		{name: "release-base-url with a line break is refused on one line", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INPUT_RELEASE_BASE_URL": "https://mirror.example.com\n::error::x"}, wantErr: "'https://mirror.example.com?::error::x' is not an http:// or https:// URL"},
		{name: "release-base-url without a host is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INPUT_RELEASE_BASE_URL": "https://"}, wantErr: "is not an http:// or https:// URL"},
		{name: "GANTRY_RELEASE_BASE_URL is checked too", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_RELEASE_BASE_URL": "file:///etc"}, wantErr: "GANTRY_RELEASE_BASE_URL 'file:///etc' is not an http:// or https:// URL"},
		{name: "a timeout that is not a number is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INSTALL_MAX_TIME": "1m"}, wantErr: "GANTRY_INSTALL_MAX_TIME '1m' is not a number of seconds above zero"},
		{name: "a zero connect timeout is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INSTALL_CONNECT_TIMEOUT": "0"}, wantErr: "GANTRY_INSTALL_CONNECT_TIMEOUT '0' is not a number of seconds above zero"},
		{name: "too many retries are refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_INSTALL_RETRIES": "11"}, wantErr: "GANTRY_INSTALL_RETRIES '11' is not a whole number from 0 to 10"},
		{name: "an unknown attestation mode is refused", ref: "v1", versionFile: file("v1.2.3\n"), env: map[string]string{"GANTRY_VERIFY_ATTESTATION": "maybe"}, wantErr: "GANTRY_VERIFY_ATTESTATION 'maybe' is not auto, always or never"},

		// --- everything else ----------------------------------------------------
		{
			name:         "--add-path appends the binary's directory to GITHUB_PATH",
			ref:          "v1",
			versionFile:  file("v1.2.3\n"),
			args:         []string{"--add-path"},
			setup:        publish(release, linuxAsset),
			want:         map[string]string{"need-build": "false"},
			wantRequests: []string{checksumsPath(release), assetPath(release, linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				want := []string{filepath.Dir(out["bin"])}
				if got := r.pathEntries(t); !slices.Equal(got, want) {
					t.Errorf("GITHUB_PATH = %v, want %v", got, want)
				}
			},
		},
		{
			name:        "windows gets the zip and gantry.exe",
			ref:         "v1",
			versionFile: file("v1.2.3\n"),
			env:         map[string]string{"RUNNER_OS": "Windows"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				if _, err := exec.LookPath("unzip"); err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatal("unzip is not installed (apt-get install unzip)")
					}
					t.Skip("unzip is not installed (apt-get install unzip)")
				}
				s.publish(t, release, linuxAsset, "gantry_windows_amd64.zip")
				return r
			},
			want:         map[string]string{"need-build": "false"},
			wantRequests: []string{checksumsPath(release), assetPath(release, "gantry_windows_amd64.zip")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				want := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, release, "gantry_windows_amd64.zip"), "amd64", "gantry.exe")
				if out["bin"] != want {
					t.Errorf("bin = %q, want %q", out["bin"], want)
				}
				if _, err := os.Stat(want); err != nil {
					t.Error(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newReleaseServer(t)
			r := newRunner(t, s, "")
			r.env["GANTRY_ACTION_REF"] = tc.ref
			r.env["GANTRY_SRC_DIR"] = newSrc(t, tc.versionFile)
			maps.Copy(r.env, tc.env)
			if tc.setup != nil {
				r = tc.setup(t, s, r)
			}
			s.takeRequests()

			log, out, err := r.run(t, tc.args...)
			checkRun(t, r, log, out, err, tc.wantErr, tc.wantWarning)
			for k, v := range tc.want {
				v = strings.ReplaceAll(v, "{cache}", r.toolCache)
				v = strings.ReplaceAll(v, "{temp}", r.temp)
				if out[k] != v {
					t.Errorf("output %s = %q, want %q (all: %v)", k, out[k], v, out)
				}
			}
			if got := s.takeRequests(); !slices.Equal(got, tc.wantRequests) {
				t.Errorf("server saw requests %q, want %q", got, tc.wantRequests)
			}
			if len(s.authSeen) > 0 {
				t.Errorf("the token reached a server other than github.com: %q", s.authSeen)
			}
			if tc.check != nil {
				tc.check(t, s, r, log, out)
			}
		})
	}
}

// checkRun checks what every run must: a failure is one ::error line (with
// wantErr) and writes no outputs; a download failure is one ::warning line
// (with each of wantWarning and how to mirror) and no other run warns; the
// token is never logged.
func checkRun(t *testing.T, r *runner, log string, out map[string]string, err error, wantErr string, wantWarning []string) {
	t.Helper()
	errs := linesWith(log, errorPrefix)
	if wantErr != "" {
		if err == nil {
			t.Fatalf("install.sh succeeded, want failure %q\n%s", wantErr, log)
		}
		if len(errs) != 1 || !strings.Contains(errs[0], wantErr) {
			t.Errorf("want one %s line with %q, got %q:\n%s", errorPrefix, wantErr, errs, log)
		}
		if len(out) != 0 {
			t.Errorf("outputs written on failure: %v", out)
		}
	} else if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, log)
	}
	warnings := linesWith(log, warningPrefix)
	if wantWarning == nil {
		if strings.Contains(log, "::warning") {
			t.Errorf("unexpected warning:\n%s", log)
		}
	} else if len(warnings) != 1 {
		t.Errorf("want one %s line, got %q:\n%s", warningPrefix, warnings, log)
	} else {
		for _, w := range append(slices.Clone(fallbackWarning), wantWarning...) {
			w = strings.ReplaceAll(w, "{base}", strings.TrimSuffix(r.baseURL(), "/"))
			if !strings.Contains(warnings[0], w) {
				t.Errorf("warning does not say %q:\n%s", w, warnings[0])
			}
		}
	}
	if strings.Contains(log, secretToken) {
		t.Errorf("the token appears in the log:\n%s", log)
	}
}

// mustRun runs an earlier job's install and returns its outputs.
func mustRun(t *testing.T, r *runner) map[string]string {
	t.Helper()
	log, out, err := r.run(t)
	if err != nil {
		t.Fatalf("earlier install: %v\n%s", err, log)
	}
	return out
}

// publish returns a setup that publishes release tag with assets.
func publish(tag string, assets ...string) func(*testing.T, *releaseServer, *runner) *runner {
	return func(t *testing.T, s *releaseServer, r *runner) *runner {
		s.publish(t, tag, assets...)
		return r
	}
}

// failWith returns a setup that makes the server answer every request with
// status.
func failWith(status int) func(*testing.T, *releaseServer, *runner) *runner {
	return func(t *testing.T, s *releaseServer, r *runner) *runner {
		s.failWith(status)
		return r
	}
}

// fakeGo returns a setup that puts a go reporting version first on PATH.
func fakeGo(version string) func(*testing.T, *releaseServer, *runner) *runner {
	return func(t *testing.T, s *releaseServer, r *runner) *runner {
		bin := t.TempDir()
		fake := "#!/bin/sh\nif [ \"$1 $2\" = \"env GOVERSION\" ]; then echo " + version + "; exit 0; fi\nexit 1\n"
		if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		r.withPath(bin)
		return r
	}
}

// logHas returns a check that the log says each of want.
func logHas(want ...string) func(*testing.T, *releaseServer, *runner, string, map[string]string) {
	return func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(log, w) {
				t.Errorf("log does not say %q:\n%s", w, log)
			}
		}
	}
}

// TestInstallAttestation checks the provenance step with a stand-in gh: the
// arguments and the token's path (environment only), that a failed
// verification refuses the install, and that without gh the log says what
// was checked instead.
func TestInstallAttestation(t *testing.T) {
	t.Parallel()
	signer := repository + "/.github/workflows/release.yml"
	tests := []struct {
		name string
		// gh is the stand-in's mode ("pass", "fail", "old"), "" for none on
		// PATH at all.
		gh      string
		env     map[string]string
		wantErr string
		// wantVerify: gh verified the archive (and the install went on
		// unless wantErr).
		wantVerify bool
		wantLog    []string
	}{
		{
			name:       "always: gh verifies the archive with the repository and signer workflow",
			gh:         "pass",
			env:        map[string]string{"GANTRY_VERIFY_ATTESTATION": "always", "GITHUB_TOKEN": "", "GANTRY_GITHUB_TOKEN": secretToken},
			wantVerify: true,
			wantLog:    []string{"verified the provenance of " + linuxAsset + ": an attestation signed by " + signer},
		},
		{
			name:       "GH_TOKEN goes first",
			gh:         "pass",
			env:        map[string]string{"GANTRY_VERIFY_ATTESTATION": "always", "GH_TOKEN": secretToken, "GITHUB_TOKEN": "ghs_other", "GANTRY_GITHUB_TOKEN": "ghs_third"},
			wantVerify: true,
		},
		{
			name:       "a failed verification refuses the install",
			gh:         "fail",
			env:        map[string]string{"GANTRY_VERIFY_ATTESTATION": "always"},
			wantVerify: true,
			wantErr:    "provenance check failed for " + linuxAsset + " of gantry v1.2.3: gh attestation verify --repo " + repository + " --signer-workflow " + signer + " exited 1 (Error: verifying with issuer \"sigstore.dev\": no attestations matched the policy); nothing installed",
		},
		{
			name:    "no gh on PATH: the log says only the sha256 was checked",
			gh:      "",
			wantLog: []string{"provenance not verified (no gh (GitHub CLI) on PATH); checked: sha256 {sum} of " + linuxAsset + " equals its entry in checksums.txt of the same release ({base}/acme/gantry/releases/download/v1.2.3/checksums.txt)"},
		},
		{
			name:    "a gh without the attestation command: checksum only",
			gh:      "old",
			wantLog: []string{"provenance not verified (the gh on PATH has no attestation command", "checked: sha256 {sum} of " + linuxAsset},
		},
		{
			name:    "auto with a mirror does not verify, and says so",
			gh:      "pass",
			wantLog: []string{"provenance not verified (releases come from the mirror {base} (GANTRY_VERIFY_ATTESTATION=always verifies them", "checked: sha256 {sum}"},
		},
		{
			name:    "never: checksum only, gh is not asked",
			gh:      "pass",
			env:     map[string]string{"GANTRY_VERIFY_ATTESTATION": "never"},
			wantLog: []string{"provenance not verified (GANTRY_VERIFY_ATTESTATION=never); checked: sha256 {sum}"},
		},
		{
			name:    "always without gh refuses the install",
			gh:      "",
			env:     map[string]string{"GANTRY_VERIFY_ATTESTATION": "always"},
			wantErr: "cannot verify the provenance of " + linuxAsset + " of gantry v1.2.3: no gh (GitHub CLI) on PATH; GANTRY_VERIFY_ATTESTATION=always refuses",
		},
		{
			name:    "always without a token refuses the install",
			gh:      "pass",
			env:     map[string]string{"GANTRY_VERIFY_ATTESTATION": "always", "GITHUB_TOKEN": ""},
			wantErr: "no GH_TOKEN, GITHUB_TOKEN or GANTRY_GITHUB_TOKEN for gh",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newReleaseServer(t)
			s.publish(t, release, linuxAsset)
			sum := sha256Hex(s.get(release + "/" + linuxAsset))
			r := newRunner(t, s, "")
			r.env["GANTRY_ACTION_REF"] = "v1"
			r.env["GANTRY_SRC_DIR"] = newSrc(t, file(release+"\n"))
			maps.Copy(r.env, tc.env)
			var gh *fakeGH
			if tc.gh == "" {
				r.minimalPath(t)
			} else {
				gh = newFakeGH(t, r, tc.gh)
			}

			log, out, err := r.run(t)
			checkRun(t, r, log, out, err, tc.wantErr, nil)
			if tc.wantErr == "" && out["need-build"] != "false" {
				t.Errorf("need-build = %q, want the release installed", out["need-build"])
			}
			if tc.wantErr != "" {
				assertNothingInstalled(t, r)
			}
			for _, w := range tc.wantLog {
				w = strings.ReplaceAll(w, "{sum}", sum)
				w = strings.ReplaceAll(w, "{base}", r.baseURL())
				if !strings.Contains(log, w) {
					t.Errorf("log does not say %q:\n%s", w, log)
				}
			}
			if gh == nil {
				return
			}
			for _, c := range gh.calls(t) {
				if slices.ContainsFunc(c, func(a string) bool { return strings.Contains(a, secretToken) }) {
					t.Errorf("the token is on gh's command line: %q", c)
				}
			}
			verified := gh.verifyCalls(t)
			if !tc.wantVerify {
				if len(verified) != 0 {
					t.Errorf("gh verified %q, want no verification", verified)
				}
				return
			}
			if len(verified) != 1 {
				t.Fatalf("gh verify calls = %q, want one", verified)
			}
			c := verified[0]
			if len(c) != 7 || filepath.Base(c[2]) != linuxAsset || !slices.Equal(c[3:], []string{"--repo", repository, "--signer-workflow", signer}) {
				t.Errorf("gh called with %q, want attestation verify <dir>/%s --repo %s --signer-workflow %s", c, linuxAsset, repository, signer)
			}
			if got := gh.read(t, "verified-sum"); got != sum {
				t.Errorf("gh verified a file with sha256 %s, want the release archive's %s", got, sum)
			}
			if got, want := gh.read(t, "env"), "GH_TOKEN="+secretToken+"\nGH_HOST=github.com"; got != want {
				t.Errorf("gh's environment:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestActionsPassWhatInstallReads checks that the install step of the root
// action.yml and of every actions/*/action.yml passes install.sh the
// variables it reads, the release-base-url input among them.
func TestActionsPassWhatInstallReads(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	files, err := filepath.Glob(filepath.Join(root, "actions", "*", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "action.yml"))
	if len(files) < 10 {
		t.Fatalf("found only %q", files)
	}
	script, err := os.ReadFile(filepath.Join(root, "scripts", "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GANTRY_ACTION_REF":             "${{ github.action_ref }}",
		"GANTRY_ACTION_REPOSITORY":      "${{ github.action_repository }}",
		"GANTRY_INPUT_RELEASE_BASE_URL": "${{ inputs.release-base-url }}",
		"GANTRY_GITHUB_TOKEN":           "${{ github.token }}",
	}
	for name := range want {
		if !strings.Contains(string(script), "${"+name) {
			t.Errorf("install.sh does not read %s", name)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Inputs map[string]struct {
				Default string `yaml:"default"`
			} `yaml:"inputs"`
			Runs struct {
				Steps []struct {
					ID  string            `yaml:"id"`
					Env map[string]string `yaml:"env"`
					Run string            `yaml:"run"`
				} `yaml:"steps"`
			} `yaml:"runs"`
		}
		if err := yaml.Unmarshal(b, &a); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if in, ok := a.Inputs["release-base-url"]; !ok || in.Default != "" {
			t.Errorf("%s: want a release-base-url input with an empty default, got %+v (present %v)", f, in, ok)
		}
		var install int
		for _, st := range a.Runs.Steps {
			if st.ID != "install" {
				continue
			}
			install++
			if !strings.Contains(st.Run, "scripts/install.sh") || strings.Contains(st.Run, "--build") {
				t.Errorf("%s: install step runs %q", f, st.Run)
			}
			for name, v := range want {
				if st.Env[name] != v {
					t.Errorf("%s: install step passes %s=%q, want %q", f, name, st.Env[name], v)
				}
			}
		}
		if install != 1 {
			t.Errorf("%s: %d steps with id install, want 1", f, install)
		}
	}
}

// TestBuild builds a stand-in gantry module (same module path, so the -X
// version flag lands) through install.sh --build and runs the result.
func TestBuild(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH")
	}
	tests := []struct {
		name, ref   string
		versionFile *string
		wantVersion string
	}{
		{"branch", "main", nil, "main"},
		{"local action", "", nil, "dev"},
		// A release commit whose release cannot be downloaded: what an
		// offline runner builds.
		{"release commit offline", "v1", file("v1.2.3\n"), "v1.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := newSrc(t, tc.versionFile)
			files := map[string]string{
				"internal/version/version.go": "// Package version holds the stamped version.\npackage version\n\n// Version is set at link time.\nvar Version = \"unset\"\n",
				"cmd/gantry/main.go":          "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/gantry-dev/gantry/internal/version\"\n)\n\nfunc main() { fmt.Println(\"gantry\", version.Version) }\n",
			}
			for name, body := range files {
				p := filepath.Join(src, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := newRunner(t, nil, "")
			r.env["GANTRY_SRC_DIR"] = src
			r.env["GANTRY_ACTION_REF"] = tc.ref
			r.env["GANTRY_RELEASE_BASE_URL"] = unresolvable
			r.env["GANTRY_INSTALL_RETRIES"] = "0"
			log, planned, err := r.run(t)
			if err != nil {
				t.Fatalf("install.sh: %v\n%s", err, log)
			}
			if planned["need-build"] != "true" {
				t.Fatalf("need-build = %q, want true\n%s", planned["need-build"], log)
			}

			log, out, err := r.run(t, "--build", "--add-path")
			if err != nil {
				t.Fatalf("install.sh --build: %v\n%s", err, log)
			}
			if out["bin"] != planned["bin"] {
				t.Errorf("built %q, planned %q", out["bin"], planned["bin"])
			}
			if got, want := runBinary(t, out["bin"]), "gantry "+tc.wantVersion; got != want {
				t.Errorf("built binary printed %q, want %q", got, want)
			}
			if got, want := r.pathEntries(t), []string{filepath.Join(r.temp, "gantry-src-build")}; !slices.Equal(got, want) {
				t.Errorf("GITHUB_PATH = %v, want %v", got, want)
			}
		})
	}
}

// TestBuildFailure reports a compile error as a failed step.
func TestBuildFailure(t *testing.T) {
	t.Parallel()
	r := newRunner(t, nil, "")
	r.env["GANTRY_SRC_DIR"] = newSrc(t, nil)
	log, _, err := r.run(t, "--build")
	if err == nil {
		t.Fatalf("install.sh --build succeeded without ./cmd/gantry\n%s", log)
	}
	if !strings.Contains(log, "go build of ./cmd/gantry in") {
		t.Errorf("log does not explain the failure:\n%s", log)
	}
}

// TestBuildRealGantry builds this repository's ./cmd/gantry the way a branch
// ref does on a runner and checks the ref is stamped into the binary.
func TestBuildRealGantry(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds ./cmd/gantry (~75 s cold); skipped with -short")
	}
	r := newRunner(t, nil, "")
	r.env["GANTRY_ACTION_REF"] = "test-ref-7"
	log, out, err := r.run(t, "--build")
	if err != nil {
		t.Fatalf("install.sh --build: %v\n%s", err, log)
	}
	if got := runBinary(t, out["bin"], "version"); !strings.Contains(got, "test-ref-7") {
		t.Errorf("gantry version printed %q, want the ref test-ref-7 in it", got)
	}
}
