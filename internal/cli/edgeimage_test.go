package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// repoRoot is gantry's checkout, where the documented recipe runs.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestEdgeImageBadInput: every bad input fails with one error line before
// anything reaches the registry.
func TestEdgeImageBadInput(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		registry.New().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	t.Chdir(repoRoot(t))
	notModule := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no image", nil, "image"},
		{"a digest", []string{"--image", host + "/edge@sha256:" + strings.Repeat("a", 64)}, "names a digest"},
		{"bad reference", []string{"--image", host + "/Edge:v1"}, "is not an image reference"},
		{"bad tag", []string{"--image", host + "/edge", "--tags", "-v1"}, "is not a valid tag"},
		{"bad platform", []string{"--image", host + "/edge", "--platforms", "amd64"}, "is not a platform"},
		{"not linux", []string{"--image", host + "/edge", "--platforms", "windows/amd64"}, "runs on Linux only"},
		{"edge dir elsewhere", []string{"--image", host + "/edge", "--edge-dir", notModule}, "is not gantry-edge's source"},
		{"binary without platform", []string{"--image", host + "/edge", "--platforms", "linux/amd64,linux/arm64", "--binary", "dist/caddy"}, "names no platform"},
		{"missing binary", []string{"--image", host + "/edge", "--binary", filepath.Join(notModule, "caddy")}, "no such file"},
		{"dynamic binary", []string{"--image", host + "/edge", "--binary", "/bin/true"}, "dynamically linked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := requests.Load()
			r := runCLI(t, map[string]string{"GITHUB_ACTIONS": "true"}, nil, append([]string{"edge-image"}, tc.args...)...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
			}
			var errs []string
			for _, line := range strings.Split(r.log, "\n") {
				if strings.HasPrefix(line, "::error") {
					errs = append(errs, line)
				}
			}
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("error lines %q, want one with %q", errs, tc.want)
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("%d requests reached the registry", n)
			}
			if r.outputs["image"] != "" {
				t.Errorf("image output %q after a failure", r.outputs["image"])
			}
		})
	}
}

// TestEdgeImageRecipeServesDeploy runs the recipe of edge/README.md as
// written (gantry edge-image from the checkout, pushed to a real registry)
// and deploys with the image it prints: the edge starts and serves both
// versions of a blue-green deploy.
func TestEdgeImageRecipeServesDeploy(t *testing.T) {
	h := startComposeHost(t)
	root := repoRoot(t)
	recipe := readRecipe(t, filepath.Join(root, "edge", "README.md"))
	t.Chdir(root)
	args := strings.Fields(strings.ReplaceAll(recipe, "registry.internal:5000", h.reg.Host))
	r := runCLI(t, map[string]string{"GITHUB_ACTIONS": "true"}, nil, args[3:]...)
	if r.code != 0 {
		t.Fatalf("%s: exit %d\n%s", recipe, r.code, r.log)
	}
	img := r.outputs["image"]
	ref, err := name.NewDigest(img)
	if err != nil || !strings.HasPrefix(img, h.reg.Host+"/gantry-edge@sha256:") {
		t.Fatalf("image output %q is not %s/gantry-edge@sha256:… (%v)", img, h.reg.Host, err)
	}
	tagged, err := remote.Head(ref.Context().Tag("v1"))
	if err != nil || tagged.Digest.String() != ref.DigestStr() {
		t.Fatalf("tag v1 is %v (%v), want %s", tagged, err, ref.DigestStr())
	}

	workspace(t, map[string]string{"compose.yml": appCompose})
	h.edge = img
	for _, v := range []struct{ sha, version string }{{sha1, "v1"}, {sha2, "v2"}} {
		if r := h.deploy(t, v.sha, h.app(t, v.sha, v.version)); r.code != 0 {
			t.Fatalf("deploy %s with the recipe's edge image: exit %d\n%s", v.version, r.code, r.log)
		}
		if got := h.served(t); got != v.sha {
			t.Fatalf("the edge serves %s, want %s", got, v.sha)
		}
	}
	if imgs := h.images(t, "gantry-edge"); len(imgs) != 1 || imgs[0] != img {
		t.Errorf("edge containers run %q, want one of %s", imgs, img)
	}
}

// readRecipe returns the one "go run ./cmd/gantry edge-image" line of the
// README: the test runs its arguments through the same CLI in-process.
func readRecipe(t *testing.T, readme string) string {
	t.Helper()
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "go run ./cmd/gantry edge-image ") {
			found = append(found, strings.TrimSpace(line))
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s has %d lines starting with go run ./cmd/gantry edge-image, want the one recipe: %q", readme, len(found), found)
	}
	return found[0]
}

