package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// composeHost is a Compose host as the tests deploy to it: the real Docker
// engine of this machine reached through a real OpenSSH sshd on loopback,
// images in a real registry, a Caddy edge image built from scratch.
type composeHost struct {
	reg      *testenv.Registry
	sshd     *testenv.SSHD
	project  string
	edgePort int
	edge     string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startComposeHost(t *testing.T) *composeHost {
	t.Helper()
	testenv.Docker(t)
	testenv.Compose(t)
	h := &composeHost{
		reg:      testenv.StartRegistry(t, testenv.RegistryOptions{}),
		sshd:     testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: true}),
		project:  "gt" + randHex(4),
		edgePort: testenv.FreePort(t),
	}
	h.edge = digestRef(t, testenv.CaddyImage(t, h.reg.Host))
	t.Cleanup(func() { h.down(t) })
	return h
}

// down removes everything the project left on the engine and the host.
func (h *composeHost) down(t *testing.T) { testenv.RemoveComposeProject(h.project, h.sshd.User) }

// digestRef turns a tag reference into repo@digest.
func digestRef(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	return r.Context().Digest(d.Digest.String()).String()
}

const appCompose = `services:
  web:
    image: placeholder.invalid/web
    expose: ["8080"]
    labels:
      gantry.edge: "true"
`

// app returns a FROM-scratch image of examples/app reporting sha.
func (h *composeHost) app(t *testing.T, sha, version string) string {
	return digestRef(t, testenv.AppImage(t, h.reg.Host, sha, version))
}

func (h *composeHost) url() string { return fmt.Sprintf("http://127.0.0.1:%d/health", h.edgePort) }

// deploy runs gantry deploy-compose for web=image at sha; extra flags
// replace the defaults of the same name.
func (h *composeHost) deploy(t *testing.T, sha, image string, extra ...string) run {
	t.Helper()
	args := h.deployArgs(sha, image)
	args = lastWins(append(args, extra...))
	return runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true"}, nil, args...)
}

func (h *composeHost) deployArgs(sha, image string) []string {
	return []string{"deploy-compose",
		"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
		"--project", h.project, "--compose-file", "compose.yml",
		"--images", "web=" + image, "--sha", sha,
		"--edge-image", h.edge, "--edge-ports", fmt.Sprintf("127.0.0.1:%d:80", h.edgePort),
		"--url", h.url(), "--drain", "5s", "--stop-timeout", "5s", "--verify-timeout", "20s", "--start-timeout", "30s",
	}
}

// images lists the configured image of every container of service.
func (h *composeHost) images(t *testing.T, service string) []string {
	t.Helper()
	var err error
	// A deploy may remove a container between docker ps and docker inspect:
	// then the listing is taken again.
	for range 5 {
		var ids, out []byte
		ids, err = exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+h.project, "--filter", "label=com.docker.compose.service="+service).Output()
		if err != nil || len(strings.Fields(string(ids))) == 0 {
			return nil
		}
		out, err = exec.Command("docker", append([]string{"inspect", "-f", "{{.Config.Image}}"}, strings.Fields(string(ids))...)...).Output()
		if err == nil {
			return strings.Fields(string(out))
		}
	}
	t.Fatalf("docker inspect of the %s containers: %v", service, err)
	return nil
}

