package acceptance

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/actionyml"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// gantryRepo is how consumers name gantry: uses: gantry-dev/gantry/...@v1.
const gantryRepo = "gantry-dev/gantry"

// gantryRelease is the release the v1 tag points at in these tests: the
// VERSION file of the gantry copy, whose assets startRelease serves.
const gantryRelease = "v1.0.0"

// consumerRepo is the consumer repository's owner/name on "GitHub".
const consumerRepo = "acme/shop"

// consumer is a repository that uses gantry's reusable workflows and actions
// exactly as a user's would (gantry-dev/gantry/.github/workflows/x.yml@v1,
// gantry-dev/gantry/actions/x@v1), run under act.
type consumer struct {
	Dir string
	// gantry is a copy of this checkout, with its workflows, standing in for
	// gantry-dev/gantry@v1.
	gantry string
	// release serves gantry's v1 release assets, built from this checkout.
	release string
}

// newConsumer makes a git repository on branch main holding files (path →
// content) and returns it ready for act.
func newConsumer(t *testing.T, files map[string]string) *consumer {
	t.Helper()
	c := &consumer{Dir: t.TempDir(), gantry: gantrySource(t), release: startRelease(t)}
	// act workaround: host mode without .actrc asks which image to use and
	// dies without a terminal.
	files[".actrc"] = "-P ubuntu-latest=-self-hosted\n"
	git(t, c.Dir, "init", "-q", "-b", "main")
	// act names the repository (github.repository) after its origin.
	git(t, c.Dir, "remote", "add", "origin", "https://github.com/"+consumerRepo+".git")
	for p, content := range files {
		if strings.HasPrefix(p, ".github/workflows/") {
			files[p] = forAct(content)
		}
	}
	c.Commit(t, "initial", files)
	return c
}

// envDeployment is a job environment's deployment key, on its own line.
var envDeployment = regexp.MustCompile(`(?m)^[ \t]+deployment: .*\n`)

// forAct returns a workflow as act v0.2.89 reads it. act workaround: its
// workflow schema predates `deployment` in a job's environment mapping
// (GitHub's switch for the per-job deployment record) and refuses the
// whole workflow, so the key is dropped; act records no deployments anyway.
func forAct(workflow string) string { return envDeployment.ReplaceAllString(workflow, "") }

