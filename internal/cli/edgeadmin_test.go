package cli

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/edge"
	gremote "github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// containerOf returns the ID of a running container with all labels.
func containerOf(t *testing.T, labels ...string) string {
	t.Helper()
	args := []string{"ps", "--quiet", "--filter", "status=running"}
	for _, l := range labels {
		args = append(args, "--filter", "label="+l)
	}
	out, err := exec.Command("docker", args...).Output()
	ids := strings.Fields(string(out))
	if err != nil || len(ids) == 0 {
		t.Fatalf("docker %s: %q, %v; want a container", strings.Join(args, " "), out, err)
	}
	return ids[0]
}

// ipOn returns a container's address on network.
func ipOn(t *testing.T, container, network string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "--format", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, container).Output()
	if ip := strings.TrimSpace(string(out)); err == nil && ip != "" {
		return ip
	}
	t.Fatalf("container %s has no address on %s: %v", container, network, err)
	return ""
}

// openEdgeAdmin puts the edge in container back as an older gantry left it:
// its admin API on every interface, saved for --resume.
func openEdgeAdmin(t *testing.T, container string) {
	t.Helper()
	c := edge.ExecClient(&gremote.Local{}, append([]string{"docker", "exec", "-i", container}, edge.ExecArgv()...))
	resp, err := c.HTTP.Post(c.Admin+"/config/admin", "application/json", strings.NewReader(`{"listen":"0.0.0.0:2019"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("opening the edge's admin API: HTTP %d", resp.StatusCode)
	}
}

// assertAdminOpen shows the hole an open admin API is: a container on network
// reads the edge's configuration at host:2019.
func assertAdminOpen(t *testing.T, probe, network, host string) {
	t.Helper()
	if res := testenv.HTTPFrom(t, probe, network, testenv.Probe{URL: "http://" + host + ":2019/config/admin"}); !strings.HasPrefix(res[0], "HTTP 200 ") {
		t.Fatalf("an open admin API did not answer a container on %s (%s): the test cannot show that the deploy closes it", network, res[0])
	}
}

// TestDeployComposeEdgeAdminClosed: no container on the project network
// reaches the edge's admin API, by the edge's name or address, whatever Host
// it forges, while the public route serves; an edge whose admin API an older
// gantry left open (and Caddy saved for --resume) is closed by the next
// deploy, for good, and that deploy switches as usual.
func TestDeployComposeEdgeAdminClosed(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	probe := testenv.ProbeImage(t, h.reg.Host)
	network := h.project + "_default"
	if r := h.deploy(t, sha1, h.app(t, sha1, "v1")); r.code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", r.code, r.log)
	}
	edgeID := containerOf(t, "com.docker.compose.project="+h.project, "com.docker.compose.service=gantry-edge")
	testenv.EdgeAdminUnreachable(t, probe, network, "gantry-edge", sha1)
	testenv.EdgeAdminUnreachable(t, probe, network, ipOn(t, edgeID, network), sha1)

	openEdgeAdmin(t, edgeID)
	assertAdminOpen(t, probe, network, "gantry-edge")
	r := h.deploy(t, sha2, h.app(t, sha2, "v2"))
	if r.code != 0 || h.served(t) != sha2 {
		t.Fatalf("deploy to an edge with an open admin API: exit %d, serving %s\n%s", r.code, h.served(t), r.log)
	}
	if !strings.Contains(r.log, "it now listens on "+edge.AdminListen+" inside it only") {
		t.Errorf("the deploy did not say it closed the admin API:\n%s", r.log)
	}
	testenv.EdgeAdminUnreachable(t, probe, network, "gantry-edge", sha2)

	// Caddy saved the closed API: a restarted edge (--resume) keeps it closed.
	if out, err := exec.Command("docker", "restart", edgeID).CombinedOutput(); err != nil {
		t.Fatalf("docker restart: %v\n%s", err, out)
	}
	if !testenv.Eventually(30*time.Second, 100*time.Millisecond, func() bool {
		resp, err := http.Get(h.url())
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}) {
		t.Fatal("the restarted edge does not serve within 30s")
	}
	testenv.EdgeAdminUnreachable(t, probe, network, ipOn(t, edgeID, network), sha2)

	// An edge image without the relay (a stock Caddy): pulled once in case
	// the host's copy is old, then refused, naming the input.
	stock := digestRef(t, testenv.StockCaddyImage(t, h.reg.Host))
	r = h.deploy(t, sha3, h.app(t, sha3, "v3"), "--edge-image", stock)
	for _, want := range []string{"pulling it", "input edge-image: " + stock, "has no " + edge.StdioCommand + " command"} {
		if r.code != 1 || !strings.Contains(r.log, want) {
			t.Errorf("deploy with a stock Caddy edge image: exit %d, log without %q:\n%s", r.code, want, r.log)
		}
	}
}
