package edge_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// dockerEdge is an edge container on its own network, with two app
// containers (web-blue: aaaaaaa, web-green: bbbbbbb) beside it.
type dockerEdge struct {
	t        *testing.T
	network  string
	name     string // the edge container's
	ip       string // its address on network
	probeRef string // testenv.ProbeImage
	c        *edge.Client
}

// startDockerEdge runs the edge as the Compose deploy will: the edge image
// and two app containers on a user-defined network, the edge reaching the
// apps by name, and gantry reaching the edge's admin API through docker exec.
func startDockerEdge(t *testing.T) *dockerEdge {
	testenv.Docker(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	caddyRef := testenv.CaddyImage(t, reg.Host)
	blueRef := testenv.AppImage(t, reg.Host, "aaaaaaa", "v1")
	greenRef := testenv.AppImage(t, reg.Host, "bbbbbbb", "v2")
	probeRef := testenv.ProbeImage(t, reg.Host)

	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	label := "gantry.test.edge=" + id
	network := "gantry-edge-" + id
	t.Cleanup(func() {
		// Only what this test made: its labelled containers, network, images.
		if ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output(); len(ids) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(string(ids))...)...).Run()
		}
		_ = exec.Command("docker", "network", "rm", network).Run()
		_ = exec.Command("docker", "rmi", caddyRef, blueRef, greenRef, probeRef).Run()
	})

	d := &dockerEdge{t: t, network: network, name: "gantry-edge-" + id, probeRef: probeRef}
	d.docker("network", "create", "--label", label, network)
	for name, ref := range map[string]string{"web-blue": blueRef, "web-green": greenRef} {
		d.docker("run", "-d", "--name", name+"-"+id, "--network", network, "--network-alias", name, "--label", label, ref)
	}
	d.docker("run", "-d", "--name", d.name, "--network", network, "--network-alias", "gantry-edge", "--label", label, "-p", "127.0.0.1::80",
		"--sysctl", "net.ipv4.tcp_migrate_req=1", caddyRef)
	d.ip = d.inspectIP()
	t.Logf("edge container IP on %s: %s", network, d.ip)
	d.c = edge.ExecClient(&remote.Local{}, append([]string{"docker", "exec", "-i", d.name}, edge.ExecArgv()...))
	// The admin API answers once Caddy runs.
	var err error
	if !testenv.Eventually(30*time.Second, 100*time.Millisecond, func() bool {
		_, err = d.c.Detect(context.Background())
		return err == nil
	}) {
		logs, _ := exec.Command("docker", "logs", "--tail", "50", d.name).CombinedOutput()
		t.Fatalf("the edge's admin API did not answer through docker exec within 30s: %v\n%s", err, logs)
	}
	d.c.Dynamic = false // TestEdgeInDocker switches by configuration reloads
	return d
}

func (d *dockerEdge) docker(args ...string) string {
	d.t.Helper()
	d.t.Logf("docker %s", strings.Join(args, " "))
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (d *dockerEdge) inspectIP() string {
	d.t.Helper()
	return d.docker("inspect", "-f", `{{(index .NetworkSettings.Networks "`+d.network+`").IPAddress}}`, d.name)
}

// assertClosed asserts that no container on the edge's network, nor the
// host, reaches its admin API, by name or address, and that the public route
// still answers sha from upstream.
func (d *dockerEdge) assertClosed(sha, upstream string) {
	d.t.Helper()
	testenv.EdgeAdminUnreachable(d.t, d.probeRef, d.network, "gantry-edge", sha)
	testenv.EdgeAdminUnreachable(d.t, d.probeRef, d.network, d.ip, sha)
	// From the host too (where gantry's SSH connection used to dial it).
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(d.ip, "2019"), 5*time.Second); err == nil {
		conn.Close()
		d.t.Errorf("the edge's admin API accepts connections at %s:2019 from the host", d.ip)
	}
	checkHealth(d.t, "http://"+d.ip+":80/health", sha, upstream)
}

