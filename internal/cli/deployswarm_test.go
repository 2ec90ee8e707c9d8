package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/remote"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// swarmHost is a single-node swarm on this machine's engine, its manager
// reached over a real sshd as an unprivileged user in the docker group,
// images in a real registry.
type swarmHost struct {
	reg     *testenv.Registry
	sshd    *testenv.SSHD
	stack   string
	ingress string // host:port in front of web's tasks
}

func startSwarmHost(t *testing.T) *swarmHost {
	t.Helper()
	testenv.Swarm(t)
	h := &swarmHost{
		reg:   testenv.StartRegistry(t, testenv.RegistryOptions{}),
		sshd:  testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: true}),
		stack: "gs" + randHex(4),
	}
	h.ingress = testenv.SwarmIngress(t, h.stack+"_web", 8080)
	t.Cleanup(func() {
		_ = exec.Command("docker", "stack", "rm", h.stack).Run()
		if u, err := user.Lookup(h.sshd.User); err == nil {
			_ = os.RemoveAll(filepath.Join(u.HomeDir, "gantry", h.stack))
		}
	})
	return h
}

func (h *swarmHost) url() string { return "http://" + h.ingress + "/health" }

// composeFile is a stack of web (2 replicas, healthcheck, start-first,
// rollback on failure) and job (a one-shot task).
func (h *swarmHost) composeFile() string {
	return `services:
  web:
    image: placeholder.invalid/web
    expose: ["8080"]
    healthcheck:
      test: ["CMD", "/app", "-health"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 1s
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        order: start-first
        failure_action: rollback
        monitor: 3s
      rollback_config:
        parallelism: 1
        order: start-first
  job:
    image: placeholder.invalid/job
    command: ["-version"]
    deploy:
      restart_policy:
        condition: none
`
}

func (h *swarmHost) deploy(t *testing.T, sha, web string, extra ...string) run {
	return h.deployJob(t, sha, web, web, extra...)
}

func (h *swarmHost) deployJob(t *testing.T, sha, web, job string, extra ...string) run {
	t.Helper()
	args := []string{"deploy-swarm",
		"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
		"--stack", h.stack, "--compose-file", "compose.yml", "--sha", sha,
		"--images", "web=" + web + "\njob=" + job,
		"--url", h.url(), "--verify-timeout", "30s", "--timeout", "2m", "--lock-wait", "0s",
	}
	return runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true"}, nil, lastWins(append(args, extra...))...)
}