// exampleFiles returns the files of examples/<name> (path → content).
func exampleFiles(t *testing.T, name string) map[string]string {
	t.Helper()
	root := filepath.Join(testenv.RepoRoot(t), "examples", name)
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Commit writes files into the repository and commits them: a push.
func (c *consumer) Commit(t *testing.T, msg string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(c.Dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(t, c.Dir, "add", "-A")
	git(t, c.Dir, "-c", "user.email=dev@example.com", "-c", "user.name=dev", "commit", "-qm", msg)
}

// Head returns the commit act will report as github.sha.
func (c *consumer) Head(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", c.Dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// Act runs the repository's workflows for event ("push", "workflow_dispatch")
// and returns what act reported; args are more act arguments (-W, --input,
// --var, --secret, --local-repository).
func (c *consumer) Act(t *testing.T, event string, args ...string) *actRun {
	t.Helper()
	// act workaround: act fetches every `uses:` of an action or workflow,
	// even a skipped one, and reaches no GitHub here. actions/setup-go (the
	// runner has Go) is a no-op stand-in, as in runAct.
	stub := t.TempDir()
	if err := os.WriteFile(filepath.Join(stub, "action.yml"), []byte("name: setup-go stand-in\ninputs:\n  go-version-file: {required: false}\n  cache-dependency-path: {required: false}\nruns:\n  using: composite\n  steps:\n    - run: 'true'\n      shell: bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := []string{event,
		// gantry-dev/gantry@v1 is this checkout, as a consumer's runner
		// would fetch it from GitHub.
		"--local-repository", gantryRepo + "@v1=" + c.gantry,
		"--local-repository", strings.Fields(actionyml.SetupGo)[0] + "=" + stub,
		// act workaround: the actions' install step downloads the release
		// v1 points at from github.com; GANTRY_RELEASE_BASE_URL (install.sh's
		// own setting) points it at the same assets served locally. --env
		// reaches every job, also those of called workflows.
		"--env", "GANTRY_RELEASE_BASE_URL=" + c.release,
	}
	return execAct(t, c.Dir, append(full, args...)...)
}

// Expect runs Act, logs how long the run took and fails the test unless
// every job succeeded (wantOK) or one failed (!wantOK).
func (c *consumer) Expect(t *testing.T, what string, wantOK bool, event string, args ...string) *actRun {
	t.Helper()
	start := time.Now()
	r := c.Act(t, event, args...)
	t.Logf("%s: %s", what, time.Since(start).Round(time.Second))
	if r.OK() != wantOK {
		t.Fatalf("%s: succeeded=%v, want %v:\n%s", what, r.OK(), wantOK, r)
	}
	return r
}

// gantrySource copies this checkout (as repoCopy does) with its own
// workflows: what a runner fetches for gantry-dev/gantry@v1.
func gantrySource(t *testing.T) string {
	t.Helper()
	dir := repoCopy(t, "")
	root := testenv.RepoRoot(t)
	wfs, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range wfs {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".github", "workflows", filepath.Base(src)), []byte(forAct(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, ".github", "workflows", "test.yml")); err != nil {
		t.Fatal(err)
	}
	// v1 points at a release commit, which names its release in VERSION.
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(gantryRelease+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The release archive of this checkout, built once per test process.
var (
	releaseOnce sync.Once
	releaseTGZ  []byte
	releaseErr  error
)

// startRelease serves gantry-dev/gantry's release gantryRelease as GitHub does
// (/<owner>/<repo>/releases/download/<version>/<asset>): this checkout's gantry
// built with the release's flags, in its archive, with checksums.txt. It
// returns the base URL for GANTRY_RELEASE_BASE_URL.
func startRelease(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	releaseOnce.Do(func() { releaseTGZ, releaseErr = buildRelease(root) })
	if releaseErr != nil {
		t.Fatalf("build the gantry release: %v", releaseErr)
	}
	asset := fmt.Sprintf("gantry_linux_%s.tar.gz", runtime.GOARCH)
	sum := sha256.Sum256(releaseTGZ)
	files := map[string][]byte{
		asset:           releaseTGZ,
		"checksums.txt": []byte(hex.EncodeToString(sum[:]) + "  " + asset + "\n"),
	}
	prefix := "/" + gantryRepo + "/releases/download/" + gantryRelease + "/"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[strings.TrimPrefix(r.URL.Path, prefix)]
		if !ok || !strings.HasPrefix(r.URL.Path, prefix) {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// buildRelease builds ./cmd/gantry as the release and install.sh do
// (static, trimmed, stamped gantryRelease) and packs it as the release
// archive.
func buildRelease(root string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "gantry-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "gantry")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/gantry-dev/gantry/internal/version.Version="+gantryRelease, "-o", bin, "./cmd/gantry")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/gantry: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "gantry", Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// startGoogleCloud stands in for the Google endpoints a workflow reaches
// through a CONNECT proxy (returned as proxy): Artifact Registry as
// europe-docker.pkg.dev (a real registry behind googlefake's token check,
// reg) and, when fake is set, the *.a.run.app URL of the Cloud Run service
// (runfake's frontend), all under cert.
func startGoogleCloud(t *testing.T, google *googlefake.Server, fake *runfake.Server, service string) (cert *testenv.Cert, reg *testenv.Registry, proxy string) {
	t.Helper()
	cert = testenv.NewCert(t, "*.a.run.app", "europe-docker.pkg.dev")
	reg = testenv.StartRegistry(t, testenv.RegistryOptions{TLS: cert})
	target, _ := url.Parse("https://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = testenv.Resolver(nil, cert)
	routes := map[string]string{"europe-docker.pkg.dev:443": testenv.StartTLS(t, cert, google.RegistryAuth(rp))}
	if fake != nil {
		front := fake.Frontend(service)
		routes["*.a.run.app:443"] = testenv.StartTLS(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req := r.Clone(r.Context())
			req.URL.Scheme, req.URL.Host, req.RequestURI = "https", r.Host, ""
			resp, err := front.RoundTrip(req)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		}))
	}
	return cert, reg, testenv.ConnectProxy(t, routes)
}