// served returns the commit the public URL reports.
func (h *composeHost) served(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(h.url())
	if err != nil {
		t.Fatalf("GET %s: %v", h.url(), err)
	}
	defer resp.Body.Close()
	var body struct {
		GitSHA string `json:"git_sha"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.GitSHA
}

// loadErrs receives the first failures of load, for the test log.
var loadErrs = make(chan string, 100)

// load sends requests to url from 8 workers until stop is closed and counts
// the ones that failed.
func load(url string, stop <-chan struct{}) (total, failed *atomic.Int64, wait func()) {
	total, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	// A fresh connection per request: no client-side retry can hide a
	// connection the edge dropped.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(url)
				total.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					if failed.Add(1) <= 5 {
						if err != nil {
							loadErrs <- fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err)
						} else {
							loadErrs <- fmt.Sprintf("%s: %s", time.Now().Format("15:04:05.000"), resp.Status)
						}
					}
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	return total, failed, wg.Wait
}

const (
	sha1 = "1111111111111111111111111111111111111111"
	sha2 = "2222222222222222222222222222222222222222"
	sha3 = "3333333333333333333333333333333333333333"
)

// TestDeployComposeBlueGreenUnderLoadAndRollback is the happy path: a first
// deploy, a blue-green update under constant load with no failed request,
// then a rollback to the previous commit without a rebuild.
func TestDeployComposeBlueGreenUnderLoadAndRollback(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	v1, v2 := h.app(t, sha1, "v1"), h.app(t, sha2, "v2")

	first := h.deploy(t, sha1, v1, "--reason", `first "; rm -rf / # $(id)`)
	if first.code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", first.code, first.log)
	}
	if first.outputs["result"] != "success" || first.outputs["deployed-sha"] != sha1 || h.served(t) != sha1 {
		t.Fatalf("first deploy: outputs %v, serving %s\n%s", first.outputs, h.served(t), first.log)
	}
	// The reason is data: it reaches the history byte for byte.
	u, _ := user.Lookup(h.sshd.User)
	data, err := os.ReadFile(filepath.Join(u.HomeDir, "gantry", h.project, ".gantry", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var entry struct {
		Reason string `json:"reason"`
		Actor  string `json:"actor"`
	}
	if err := json.Unmarshal([]byte(strings.Split(string(data), "\n")[0]), &entry); err != nil || entry.Reason != `first "; rm -rf / # $(id)` || entry.Actor != "tester" {
		t.Errorf("history entry = %+v, %v", entry, err)
	}

	stop := make(chan struct{})
	total, failed, wait := load(h.url(), stop)
	// The contract checks run in and against the new container before it
	// gets traffic: an HTTP check, and an exec check (a second instance of
	// the app cannot bind the port the first one serves on).
	second := h.deploy(t, sha2, v2, "--checks", "GET /health json.git_sha=\""+sha2+"\"\nexec web exit=1 contains='address already in use' -- /app")
	close(stop)
	wait()
	if second.code != 0 {
		t.Fatalf("blue-green: exit %d\n%s", second.code, second.log)
	}
	if h.served(t) != sha2 || second.outputs["previous-sha"] != sha1 {
		t.Fatalf("after blue-green: serving %s, outputs %v", h.served(t), second.outputs)
	}
	if failed.Load() != 0 || total.Load() < 100 {
		t.Errorf("blue-green under load: %d of %d requests failed", failed.Load(), total.Load())
	}
	t.Logf("blue-green under load: %d requests, %d failed", total.Load(), failed.Load())
	for len(loadErrs) > 0 {
		t.Log(<-loadErrs)
	}
	if !strings.Contains(second.summary, "| `exec web exit=1") || !strings.Contains(second.summary, "| `GET /health json.git_sha=") {
		t.Errorf("contract checks missing from the summary:\n%s", second.summary)
	}
	for _, phase := range []string{"| lock |", "| upload |", "| pull |", "| start |", "| verify |", "| switch |", "| drain |"} {
		if !strings.Contains(second.summary, phase) {
			t.Errorf("summary timeline lacks %s:\n%s", phase, second.summary)
		}
	}

	back := runCLI(t, map[string]string{"GITHUB_ACTOR": "tester"}, nil, "rollback",
		"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
		"--project", h.project, "--edge-image", h.edge, "--edge-ports", fmt.Sprintf("127.0.0.1:%d:80", h.edgePort),
		"--url", h.url(), "--drain", "5s", "--stop-timeout", "5s")
	if back.code != 0 || h.served(t) != sha1 || back.outputs["deployed-sha"] != sha1 {
		t.Fatalf("rollback: exit %d, serving %s\n%s", back.code, h.served(t), back.log)
	}
}

// TestDeployComposeFailuresKeepOldVersion: each broken new version is caught
// before it gets traffic, the old one keeps serving, the step fails with
// the reason.
func TestDeployComposeFailuresKeepOldVersion(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	v1 := h.app(t, sha1, "v1")
	if r := h.deploy(t, sha1, v1); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}
	crash, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/crash", "v1", map[string][]byte{"/bin/app": []byte("not an executable program")}, []string{"/bin/app"}, nil)
	for _, tc := range []struct {
		name, sha, image string
		extra            []string
		want             string
		result           string
	}{
		{name: "crashes at start", sha: sha2, image: digestRef(t, crash), want: "failed to start", result: "failed"},
		{name: "serves the old commit", sha: sha3, image: v1, want: "serves 1111111", result: "failed"},
		{name: "contract fails", sha: sha2, image: h.app(t, sha2, "v2"), extra: []string{"--checks", "GET /health json.status=broken"}, want: "contract checks failed", result: "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.deploy(t, tc.sha, tc.image, append(tc.extra, "--verify-timeout", "6s")...)
			if r.code != 1 || r.outputs["result"] != tc.result {
				t.Fatalf("exit %d result %q, want 1 %q\n%s", r.code, r.outputs["result"], tc.result, r.log)
			}
			if !strings.Contains(r.summary, tc.want) || !strings.Contains(r.summary, "previous version kept serving") {
				t.Errorf("summary does not say %q and that the old version kept serving:\n%s", tc.want, r.summary)
			}
			if got := h.served(t); got != sha1 {
				t.Errorf("serving %s after a failed deploy, want %s", got, sha1)
			}
			if imgs := h.images(t, "web"); len(imgs) != 1 || imgs[0] != v1 {
				t.Errorf("containers left: %q, want only the v1 one", imgs)
			}
		})
	}
	// A contract failure with allow-failure deploys with a warning.
	r := h.deploy(t, sha2, h.app(t, sha2, "v2"), "--checks", "GET /health json.status=broken", "--allow-failure=true")
	if r.code != 0 || h.served(t) != sha2 || !strings.Contains(r.summary, "⚠️") || !strings.Contains(r.log, "::warning") {
		t.Fatalf("allow-failure: exit %d serving %s\n%s\n%s", r.code, h.served(t), r.summary, r.log)
	}
}

