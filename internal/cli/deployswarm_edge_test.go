package cli

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// edgeStackFile is web served through the edge (two replicas, healthcheck).
const edgeStackFile = `services:
  web:
    image: placeholder.invalid/web
    expose: ["8080"]
    labels:
      gantry.edge: "true"
    healthcheck:
      test: ["CMD", "/app", "-health"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 1s
    deploy:
      replicas: 2
`

// replicasOf reads a stack service's desired replicas ("" when it does not exist).
func replicasOf(t *testing.T, service string) string {
	t.Helper()
	out, err := exec.Command("docker", "service", "inspect", "--format", "{{.Spec.Mode.Replicated.Replicas}}", service).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// TestDeploySwarmEdge: blue-green and canary on Swarm through gantry's edge,
// with requests flowing through the edge the whole time; a release that
// reports the wrong commit never gets traffic; rollback switches back.
func TestDeploySwarmEdge(t *testing.T) {
	h := startSwarmHost(t)
	workspace(t, map[string]string{"compose.yml": edgeStackFile})
	edgeImage := testenv.CaddyImage(t, h.reg.Host)
	port := testenv.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	sha1, sha2, sha3 := "1111111"+strings.Repeat("a", 33), "2222222"+strings.Repeat("b", 33), "3333333"+strings.Repeat("c", 33)
	v1 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha1, "v1"))
	v2 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha2, "v2"))
	v3 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha3, "v3"))
	deploy := func(sha, web string, extra ...string) run {
		t.Helper()
		args := []string{"deploy-swarm",
			"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
			"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
			"--stack", h.stack, "--compose-file", "compose.yml", "--sha", sha, "--images", "web=" + web,
			"--edge-image", edgeImage, "--edge-ports", fmt.Sprintf("%d:80", port),
			"--url", url, "--verify-timeout", "30s", "--timeout", "2m", "--lock-wait", "0s", "--drain", "5s",
		}
		return runCLI(t, map[string]string{"GITHUB_ACTOR": "tester", "GITHUB_ACTIONS": "true"}, nil, lastWins(append(args, extra...))...)
	}

	first := deploy(sha1, v1)
	if first.code != 0 || first.outputs["result"] != "success" {
		t.Fatalf("first deploy: exit %d\n%s\n%s", first.code, first.log, first.summary)
	}
	if got := served(t, url); got != sha1 {
		t.Fatalf("serves %q through the edge after the first deploy, want %s", got, sha1)
	}
	if b, g := replicasOf(t, h.stack+"_web-blue"), replicasOf(t, h.stack+"_web-green"); b != "2" || g != "" {
		t.Errorf("after the first deploy: web-blue %q replicas, web-green %q; want 2 and no service", b, g)
	}

	// A task of the stack (a process in web-blue's network stack) cannot
	// reach the edge's admin API, by name or address, whatever Host it
	// forges; the edge's public route answers it.
	probe := testenv.ProbeImage(t, h.reg.Host)
	task := func(svc string) string {
		return "container:" + containerOf(t, "com.docker.swarm.service.name="+h.stack+"_"+svc)
	}
	edgeTask := containerOf(t, "com.docker.swarm.service.name="+h.stack+"_gantry-edge")
	// tasks.gantry-edge: the task's own address (the service's virtual IP
	// needs IPVS, which the test machine may lack).
	testenv.EdgeAdminUnreachable(t, probe, task("web-blue"), "tasks.gantry-edge", sha1)
	testenv.EdgeAdminUnreachable(t, probe, task("web-blue"), ipOn(t, edgeTask, h.stack+"_default"), sha1)
	// An edge as an older gantry left it, admin API open and saved: the
	// next deploy closes it.
	openEdgeAdmin(t, edgeTask)
	assertAdminOpen(t, probe, task("web-blue"), "tasks.gantry-edge")

	// Blue-green: green gets v2, is verified, the edge switches, blue goes to 0.
	// This deploy also closes the open admin API: one configuration
	// reload, which may reset a connection opened at that instant (a
	// one-time cost of the migration, said in the README), so the load
	// starts after it.
	second := deploy(sha2, v2)
	if second.code != 0 || second.outputs["previous-sha"] != sha1 || second.outputs["url"] != url {
		t.Fatalf("blue-green update: exit %d %v\n%s\n%s", second.code, second.outputs, second.log, second.summary)
	}
	if got := served(t, url); got != sha2 {
		t.Errorf("serves %q after the blue-green update, want %s", got, sha2)
	}
	if b, g := replicasOf(t, h.stack+"_web-blue"), replicasOf(t, h.stack+"_web-green"); b != "0" || g != "2" {
		t.Errorf("after the switch: web-blue %q replicas, web-green %q; want 0 and 2", b, g)
	}
	for _, want := range []string{"| switch web |", "| retire |", "`web-green`"} {
		if !strings.Contains(second.summary, want) {
			t.Errorf("blue-green summary lacks %q:\n%s", want, second.summary)
		}
	}
	if !strings.Contains(second.log, "it now listens on "+edge.AdminListen+" inside it only") {
		t.Errorf("the deploy did not say it closed the edge's admin API:\n%s", second.log)
	}
	testenv.EdgeAdminUnreachable(t, probe, task("web-green"), "tasks.gantry-edge", sha2)

	// Requests flow through the edge during every deploy from here on: none may fail.
	var total, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get(url)
			total.Add(1)
			if err != nil || resp.StatusCode != http.StatusOK {
				failed.Add(1)
				if err != nil {
					lastErr.Store(err.Error())
				} else {
					lastErr.Store(resp.Status)
				}
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	stopLoad := func() {
		close(stop)
		wg.Wait()
		if failed.Load() > 0 {
			t.Errorf("%d of %d requests through the edge failed during the deploys (last: %v)", failed.Load(), total.Load(), lastErr.Load())
		}
	}

	// A release that reports another commit: verified at its own address,
	// refused before any traffic; green keeps serving, blue is back at 0.
	wrong := deploy(sha3, v1)
	if wrong.code != 1 || wrong.outputs["result"] != "rolled-back" || !strings.Contains(wrong.summary, "serves 1111111, not 3333333") {
		stopLoad()
		t.Fatalf("wrong commit: exit %d result %q\n%s\n%s", wrong.code, wrong.outputs["result"], wrong.log, wrong.summary)
	}
	// A task's own address reaches only the new version: a few answers decide, not verify-timeout.
	if !strings.Contains(wrong.log, "serves 1111111, not 3333333 (3 answers in a row") {
		t.Errorf("the wrong commit was not caught by the answers at the task's own address:\n%s", wrong.log)
	}
	if strings.Contains(wrong.summary, "| switch web |") {
		t.Errorf("the edge was switched to a version that failed verification:\n%s", wrong.summary)
	}
	if got := served(t, url); got != sha2 {
		t.Errorf("serves %q after the refused release, want %s still", got, sha2)
	}
	if !testenv.Eventually(time.Minute, 100*time.Millisecond, func() bool { return replicasOf(t, h.stack+"_web-blue") == "0" }) {
		t.Errorf("web-blue has %s replicas after the refused release, want 0", replicasOf(t, h.stack+"_web-blue"))
	}

	// Canary: 50 % for a probing interval, then all of it.
	canary := deploy(sha3, v3, "--strategy", "canary", "--canary-steps", "50", "--canary-interval", "2s")
	if !strings.Contains(canary.summary, "| Strategy | canary |") {
		t.Errorf("canary summary does not name the strategy:\n%s", canary.summary)
	}
	if canary.code != 0 || !strings.Contains(canary.log, "canary: 50% of web's traffic to web-blue") || !strings.Contains(canary.log, "canary of web at 50%: 0 of") {
		stopLoad()
		t.Fatalf("canary: exit %d\n%s\n%s", canary.code, canary.log, canary.summary)
	}
	if got := served(t, url); got != sha3 {
		t.Errorf("serves %q after the canary, want %s", got, sha3)
	}

	// rollback to the previous commit: the stack's file says blue-green, and green still has v2's image.
	rb := runCLI(t, map[string]string{"GITHUB_ACTOR": "tester"}, nil, "rollback",
		"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
		"--stack", h.stack, "--url", url, "--timeout", "2m")
	stopLoad()
	if rb.code != 0 || rb.outputs["deployed-sha"] != sha2 {
		t.Fatalf("rollback: exit %d %v\n%s\n%s", rb.code, rb.outputs, rb.log, rb.summary)
	}
	if got := served(t, url); got != sha2 {
		t.Errorf("serves %q after the rollback, want %s", got, sha2)
	}
	t.Logf("%d requests went through the edge during the deploys; %d failed", total.Load(), failed.Load())
	if total.Load() < 10 {
		t.Errorf("only %d requests went through the edge during the deploys", total.Load())
	}

	// A running edge without the relay (a stock Caddy, a gantry-edge from
	// before it) and no edge-image: the deploy would keep that image, so it
	// stops before changing anything and asks for edge-image.
	stock := digestRef(t, testenv.StockCaddyImage(t, h.reg.Host))
	if out, err := exec.Command("docker", "service", "update", "--quiet", "--image", stock, h.stack+"_gantry-edge").CombinedOutput(); err != nil {
		t.Fatalf("docker service update: %v\n%s", err, out)
	}
	specs := func() string {
		out, _ := exec.Command("docker", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Spec.Mode.Replicated.Replicas}}", h.stack+"_web-blue", h.stack+"_web-green").Output()
		return string(out)
	}
	before := specs()
	old := deploy(sha3, v3, "--edge-image", "")
	if old.code != 1 || !strings.Contains(old.log, "set input edge-image to gantry's edge image") || !strings.Contains(old.log, "has no "+edge.StdioCommand+" command") {
		t.Errorf("deploy with a running edge without the relay: exit %d\n%s", old.code, old.log)
	}
	if after := specs(); after != before {
		t.Errorf("the refused deploy changed the colors: %q, then %q", before, after)
	}
}
