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
)

const (
	repository = "acme/gantry"
	linuxAsset = "gantry_linux_amd64.tar.gz"
	// standIn is the "gantry" executable inside the test release archives.
	standIn = "#!/bin/sh\necho \"gantry stand-in $*\"\n"
	// secretToken must never reach a server other than github.com, nor the log.
	secretToken = "ghs_testtoken0123456789"
)

// releaseServer serves GitHub-style release downloads,
// /<owner>/<repo>/releases/download/<tag>/<asset>, and records what was asked.
type releaseServer struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte // "<tag>/<asset>" → content
	status int               // when non-zero, every request gets this status
	flaky  int               // this many requests get 503 before any succeeds
	// afterServe, when set, runs (with the lock held) after each served file.
	afterServe func(path string)
	requests   []string
	authSeen   []string
}

func newReleaseServer(t *testing.T) *releaseServer {
	t.Helper()
	s := &releaseServer{files: map[string][]byte{}}
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
	prefix := "/" + repository + "/releases/download/"
	body, ok := s.files[strings.TrimPrefix(r.URL.Path, prefix)]
	if !strings.HasPrefix(r.URL.Path, prefix) || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(body)
	if s.afterServe != nil {
		s.afterServe(r.URL.Path)
	}
}

// publish adds a release with one archive per asset name and a checksums.txt
// listing them all.
func (s *releaseServer) publish(t *testing.T, tag string, assets ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
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

func (s *releaseServer) set(path string, body []byte) {
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

// run executes install.sh with the runner's environment (anything the test
// process has from a real runner removed) and returns its log and outputs.
func (r *runner) run(t *testing.T, args ...string) (string, map[string]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{r.script}, args...)...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "RUNNER_") || strings.HasPrefix(k, "GANTRY_") {
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

// runBinary runs an installed gantry and returns its output.
func runBinary(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("running %s: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

func cacheKey(t *testing.T, s *releaseServer, tag, asset string) string {
	t.Helper()
	sum := sha256.Sum256(s.get(tag + "/" + asset))
	return tag + "-" + hex.EncodeToString(sum[:])[:12]
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

func TestInstall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// ref is GANTRY_ACTION_REF; env adds or overrides variables.
		ref  string
		env  map[string]string
		args []string
		// setup publishes releases and may run earlier jobs; it returns the
		// runner for the run under test.
		setup func(t *testing.T, s *releaseServer, r *runner) *runner
		// wantErr is a substring of the log of a run that must fail.
		wantErr string
		// want are outputs the run must write; "{cache}" and "{temp}" stand
		// for the runner's tool cache and temp dir.
		want         map[string]string
		wantRequests []string
		check        func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string)
	}{
		{
			name: "release ref downloads, verifies and installs",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset, "gantry_windows_amd64.zip")
				return r
			},
			want:         map[string]string{"need-build": "false", "need-go": "false", "version": "v1.2.3"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				wantBin := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, "v1.2.3", linuxAsset), "amd64", "gantry")
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
			name: "full version cached by an earlier job is re-hashed against checksums.txt",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				if log, _, err := r.run(t); err != nil {
					t.Fatalf("first install: %v\n%s", err, log)
				}
				s.takeRequests()
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": "v1.2.3"},
			wantRequests: []string{checksumsPath("v1.2.3")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "cache hit") || !strings.Contains(log, "re-hashed against sha256") || !strings.Contains(log, "only checksums.txt downloaded") {
					t.Errorf("log does not report the cache hit:\n%s", log)
				}
				if got := runBinary(t, out["bin"]); got != "gantry stand-in" {
					t.Errorf("cached binary printed %q", got)
				}
			},
		},
		{
			name: "a replaced cached binary is downloaded again",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				if log, _, err := r.run(t); err != nil {
					t.Fatalf("first install: %v\n%s", err, log)
				}
				s.takeRequests()
				bin := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, "v1.2.3", linuxAsset), "amd64", "gantry")
				if err := os.WriteFile(bin, []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": "v1.2.3"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", linuxAsset)},
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
			name: "a replaced binary resolved earlier in the same job is downloaded again",
			ref:  "v1",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1", linuxAsset)
				log, out, err := r.run(t)
				if err != nil {
					t.Fatalf("first install: %v\n%s", err, log)
				}
				s.takeRequests()
				if err := os.WriteFile(out["bin"], []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				return r
			},
			want:         map[string]string{"need-build": "false", "version": "v1"},
			wantRequests: []string{checksumsPath("v1"), assetPath("v1", linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if got := runBinary(t, out["bin"]); got != "gantry stand-in" {
					t.Errorf("binary printed %q, want the release's", got)
				}
			},
		},
		{
			name: "moving tag resolved earlier in the same job downloads nothing",
			ref:  "v1",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1", linuxAsset)
				if log, _, err := r.run(t); err != nil {
					t.Fatalf("first install: %v\n%s", err, log)
				}
				s.takeRequests()
				return r
			},
			want:         map[string]string{"need-build": "false", "version": "v1"},
			wantRequests: nil,
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "cache hit") {
					t.Errorf("log does not report the cache hit:\n%s", log)
				}
			},
		},
		{
			name: "moving tag in a later job checks only checksums.txt",
			ref:  "v1",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1", linuxAsset)
				if log, _, err := r.run(t); err != nil {
					t.Fatalf("first install: %v\n%s", err, log)
				}
				s.takeRequests()
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": "v1"},
			wantRequests: []string{checksumsPath("v1")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "cache hit") {
					t.Errorf("log does not report the cache hit:\n%s", log)
				}
			},
		},
		{
			name: "moving tag that moved downloads the new binary",
			ref:  "v1",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1", linuxAsset)
				if log, _, err := r.run(t); err != nil {
					t.Fatalf("first install: %v\n%s", err, log)
				}
				s.takeRequests()
				s.set("v1/"+linuxAsset, tarArchive(t, "gantry", "#!/bin/sh\necho moved\n"))
				sum := sha256.Sum256(s.get("v1/" + linuxAsset))
				s.set("v1/checksums.txt", []byte(hex.EncodeToString(sum[:])+"  "+linuxAsset+"\n"))
				return r.newJob(t, s)
			},
			want:         map[string]string{"need-build": "false", "version": "v1"},
			wantRequests: []string{checksumsPath("v1"), assetPath("v1", linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if got := runBinary(t, out["bin"]); got != "moved" {
					t.Errorf("binary printed %q, want the moved tag's binary", got)
				}
			},
		},
		{
			name: "checksum mismatch fails and installs nothing",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				s.set("v1.2.3/"+linuxAsset, tarArchive(t, "gantry", "#!/bin/sh\necho tampered\n"))
				return r
			},
			wantErr:      "checksum mismatch for " + linuxAsset + " of gantry v1.2.3",
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				assertNothingInstalled(t, r)
				if len(out) != 0 {
					t.Errorf("outputs written on failure: %v", out)
				}
			},
		},
		{
			name: "moving tag mismatch is retried and then fails",
			ref:  "v1",
			env:  map[string]string{"GANTRY_INSTALL_RETRY_SECONDS": "0"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1", linuxAsset)
				s.set("v1/"+linuxAsset, tarArchive(t, "gantry", "#!/bin/sh\necho tampered\n"))
				return r
			},
			wantErr: "checksum mismatch for " + linuxAsset + " of gantry v1",
			wantRequests: []string{
				checksumsPath("v1"), assetPath("v1", linuxAsset),
				checksumsPath("v1"), assetPath("v1", linuxAsset),
				checksumsPath("v1"), assetPath("v1", linuxAsset),
			},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				assertNothingInstalled(t, r)
			},
		},
		{
			name: "moving tag caught mid-update installs once checksums.txt catches up",
			ref:  "v1",
			env:  map[string]string{"GANTRY_INSTALL_RETRY_SECONDS": "0"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				// The release workflow has uploaded the new archive but
				// not yet the new checksums.txt.
				s.publish(t, "v1", linuxAsset)
				newArchive := tarArchive(t, "gantry", "#!/bin/sh\necho new\n")
				sum := sha256.Sum256(newArchive)
				s.set("v1/"+linuxAsset, newArchive)
				s.mu.Lock()
				s.afterServe = func(path string) {
					if path == assetPath("v1", linuxAsset) {
						s.files["v1/checksums.txt"] = []byte(hex.EncodeToString(sum[:]) + "  " + linuxAsset + "\n")
					}
				}
				s.mu.Unlock()
				return r
			},
			want: map[string]string{"need-build": "false"},
			wantRequests: []string{
				checksumsPath("v1"), assetPath("v1", linuxAsset),
				checksumsPath("v1"), assetPath("v1", linuxAsset),
			},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if got := runBinary(t, out["bin"]); got != "new" {
					t.Errorf("binary printed %q, want the new one", got)
				}
				if !strings.Contains(log, "retrying") {
					t.Errorf("log does not mention the retry:\n%s", log)
				}
			},
		},
		{
			name: "missing checksum entry fails before downloading the archive",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset, "gantry_darwin_arm64.tar.gz")
				sums := string(s.get("v1.2.3/checksums.txt"))
				var kept []string
				for _, l := range strings.SplitAfter(sums, "\n") {
					if !strings.Contains(l, linuxAsset) {
						kept = append(kept, l)
					}
				}
				s.set("v1.2.3/checksums.txt", []byte(strings.Join(kept, "")))
				return r
			},
			wantErr:      "checksums.txt of gantry v1.2.3 (acme/gantry) has no entry for " + linuxAsset,
			wantRequests: []string{checksumsPath("v1.2.3")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				assertNothingInstalled(t, r)
			},
		},
		{
			name: "server error is a hard failure, not a source build",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.failWith(http.StatusForbidden)
				return r
			},
			wantErr:      "could not download " + "http://", // the server URL follows
			wantRequests: []string{checksumsPath("v1.2.3")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "HTTP 403") {
					t.Errorf("log does not name the HTTP status:\n%s", log)
				}
				assertNothingInstalled(t, r)
			},
		},
		{
			name: "transient server errors are retried",
			ref:  "v1.2.3",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				s.mu.Lock()
				s.flaky = 2
				s.mu.Unlock()
				return r
			},
			want: map[string]string{"need-build": "false"},
			wantRequests: []string{
				checksumsPath("v1.2.3"), checksumsPath("v1.2.3"), checksumsPath("v1.2.3"),
				assetPath("v1.2.3", linuxAsset),
			},
		},
		{
			name:         "branch ref builds from source",
			ref:          "main",
			want:         map[string]string{"need-build": "true", "need-go": "false", "bin": "{temp}/gantry-src-build/gantry", "version": "main"},
			wantRequests: nil,
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "ref main is not a release tag") {
					t.Errorf("log does not say why it builds:\n%s", log)
				}
			},
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
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "no action ref") {
					t.Errorf("log does not say why it builds:\n%s", log)
				}
			},
		},
		{
			name:         "release that does not exist builds from source",
			ref:          "v9.9.9",
			want:         map[string]string{"need-build": "true", "bin": "{temp}/gantry-src-build/gantry", "version": "v9.9.9"},
			wantRequests: []string{checksumsPath("v9.9.9")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "release v9.9.9 of acme/gantry not found") {
					t.Errorf("log does not say why it builds:\n%s", log)
				}
				assertNothingInstalled(t, r)
			},
		},
		{
			name: "platform without a release asset builds from source",
			ref:  "v1.2.3",
			env:  map[string]string{"RUNNER_OS": "macOS", "RUNNER_ARCH": "X64"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset, "gantry_darwin_arm64.tar.gz")
				s.set("v1.2.3/checksums.txt", append(s.get("v1.2.3/checksums.txt"), "0000000000000000000000000000000000000000000000000000000000000000  gantry_darwin_amd64.tar.gz\n"...))
				return r
			},
			want:         map[string]string{"need-build": "true"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", "gantry_darwin_amd64.tar.gz")},
		},
		{
			name: "unknown architecture builds from source without asking the server",
			ref:  "v1.2.3",
			env:  map[string]string{"RUNNER_ARCH": "ARM"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				return r
			},
			want:         map[string]string{"need-build": "true"},
			wantRequests: nil,
		},
		{
			name: "explicit GANTRY_VERSION wins over the action ref",
			ref:  "main",
			env:  map[string]string{"GANTRY_VERSION": "1.2.3"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				return r
			},
			want:         map[string]string{"need-build": "false", "version": "v1.2.3"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", linuxAsset)},
		},
		{
			name:         "explicit GANTRY_VERSION that does not exist fails",
			ref:          "main",
			env:          map[string]string{"GANTRY_VERSION": "v7.7.7"},
			wantErr:      "release v7.7.7 of acme/gantry not found",
			wantRequests: []string{checksumsPath("v7.7.7")},
		},
		{
			name:         "GANTRY_VERSION that is not a version fails",
			env:          map[string]string{"GANTRY_VERSION": "main; rm -rf /"},
			wantErr:      "is not a release version",
			wantRequests: nil,
		},
		{
			name: "ref and repository derived from the action path",
			ref:  "",
			env:  map[string]string{"GANTRY_ACTION_REPOSITORY": ""},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				// The runner unpacks uses: acme/gantry/actions/deploy@v1.2.3
				// into _actions/acme/gantry/v1.2.3.
				root := filepath.Join(t.TempDir(), "_actions", "acme", "gantry", "v1.2.3")
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
				r.script = script
				return r
			},
			want:         map[string]string{"need-build": "false", "version": "v1.2.3"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				if !strings.Contains(log, "action ref v1.2.3 of acme/gantry taken from the action path") {
					t.Errorf("log does not say where the ref came from:\n%s", log)
				}
			},
		},
		{
			name: "--add-path appends the binary's directory to GITHUB_PATH",
			ref:  "v1.2.3",
			args: []string{"--add-path"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				s.publish(t, "v1.2.3", linuxAsset)
				return r
			},
			want:         map[string]string{"need-build": "false"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", linuxAsset)},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				want := []string{filepath.Dir(out["bin"])}
				if got := r.pathEntries(t); !slices.Equal(got, want) {
					t.Errorf("GITHUB_PATH = %v, want %v", got, want)
				}
			},
		},
		{
			name: "windows gets the zip and gantry.exe",
			ref:  "v1.2.3",
			env:  map[string]string{"RUNNER_OS": "Windows"},
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				if _, err := exec.LookPath("unzip"); err != nil {
					if os.Getenv("CI") == "true" {
						t.Fatal("unzip is not installed (apt-get install unzip)")
					}
					t.Skip("unzip is not installed (apt-get install unzip)")
				}
				s.publish(t, "v1.2.3", linuxAsset, "gantry_windows_amd64.zip")
				return r
			},
			want:         map[string]string{"need-build": "false"},
			wantRequests: []string{checksumsPath("v1.2.3"), assetPath("v1.2.3", "gantry_windows_amd64.zip")},
			check: func(t *testing.T, s *releaseServer, r *runner, log string, out map[string]string) {
				want := filepath.Join(r.toolCache, "gantry", cacheKey(t, s, "v1.2.3", "gantry_windows_amd64.zip"), "amd64", "gantry.exe")
				if out["bin"] != want {
					t.Errorf("bin = %q, want %q", out["bin"], want)
				}
				if _, err := os.Stat(want); err != nil {
					t.Error(err)
				}
			},
		},
		{
			name: "need-go when the go on PATH is older than go.mod",
			ref:  "main",
			setup: func(t *testing.T, s *releaseServer, r *runner) *runner {
				bin := t.TempDir()
				fake := "#!/bin/sh\nif [ \"$1 $2\" = \"env GOVERSION\" ]; then echo go1.20.14; exit 0; fi\nexit 1\n"
				if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fake), 0o755); err != nil {
					t.Fatal(err)
				}
				r.env["PATH"] = bin + string(os.PathListSeparator) + os.Getenv("PATH")
				return r
			},
			want: map[string]string{"need-build": "true", "need-go": "true"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newReleaseServer(t)
			r := newRunner(t, s, "")
			r.env["GANTRY_ACTION_REF"] = tc.ref
			for k, v := range tc.env {
				r.env[k] = v
			}
			if tc.setup != nil {
				r = tc.setup(t, s, r)
			}
			s.takeRequests()

			log, out, err := r.run(t, tc.args...)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("install.sh succeeded, want failure %q\n%s", tc.wantErr, log)
				}
				if !strings.Contains(log, tc.wantErr) {
					t.Errorf("log does not contain %q:\n%s", tc.wantErr, log)
				}
			} else if err != nil {
				t.Fatalf("install.sh: %v\n%s", err, log)
			}
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
			if strings.Contains(log, secretToken) {
				t.Errorf("the token appears in the log:\n%s", log)
			}
			if tc.check != nil {
				tc.check(t, s, r, log, out)
			}
		})
	}
}

// TestBuild builds a stand-in gantry module (same module path, so the -X
// version flag lands) through install.sh --build and runs the result.
func TestBuild(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH")
	}
	src := t.TempDir()
	files := map[string]string{
		"go.mod":                      "module github.com/gantry-dev/gantry\n\ngo 1.26.0\n",
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

	tests := []struct {
		name, ref   string
		wantVersion string
	}{
		{"branch", "main", "main"},
		{"local action", "", "dev"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRunner(t, nil, "")
			r.env["GANTRY_SRC_DIR"] = src
			r.env["GANTRY_ACTION_REF"] = tc.ref
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
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module github.com/gantry-dev/gantry\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t, nil, "")
	r.env["GANTRY_SRC_DIR"] = src
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