func TestDeployComposeBadInputChangesNothing(t *testing.T) {
	h := startComposeHost(t)
	v1 := h.app(t, sha1, "v1")
	for _, tc := range []struct {
		name, compose, input, want string
		extra                      []string
	}{
		{"compose syntax error", "services:\n  web:\n    image: x\n   expose: [\n", "compose-file", "not a valid Compose file", nil},
		{"unknown host key", appCompose, "", "does not match known-hosts", []string{"--known-hosts", "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH8Yqs6uI4hZQdsCxBZOc0hn3k9vTbyW/QWNNPsvDkBd"}},
		{"injection in service name", appCompose, "services", "not in compose.yml", []string{"--services", "web; rm -rf /"}},
		{"published port with blue-green", "services:\n  web:\n    image: x\n    ports: [\"8080:8080\"]\n    labels: {gantry.edge: \"true\"}\n", "compose-file", "publishes host port 8080", nil},
		{"canary steps", appCompose, "canary-steps", "rising percentages", []string{"--canary-steps", "50,10"}},
		{"image by tag", appCompose, "images", `"web=registry.example/app:latest" is not service=repository@sha256:...; deploy by digest`, []string{"--images", "web=registry.example/app:latest"}},
		{"commit not hex", appCompose, "sha", `"HEAD~1" is not a hex commit SHA`, []string{"--sha", "HEAD~1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			workspace(t, map[string]string{"compose.yml": tc.compose})
			for i := range tc.extra {
				tc.extra[i] = strings.Replace(tc.extra[i], "[127.0.0.1]:1", fmt.Sprintf("[127.0.0.1]:%d", h.sshd.Port), 1)
			}
			r := h.deploy(t, sha1, v1, tc.extra...)
			if r.code != 1 || !strings.Contains(r.log, tc.want) {
				t.Fatalf("exit %d, want 1 and %q\n%s", r.code, tc.want, r.log)
			}
			if tc.input != "" && !strings.Contains(r.log, "::error title="+tc.input+"::") {
				t.Errorf("error not titled %s:\n%s", tc.input, r.log)
			}
			u, _ := user.Lookup(h.sshd.User)
			if _, err := os.Stat(filepath.Join(u.HomeDir, "gantry", h.project)); !os.IsNotExist(err) {
				t.Errorf("the host was touched: %v", err)
			}
		})
	}
}