// TestDeployComposeEdgeThatCannotStart: an edge image without caddy on its
// PATH (the binary under another name) fails the deploy with the engine's
// reason in one line and leaves no edge container of its own; an edge that
// was running before is started again and keeps serving the old version.
func TestDeployComposeEdgeThatCannotStart(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	good := h.edge
	broken, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/edge-no-caddy", "v1",
		map[string][]byte{"/usr/bin/gantry-edge": []byte("#!/bin/sh\n")}, []string{"gantry-edge", "run", "--resume"}, nil)
	broken = digestRef(t, broken)
	v1 := h.app(t, sha1, "v1")
	v2 := h.app(t, sha2, "v2")

	edgeIDs := func() string {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+h.project, "--filter", "label=com.docker.compose.service=gantry-edge").Output()
		return strings.TrimSpace(string(out))
	}
	deployBroken := func(t *testing.T, sha, app, want string) string {
		t.Helper()
		r := h.deploy(t, sha, app, "--edge-image", broken)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
		}
		var errs []string
		for _, line := range strings.Split(r.log, "\n") {
			if strings.HasPrefix(line, "::error") {
				errs = append(errs, line)
			}
		}
		if len(errs) != 1 || !strings.Contains(errs[0], want) || !strings.Contains(errs[0], broken) || strings.Contains(errs[0], "OCI runtime") {
			t.Fatalf("error lines %q, want one with %q and the image", errs, want)
		}
		t.Logf("%s", errs[0])
		for _, img := range h.images(t, "gantry-edge") {
			if img == broken {
				t.Errorf("an edge container of %s was left behind", broken)
			}
		}
		return errs[0]
	}
	const reason = `did not start: exec: "caddy": executable file not found in $PATH`

	t.Run("first deploy", func(t *testing.T) {
		deployBroken(t, sha1, v1, fmt.Sprintf("the edge container %s-gantry-edge-1 of project %s %s", h.project, h.project, reason))
		if ids := edgeIDs(); ids != "" {
			t.Errorf("edge containers left: %q", ids)
		}
	})
	t.Run("an edge was serving", func(t *testing.T) {
		if r := h.deploy(t, sha1, v1, "--edge-image", good); r.code != 0 {
			t.Fatalf("deploy with a working edge: %s", r.log)
		}
		running := edgeIDs()
		deployBroken(t, sha2, v2, fmt.Sprintf("the edge of project %s %s", h.project, strings.Replace(reason, "start:", "start with the new edge-image:", 1)))
		if got := h.served(t); got != sha1 {
			t.Errorf("serving %q after the failed deploy, want %s", got, sha1)
		}
		if ids := edgeIDs(); ids != running {
			t.Errorf("edge containers %q, want the one that ran before, untouched (%s)", ids, running)
		}
		if out, err := exec.Command("docker", "ps", "-aq", "--filter", "name="+h.project+"-gantry-edge-try").Output(); err != nil || len(out) > 0 {
			t.Errorf("the trial container was left behind: %q (%v)", out, err)
		}
	})
	// An edge whose caddy starts, then exits: the one up created goes, and
	// the previous edge runs again from its volumes.
	t.Run("an edge that exits", func(t *testing.T) {
		exits, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/edge-exits", "v1",
			map[string][]byte{"/usr/bin/caddy": exitingBinary(t, "caddy: cannot load the configuration")}, nil, nil)
		exits = digestRef(t, exits)
		r := h.deploy(t, sha2, v2, "--edge-image", exits)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
		}
		var errs []string
		for _, line := range strings.Split(r.log, "\n") {
			if strings.HasPrefix(line, "::error") {
				errs = append(errs, line)
			}
		}
		want := fmt.Sprintf("the edge container %s-gantry-edge-1 of project %s did not start: it ", h.project, h.project)
		if len(errs) != 1 || !strings.Contains(errs[0], want) || !strings.Contains(errs[0], "cannot load the configuration") || !strings.Contains(errs[0], "the previous edge was started again") {
			t.Fatalf("error lines %q, want one with %q, the last output and the previous edge started again", errs, want)
		}
		t.Logf("%s", errs[0])
		if got := h.served(t); got != sha1 {
			t.Errorf("serving %q after the failed deploy, want %s", got, sha1)
		}
		if imgs := h.images(t, "gantry-edge"); len(imgs) != 1 || imgs[0] != good {
			t.Errorf("edge containers run %q, want one of the previous image %s", imgs, good)
		}
	})
}

// exitingBinary compiles a static program that prints msg and exits 1,
// whatever its arguments.
func exitingBinary(t *testing.T, msg string) []byte {
	t.Helper()
	dir := t.TempDir()
	src := fmt.Sprintf("package main\n\nimport \"os\"\n\nfunc main() {\n\tos.Stderr.WriteString(%q)\n\tos.Exit(1)\n}\n", msg+"\n")
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module exits\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", "exits", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "exits"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeploySwarmEdgeThatCannotStart: on a Swarm, an edge image without
// caddy fails the deploy with the task's reason in one line, and the new
// edge service is removed.
func TestDeploySwarmEdgeThatCannotStart(t *testing.T) {
	h := startSwarmHost(t)
	workspace(t, map[string]string{"compose.yml": edgeStackFile})
	broken, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/edge-no-caddy", "v1",
		map[string][]byte{"/usr/bin/gantry-edge": []byte("#!/bin/sh\n")}, []string{"gantry-edge", "run", "--resume"}, nil)
	broken = digestRef(t, broken)
	v1 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha1, "v1"))
	port := testenv.FreePort(t)
	r := runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true"}, nil, "deploy-swarm",
		"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
		"--stack", h.stack, "--compose-file", "compose.yml", "--sha", sha1, "--images", "web="+v1,
		"--edge-image", broken, "--edge-ports", fmt.Sprintf("%d:80", port),
		"--url", fmt.Sprintf("http://127.0.0.1:%d/health", port), "--verify-timeout", "20s", "--timeout", "1m", "--lock-wait", "0s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
	}
	var errs []string
	for _, line := range strings.Split(r.log, "\n") {
		if strings.HasPrefix(line, "::error") {
			errs = append(errs, line)
		}
	}
	want := `new service gantry-edge does not start; task errors: failed: exec: "caddy": executable file not found in $PATH`
	if len(errs) != 1 || !strings.Contains(errs[0], want) || !strings.Contains(errs[0], "check edge-image ("+broken+")") || strings.Contains(errs[0], "OCI runtime") {
		t.Fatalf("error lines %q, want one with %q and the image", errs, want)
	}
	t.Logf("%s", errs[0])
	if rs := replicasOf(t, h.stack+"_gantry-edge"); rs != "" {
		t.Errorf("the edge service is left with %s replicas", rs)
	}
}