// TestEdgeInDocker runs the edge in Docker, switches it, and checks that a
// restarted edge resumes the routing it was last given, while its admin API
// stays out of reach of every other container.
func TestEdgeInDocker(t *testing.T) {
	d := startDockerEdge(t)
	c, ip := d.c, d.ip
	docker := d.docker
	edgeName := d.name
	ctx := context.Background()
	if err := c.Load(ctx, edge.Config{
		UpstreamHeader: edge.UpstreamHeader,
		Services:       []edge.Service{{Name: "web", Upstreams: []edge.Upstream{{Dial: "web-blue:8080", Weight: 1}}}},
	}); err != nil {
		t.Fatal(err)
	}
	front := "http://" + ip + ":80/health"
	checkHealth(t, front, "aaaaaaa", "web-blue:8080")
	d.assertClosed("aaaaaaa", "web-blue:8080")

	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{{Dial: "web-green:8080", Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	checkHealth(t, front, "bbbbbbb", "web-green:8080")

	// Switches under load: keep-alive clients through the published port
	// (docker-proxy), and clients opening a connection per request straight
	// to the container.
	published := "http://" + docker("port", edgeName, "80/tcp") + "/health"
	keep := startLoad(ctx, edgeClient(), published)
	fresh := startLoad(ctx, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}, front)
	for i := range 6 {
		to := []edge.Upstream{{Dial: "web-blue:8080", Weight: 1}}
		if i%2 == 1 {
			to = []edge.Upstream{{Dial: "web-green:8080", Weight: 1}}
		}
		keep.waitFor(200)
		if err := c.SetUpstreams(ctx, "web", to); err != nil {
			t.Fatal(err)
		}
	}
	keep.waitFor(200)
	keep.stop()
	fresh.stop()
	t.Logf("6 switches: keep-alive clients on %s sent %d requests, %d failed; clients with a new connection per request sent %d, %d failed (%d reset)",
		published, keep.sent.Load(), keep.failed.Load(), fresh.sent.Load(), fresh.failed.Load(), fresh.resets.Load())
	if keep.failed.Load() > 0 {
		t.Errorf("%d of %d keep-alive requests failed, first: %v", keep.failed.Load(), keep.sent.Load(), keep.first.Load())
	}
	// The edge runs with net.ipv4.tcp_migrate_req=1, so a reload's closed
	// listening socket hands its queued connections to the new one instead
	// of resetting them. A new connection that the old server accepted but
	// read only after its shutdown began still gets EOF (golang/go#75591);
	// those are reported, not failed.
	if n := fresh.resets.Load(); n > 0 {
		t.Errorf("%d new connections were reset during switches, first error: %v", n, fresh.first.Load())
	}

	// A restarted edge comes back with the last routing (caddy --resume).
	docker("restart", edgeName)
	d.ip = d.inspectIP()
	front = "http://" + d.ip + ":80/health"
	waitHTTP(t, front, edgeName)
	checkHealth(t, front, "bbbbbbb", "web-green:8080")
	ups, err := c.Upstreams(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].Dial != "web-green:8080" {
		t.Errorf("upstreams after restart: %v", ups)
	}
	d.assertClosed("bbbbbbb", "web-green:8080")
}

// TestEdgeClosesOpenAdmin starts from an edge that an older gantry set up,
// with its admin API on every interface (and so saved for --resume): a
// container on its network can reroute it. CloseAdmin moves the API into the
// container for good: after a restart it is still closed, routing unchanged.
func TestEdgeClosesOpenAdmin(t *testing.T) {
	d := startDockerEdge(t)
	ctx := context.Background()
	cfg := edge.Config{
		AdminListen:    "0.0.0.0:2019", // as gantry before the admin API was closed
		UpstreamHeader: edge.UpstreamHeader,
		Services:       []edge.Service{{Name: "web", Upstreams: []edge.Upstream{{Dial: "web-blue:8080", Weight: 1}}}},
	}
	if _, err := d.c.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.c.Load(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// The hole this closes: another container reads the configuration.
	if res := testenv.HTTPFrom(t, d.probeRef, d.network, testenv.Probe{URL: "http://gantry-edge:2019/config/admin"}); !strings.HasPrefix(res[0], "HTTP 200 ") {
		t.Fatalf("an open admin API did not answer another container (%s): the test cannot show it closes", res)
	}
	closed, err := d.c.CloseAdmin(ctx)
	if err != nil || !closed {
		t.Fatalf("CloseAdmin = %v, %v; want true, nil", closed, err)
	}
	d.assertClosed("aaaaaaa", "web-blue:8080")
	if closed, err := d.c.CloseAdmin(ctx); err != nil || closed {
		t.Errorf("CloseAdmin again = %v, %v; want false, nil", closed, err)
	}
	// Caddy saved the closed API: --resume keeps it closed.
	d.docker("restart", d.name)
	d.ip = d.inspectIP()
	waitHTTP(t, "http://"+d.ip+":80/health", d.name)
	d.assertClosed("aaaaaaa", "web-blue:8080")
	if err := d.c.SetUpstreams(ctx, "web", []edge.Upstream{{Dial: "web-green:8080", Weight: 1}}); err != nil {
		t.Fatal(err)
	}
	checkHealth(t, "http://"+d.ip+":80/health", "bbbbbbb", "web-green:8080")
}

// waitHTTP waits until url answers at all, for a container that just started.
func waitHTTP(t *testing.T, url, container string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", "--tail", "50", container).CombinedOutput()
			t.Fatalf("%s did not answer within 30s: %v\n%s", url, err, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkHealth asserts that the app behind the edge reports sha and that the
// edge names the upstream that answered.
func checkHealth(t *testing.T, url, sha, upstream string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		GitSHA string `json:"git_sha"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("GET %s: HTTP %d: %v", url, resp.StatusCode, err)
	}
	if h.GitSHA != sha || resp.Header.Get(edge.UpstreamHeader) != upstream {
		t.Errorf("GET %s: git_sha %q via %q, want %q via %q", url, h.GitSHA, resp.Header.Get(edge.UpstreamHeader), sha, upstream)
	}
}

// load is a constant stream of requests from 8 workers.
type load struct {
	sent, failed, resets atomic.Int64
	first                atomic.Value
	done                 atomic.Bool
	wg                   sync.WaitGroup
}

func startLoad(ctx context.Context, hc *http.Client, url string) *load {
	l := &load{}
	for range 8 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.done.Load() {
				_, err := get(ctx, hc, url, "")
				l.sent.Add(1)
				if err != nil {
					l.failed.Add(1)
					l.first.CompareAndSwap(nil, err.Error())
					if strings.Contains(err.Error(), "connection reset") {
						l.resets.Add(1)
					}
				}
			}
		}()
	}
	return l
}

// waitFor returns once n more requests were sent.
func (l *load) waitFor(n int64) {
	for start := l.sent.Load(); l.sent.Load() < start+n; {
		time.Sleep(time.Millisecond)
	}
}

func (l *load) stop() {
	l.done.Store(true)
	l.wg.Wait()
}