func TestDeployComposeStrategies(t *testing.T) {
	for _, strategy := range []string{"canary", "rolling", "recreate"} {
		t.Run(strategy, func(t *testing.T) {
			h := startComposeHost(t)
			compose := appCompose
			if strategy == "rolling" {
				compose = strings.Replace(appCompose, "    expose:", "    deploy:\n      replicas: 2\n    expose:", 1)
			}
			if strategy == "recreate" {
				compose = "services:\n  web:\n    image: x\n    ports: [\"127.0.0.1:" + fmt.Sprint(h.edgePort) + ":8080\"]\n"
			}
			workspace(t, map[string]string{"compose.yml": compose})
			extra := []string{"--strategy", strategy, "--canary-steps", "20,100", "--canary-interval", "2s"}
			if r := h.deploy(t, sha1, h.app(t, sha1, "v1"), extra...); r.code != 0 {
				t.Fatalf("first: %s", r.log)
			}
			r := h.deploy(t, sha2, h.app(t, sha2, "v2"), extra...)
			if r.code != 0 || h.served(t) != sha2 {
				t.Fatalf("%s: exit %d serving %s\n%s", strategy, r.code, h.served(t), r.log)
			}
			if strategy == "canary" && !strings.Contains(r.log, "canary: 20% of traffic") {
				t.Errorf("no canary step in the log:\n%s", r.log)
			}
			if strategy == "rolling" && !strings.Contains(r.summary, "replace 2/2") {
				t.Errorf("no rolling steps in the summary:\n%s", r.summary)
			}
		})
	}
}

var _ = context.Background