func served(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		GitSHA string `json:"git_sha"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.GitSHA
}

func TestDeploySwarm(t *testing.T) {
	h := startSwarmHost(t)
	workspace(t, map[string]string{"compose.yml": h.composeFile()})
	sha1, sha2, sha3 := "1111111"+strings.Repeat("a", 33), "2222222"+strings.Repeat("b", 33), "3333333"+strings.Repeat("c", 33)
	v1 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha1, "v1"))
	v2 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha2, "v2"))

	first := h.deploy(t, sha1, v1)
	if first.code != 0 || first.outputs["result"] != "success" {
		t.Fatalf("first deploy: exit %d\n%s\n%s", first.code, first.log, first.summary)
	}
	if !strings.Contains(first.summary, "| `web` |") || !strings.Contains(first.summary, "created") || !strings.Contains(first.summary, "| `job` |") {
		t.Errorf("first summary:\n%s", first.summary)
	}
	// job has no healthcheck: a warning annotation and a summary line; web has one: none.
	if !strings.Contains(first.log, "::warning::service job has no healthcheck") || strings.Contains(first.log, "service web has no healthcheck") ||
		!strings.Contains(first.summary, "⚠️ service job has no healthcheck") {
		t.Errorf("healthcheck warnings:\n%s\n%s", first.log, first.summary)
	}

	second := h.deploy(t, sha2, v2)
	if second.code != 0 || second.outputs["previous-sha"] != sha1 || second.outputs["deployed-sha"] != sha2 || second.outputs["url"] != h.url() {
		t.Fatalf("update: exit %d %v\n%s\n%s", second.code, second.outputs, second.log, second.summary)
	}
	var svcs []struct {
		Name, State             string
		ReplicasBefore, Desired int
		Running                 int
	}
	if err := json.Unmarshal([]byte(second.outputs["services"]), &svcs); err != nil || len(svcs) != 2 {
		t.Fatalf("services output %q: %v", second.outputs["services"], err)
	}
	for _, s := range svcs {
		if s.Name == "web" && (s.State != "completed" || s.ReplicasBefore != 2 || s.Desired != 2 || s.Running != 2) {
			t.Errorf("web after the update: %+v", s)
		}
		if s.Name == "job" && s.State != "done" {
			t.Errorf("job after the update: %+v (a one-shot service must not hang the watch)", s)
		}
	}
	if got := served(t, h.url()); got != sha2 {
		t.Errorf("serves %q after the update, want %s", got, sha2)
	}

	// A release whose container cannot start: Swarm rolls it back, and that is a failure.
	crash, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/crash", "v3", map[string][]byte{"/app": []byte("#!/bin/nowhere\n")}, []string{"/app"}, nil)
	r := h.deployJob(t, sha3, digestRef(t, crash), v2)
	if r.code != 1 || r.outputs["result"] != "rolled-back" {
		t.Fatalf("crashing release: exit %d result %q\n%s\n%s", r.code, r.outputs["result"], r.log, r.summary)
	}
	for _, want := range []string{"### ↩️ deploy-swarm: rolled-back", "Swarm is rolling service web back", "task errors: failed: task: non-zero exit (1)", "Swarm's rollback finished", "| rolled back |"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.summary)
		}
	}
	if got := served(t, h.url()); got != sha2 {
		t.Errorf("serves %q after the failed release, want %s still", got, sha2)
	}

	// rollback --to <sha1> redeploys v1's digests from the manager's history, without a rebuild.
	rb := runCLI(t, map[string]string{"GITHUB_ACTOR": "tester"}, nil, "rollback", "--to", sha1[:7],
		"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
		"--stack", h.stack, "--url", h.url(), "--timeout", "2m")
	if rb.code != 0 || rb.outputs["deployed-sha"] != sha1 || !strings.Contains(rb.summary, "### ✅ rollback: success") {
		t.Fatalf("rollback: exit %d %v\n%s\n%s", rb.code, rb.outputs, rb.log, rb.summary)
	}
	if got := served(t, h.url()); got != sha1 {
		t.Errorf("serves %q after the rollback, want %s", got, sha1)
	}
}

func TestDeploySwarmRefusals(t *testing.T) {
	h := startSwarmHost(t)
	workspace(t, map[string]string{
		"compose.yml": h.composeFile(),
		"broken.yml":  "services:\n  web:\n    image: x\n    deploy:\n      replicas: two\n",
	})
	img := "127.0.0.1:5000/app@sha256:" + strings.Repeat("1", 64)
	r := h.deploy(t, testSHA, img, "--compose-file", "broken.yml")
	if r.code != 1 || !strings.Contains(r.log, "::error title=compose-file::") || !strings.Contains(r.log, "broken.yml") {
		t.Errorf("invalid compose file: exit %d\n%s", r.code, r.log)
	}
	r = h.deploy(t, testSHA, "registry.example/app:latest")
	if r.code != 1 || !strings.Contains(r.log, "::error title=images::") {
		t.Errorf("image by tag: exit %d\n%s", r.code, r.log)
	}
	r = h.deploy(t, testSHA, img, "--update-order", "whenever")
	if r.code != 1 || !strings.Contains(r.log, "::error title=update-order::") {
		t.Errorf("bad update-order: exit %d\n%s", r.code, r.log)
	}
	if out, _ := exec.Command("docker", "service", "ls", "--quiet", "--filter", "label=com.docker.stack.namespace="+h.stack).Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("refused deploys created services: %s", out)
	}
	_ = time.Second
}

// TestDeploySwarmScaleLockAndSSHCut: swarm-scale, a deploy refused while
// another holds the stack's lock, and every SSH connection cut mid-watch.
func TestDeploySwarmScaleLockAndSSHCut(t *testing.T) {
	h := startSwarmHost(t)
	workspace(t, map[string]string{"compose.yml": h.composeFile()})
	sha1, sha2 := "1111111"+strings.Repeat("a", 33), "2222222"+strings.Repeat("b", 33)
	v1 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha1, "v1"))
	v2 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha2, "v2"))
	if r := h.deploy(t, sha1, v1); r.code != 0 {
		t.Fatalf("first deploy: %s", r.log)
	}

	sc := runCLI(t, nil, nil, "swarm-scale", "--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts, "--stack", h.stack, "--scale", "web=3")
	if sc.code != 0 || !strings.Contains(sc.outputs["services"], `"Running":3`) || !strings.Contains(sc.summary, "2 → 3") {
		t.Fatalf("swarm-scale: exit %d %v\n%s\n%s", sc.code, sc.outputs, sc.log, sc.summary)
	}
	// Down to 1: done once the two surplus tasks have stopped, not when
	// Swarm has merely been told to stop them.
	sc = runCLI(t, nil, nil, "swarm-scale", "--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts, "--stack", h.stack, "--scale", "web=1")
	if sc.code != 0 || !strings.Contains(sc.summary, "3 → 1") {
		t.Fatalf("swarm-scale to 1: exit %d %v\n%s\n%s", sc.code, sc.outputs, sc.log, sc.summary)
	}
	if out, err := exec.Command("docker", "service", "ls", "--filter", "name="+h.stack+"_web", "--format", "{{.Replicas}}").Output(); err != nil || strings.TrimSpace(string(out)) != "1/1" {
		t.Errorf("after swarm-scale to 1, docker service ls says %q (%v), want 1/1", out, err)
	}

	// Another deploy, from another user and machine, holds the stack's lock
	// in the swarm: refused, naming the holder, nothing changed.
	other, err := lock.Acquire(context.Background(), &remote.Local{}, lock.SwarmStack(h.stack), lock.Options{}, lock.Info{Actor: "alice", SHA: sha1, Reason: "hotfix"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.deploy(t, sha2, v2)
	if r.code != 1 || !strings.Contains(r.log, "alice") {
		t.Errorf("deploy under another's lock: exit %d\n%s", r.code, r.log)
	}
	if got := served(t, h.url()); got != sha1 {
		t.Errorf("serves %q after the refused deploy, want %s", got, sha1)
	}
	if err := other.Release(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Every SSH connection cut while Swarm updates, once docker stack deploy
	// has returned (a cut during it is another case: the command's outcome
	// is unknown): gantry reconnects and still judges the update.
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		if testenv.Eventually(time.Minute, 20*time.Millisecond, func() bool {
			out, _ := exec.Command("docker", "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", h.stack+"_web").Output()
			return strings.TrimSpace(string(out)) == "updating" && !processRunning("stack", "deploy")
		}) {
			h.sshd.CutConnections()
		}
	}()
	r = h.deploy(t, sha2, v2)
	<-cut
	if r.code != 0 || !strings.Contains(r.log, "reconnected to") {
		t.Fatalf("deploy with SSH cut mid-watch: exit %d\n%s", r.code, r.log)
	}
	if got := served(t, h.url()); got != sha2 {
		t.Errorf("serves %q, want %s", got, sha2)
	}
	if held := lockObject(t, "service", h.stack); held != "" {
		t.Errorf("the lock is still held after the cut deploy: %s", held)
	}
}

// processRunning reports whether a process on this machine has all of words
// among its arguments (read from /proc, as the test hosts are local).
func processRunning(words ...string) bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if !slices.ContainsFunc(words, func(w string) bool { return !slices.Contains(args, w) }) {
			return true
		}
	}
	return false
}