// TestDeployComposeSSHCutMidDeploy cuts every SSH connection while the new
// containers are starting. gantry reconnects: the deploy either finishes or
// rolls back; either way one version serves, no half-created container is
// left, the lock is released and the next deploy succeeds.
func TestDeployComposeSSHCutMidDeploy(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	v1, v2 := h.app(t, sha1, "v1"), h.app(t, sha2, "v2")
	if r := h.deploy(t, sha1, v1); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if len(h.images(t, "web")) == 2 {
				h.sshd.CutConnections()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r := h.deploy(t, sha2, v2)
	<-cut
	t.Logf("deploy cut mid-way: exit %d, result %s", r.code, r.outputs["result"])
	if !strings.Contains(r.log, "reconnected to") {
		t.Errorf("no reconnection after the cut:\n%s", r.log)
	}
	served := h.served(t)
	switch {
	case r.code == 0 && served == sha2:
	case r.code != 0 && served == sha1:
	default:
		t.Fatalf("exit %d but serving %s\n%s", r.code, served, r.log)
	}
	if imgs := h.images(t, "web"); len(imgs) != 1 {
		t.Errorf("containers left after the cut deploy: %v", imgs)
	}
	if held := lockObject(t, "container", h.project); held != "" {
		t.Errorf("the deploy lock is still held: %s", held)
	}
	if again := h.deploy(t, sha3, h.app(t, sha3, "v3"), "--lock-wait", "5s"); again.code != 0 || h.served(t) != sha3 {
		t.Fatalf("re-run after the cut: exit %d\n%s", again.code, again.log)
	}
}

// variant pushes base with GIT_SHA=sha in its environment (examples/app
// reports it on /health): a new image, without a rebuild.
func (h *composeHost) variant(t *testing.T, base, sha string) string {
	t.Helper()
	ref, err := name.ParseReference(base)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Env = append(append([]string{}, cfg.Env...), "GIT_SHA="+sha)
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tag := ref.Context().Tag("sha-" + sha[:7])
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return ref.Context().Digest(d.String()).String()
}

// TestDeployComposeConcurrentDeploysSerialize starts 20 deploys of different
// commits at once. The lock serialises them: each one succeeds and is
// recorded, the version serving at the end is the last one that took the
// lock, and exactly one web container is left.
func TestDeployComposeConcurrentDeploysSerialize(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	base := h.app(t, sha1, "v1")
	if r := h.deploy(t, sha1, base); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}
	const n = 20
	shas := make([]string, n)
	images := make([]string, n)
	for i := range shas {
		shas[i] = fmt.Sprintf("%08x%032x", 0xc0ffee00+i, i)
		images[i] = h.variant(t, base, shas[i])
	}
	results := make([]run, n)
	var wg sync.WaitGroup
	for i := range shas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.deploy(t, shas[i], images[i], "--lock-wait", "10m", "--drain", "2s", "--url", "")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("deploy %d (%s) failed: %s", i, shas[i][:7], r.log)
		}
	}
	u, _ := user.Lookup(h.sshd.User)
	data, err := os.ReadFile(filepath.Join(u.HomeDir, "gantry", h.project, ".gantry", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var last struct {
		SHA    string `json:"sha"`
		Result string `json:"result"`
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != n+1 {
		t.Errorf("history has %d entries, want %d", len(lines), n+1)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil || last.Result != "success" {
			t.Errorf("history line %q", l)
		}
		seen[last.SHA] = true
	}
	if len(seen) != n+1 {
		t.Errorf("history records %d distinct commits, want %d", len(seen), n+1)
	}
	if got := h.served(t); got != last.SHA {
		t.Errorf("serving %s, but the last deploy recorded is %s", got, last.SHA)
	}
	if imgs := h.images(t, "web"); len(imgs) != 1 {
		t.Errorf("web containers left: %v", imgs)
	}
	if held := lockObject(t, "container", h.project); held != "" {
		t.Errorf("lock still held: %s", held)
	}
}

// TestDeployComposePrivateRegistryAndNoAutoRollback pulls from a registry
// that demands credentials (the host logs in with a private docker config
// that is removed afterwards), then shows that auto-rollback: false leaves a
// failed version in place, saying so.
func TestDeployComposePrivateRegistryAndNoAutoRollback(t *testing.T) {
	h := startComposeHost(t)
	private := testenv.StartRegistry(t, testenv.RegistryOptions{Users: map[string]string{"puller": "s3cret-pull"}})
	workspace(t, map[string]string{"compose.yml": appCompose})
	// Copy v1 into the private registry.
	src, err := name.ParseReference(h.app(t, sha1, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(src)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := name.ParseReference(private.Host + "/shop/web:v1")
	if err := remote.Write(dst, img, remote.WithAuth(&authn.Basic{Username: "puller", Password: "s3cret-pull"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	v1 := dst.Context().Digest(d.String()).String()

	if r := h.deploy(t, sha1, v1); r.code == 0 {
		t.Fatalf("a pull without credentials succeeded:\n%s", r.log)
	}
	r := h.deploy(t, sha1, v1, "--registry-username", "puller", "--registry-password", "s3cret-pull")
	if r.code != 0 || h.served(t) != sha1 {
		t.Fatalf("deploy with registry credentials: exit %d\n%s", r.code, r.log)
	}
	if strings.Count(r.log, "s3cret-pull") != 1 || strings.Contains(r.summary, "s3cret-pull") {
		t.Errorf("the registry password leaked:\n%s", r.log)
	}
	u, _ := user.Lookup(h.sshd.User)
	if b, err := os.ReadFile(filepath.Join(u.HomeDir, ".docker", "config.json")); err == nil && strings.Contains(string(b), "auths") {
		t.Errorf("the deploy user's docker config kept a login: %s", b)
	}
	if out, _ := exec.Command("find", "/tmp", "-maxdepth", "2", "-user", h.sshd.User, "-name", "config.json").Output(); len(out) > 0 {
		t.Errorf("a private docker config with the login was left behind: %s", out)
	}

	crash, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/crash", "v2", map[string][]byte{"/bin/app": []byte("not a program")}, []string{"/bin/app"}, nil)
	r = h.deploy(t, sha2, digestRef(t, crash), "--auto-rollback=false", "--registry-username", "puller", "--registry-password", "s3cret-pull")
	if r.code != 1 || r.outputs["result"] != "abandoned" || !strings.Contains(r.summary, "auto-rollback is off") {
		t.Fatalf("auto-rollback off: exit %d result %q\n%s", r.code, r.outputs["result"], r.summary)
	}
	if imgs := h.images(t, "web"); len(imgs) != 2 {
		t.Errorf("the failed container should be left for debugging beside the old one: %v", imgs)
	}
	if h.served(t) != sha1 {
		t.Errorf("the old version should still serve: %s", h.served(t))
	}
}

// TestDeployComposeOtherUsersAndDirsSerialize deploys one project at once
// through two SSH users (two homes, so two project directories) and from
// this machine with a third directory: they share the engine's lock, so at
// no moment do two of them run, and each one succeeds in turn.
func TestDeployComposeOtherUsersAndDirsSerialize(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (to log in as two users)", "run the tests as root")
	}
	h := startComposeHost(t)
	rootSSHD := testenv.StartSSHD(t, testenv.SSHDOptions{})
	t.Cleanup(func() { testenv.RemoveComposeProject(h.project, rootSSHD.User) })
	workspace(t, map[string]string{"compose.yml": appCompose})
	base := h.app(t, sha1, "v1")
	if r := h.deploy(t, sha1, base); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}
	shas := []string{sha2, sha3, "4444444444444444444444444444444444444444"}
	images := make([]string, len(shas))
	for i := range shas {
		images[i] = h.variant(t, base, shas[i])
	}
	localDir := t.TempDir()
	as := [][]string{
		nil, // the deploy user, through SSH
		{"--host", rootSSHD.Host, "--port", fmt.Sprint(rootSSHD.Port), "--user", rootSSHD.User, "--ssh-key", string(rootSSHD.ClientKey), "--known-hosts", rootSSHD.KnownHosts},
		{"--host", "local", "--port", "", "--user", "", "--ssh-key", "", "--known-hosts", "", "--project-dir", localDir},
	}
	// Blue-green keeps at most two web containers while one deploy runs;
	// two deploys at once would start a third.
	stop := make(chan struct{})
	var most atomic.Int32
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+h.project, "--filter", "label=com.docker.compose.service=web").Output()
			if n := int32(len(strings.Fields(string(ids)))); n > most.Load() {
				most.Store(n)
			}
		}
	}()
	results := make([]run, len(shas))
	var wg sync.WaitGroup
	for i := range shas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.deploy(t, shas[i], images[i], append([]string{"--lock-wait", "5m", "--drain", "2s", "--url", ""}, as[i]...)...)
		}()
	}
	wg.Wait()
	close(stop)
	<-watched
	waited := 0
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("deploy %d (%s) failed: %s", i, shas[i][:7], r.log)
		}
		if strings.Contains(r.log, "waiting for the deploy lock") {
			waited++
		}
	}
	if waited == 0 {
		t.Error("no deploy waited for another: the three did not share one lock")
	}
	if most.Load() > 2 {
		t.Errorf("%d web containers at once: two deploys ran together", most.Load())
	}
	if imgs := h.images(t, "web"); len(imgs) != 1 {
		t.Errorf("web containers left: %v", imgs)
	}
	if held := lockObject(t, "container", h.project); held != "" {
		t.Errorf("lock still held: %s", held)
	}
}

// TestDeployComposeSIGKILLMidDeploy kills the gantry process (SIGKILL, as a
// lost runner dies) while its new version is starting. The old version
// keeps serving; the next deploy, with the default lock-stale, takes the
// dead deploy's lock over, cleans up what it left and ends with exactly one
// version serving.
func TestDeployComposeSIGKILLMidDeploy(t *testing.T) {
	h := startComposeHost(t)
	bin := filepath.Join(t.TempDir(), "gantry")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/gantry").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	workspace(t, map[string]string{"compose.yml": appCompose})
	v1 := h.app(t, sha1, "v1")
	if r := h.deploy(t, sha1, v1); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}
	stop := make(chan struct{})
	total, failed, wait := load(h.url(), stop)

	killed := exec.Command(bin, lastWins(append(h.deployArgs(sha2, h.variant(t, v1, sha2)), "--verify-timeout", "2m"))...)
	var out bytes.Buffer
	killed.Stdout, killed.Stderr = &out, &out
	killed.Env = append(os.Environ(), "GITHUB_ACTOR=killed-runner")
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed once its new version is up beside the old one.
	started := testenv.Eventually(2*time.Minute, 20*time.Millisecond, func() bool { return len(h.images(t, "web")) >= 2 })
	_ = killed.Process.Signal(syscall.SIGKILL)
	_ = killed.Wait()
	at := time.Now()
	if !started {
		t.Fatalf("the deploy never started its new version:\n%s", out.String())
	}
	if got := h.served(t); got != sha1 {
		t.Errorf("right after the kill %s serves, want the old %s", got, sha1)
	}
	next := h.deploy(t, sha3, h.app(t, sha3, "v3"), "--lock-stale", "", "--lock-wait", "5m")
	took := time.Since(at)
	close(stop)
	wait()
	if next.code != 0 || !strings.Contains(next.log, "taking over the deploy lock") || !strings.Contains(next.log, "killed-runner") {
		t.Fatalf("the next deploy: exit %d, want success after taking over killed-runner's lock\n%s", next.code, next.log)
	}
	if got := h.served(t); got != sha3 {
		t.Errorf("serves %s at the end, want %s", got, sha3)
	}
	if imgs := h.images(t, "web"); len(imgs) != 1 {
		t.Errorf("web containers left: %v", imgs)
	}
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed while a deploy was killed and the next one took over", failed.Load(), total.Load())
	}
	t.Logf("the next deploy finished %s after the kill (lock-stale %s); %d requests, %d failed", took.Round(100*time.Millisecond), lock.DefaultStale, total.Load(), failed.Load())
}

// TestDeployComposeLocalStandaloneCompose: with GANTRY_DOCKER_COMPOSE set, a
// deploy to this machine (host local) runs that standalone binary for every
// docker compose command (here a wrapper that logs its arguments, then runs
// the real one), as scripts/demo.sh does with its own copy.
func TestDeployComposeLocalStandaloneCompose(t *testing.T) {
	h := startComposeHost(t)
	bin := testenv.Compose(t)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	wrapper := filepath.Join(dir, "docker-compose")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >>'%s'\nexec '%s' \"$@\"\n", calls, bin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	workspace(t, map[string]string{"compose.yml": appCompose})
	projectDir := filepath.Join(t.TempDir(), "project")
	args := lastWins(append(h.deployArgs(sha1, h.app(t, sha1, "v1")),
		"--host", "local", "--port", "", "--user", "", "--ssh-key", "", "--known-hosts", "", "--project-dir", projectDir))
	missing := filepath.Join(dir, "no-such-docker-compose")
	r := runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true", ComposeBinaryEnv: missing}, nil, args...)
	if want := ComposeBinaryEnv + "=" + missing + " is not an executable file"; r.code != 1 || !strings.Contains(r.log, want) {
		t.Fatalf("a missing %s: exit %d, want 1 and %q:\n%s", ComposeBinaryEnv, r.code, want, r.log)
	}
	if _, err := os.Stat(projectDir); !os.IsNotExist(err) {
		t.Fatalf("a missing %s touched the project directory: %v", ComposeBinaryEnv, err)
	}
	r = runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true", ComposeBinaryEnv: wrapper}, nil, args...)
	if r.code != 0 {
		t.Fatalf("deploy with %s=%s: %s", ComposeBinaryEnv, wrapper, r.log)
	}
	if got := h.served(t); got != sha1 {
		t.Errorf("served %q, want %s", got, sha1)
	}
	log, err := os.ReadFile(calls)
	if err != nil || !strings.Contains(string(log), "--project-name "+h.project) || !strings.Contains(string(log), " up ") {
		t.Errorf("%s ran for no docker compose up of project %s (%v): %q", wrapper, h.project, err, log)
	}
}
