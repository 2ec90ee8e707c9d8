package edge_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

func TestExpReuseport(t *testing.T) {
	testenv.Docker(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	caddyRef := testenv.CaddyImage(t, reg.Host)
	blueRef := testenv.AppImage(t, reg.Host, "aaaaaaa", "v1")
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	label := "gantry.test.edge=" + id
	network := "gantry-edge-" + id
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		if ids, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output(); len(ids) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, strings.Fields(string(ids))...)...).Run()
		}
		_ = exec.Command("docker", "network", "rm", network).Run()
		_ = exec.Command("docker", "rmi", caddyRef, blueRef).Run()
	})
	docker("network", "create", "--label", label, network)
	docker("run", "-d", "--name", "web-blue-"+id, "--network", network, "--network-alias", "web-blue", "--network-alias", "web-green", "--label", label, blueRef)
	for _, variant := range []string{"plain", "migrate"} {
		name := "edge-" + variant + "-" + id
		args := []string{"run", "-d", "--name", name, "--network", network, "--label", label, "-p", "127.0.0.1::80"}
		if variant == "migrate" {
			args = append(args, "--sysctl", "net.ipv4.tcp_migrate_req=1")
		}
		docker(append(args, caddyRef)...)
		ip := docker("inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, name)
		c := edge.Client{Admin: "http://" + ip + ":2019"}
		waitHTTP(t, c.Admin+"/config/", name)
		ctx := context.Background()
		if err := c.Load(ctx, edge.Config{Services: []edge.Service{{Name: "web", Upstreams: []edge.Upstream{{Dial: "web-blue:8080", Weight: 1}}}}}); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{"published", "direct"} {
			url := "http://" + ip + ":80/health"
			if target == "published" {
				url = "http://" + docker("port", name, "80/tcp") + "/health"
			}
			var stop atomic.Bool
			var sent, failed, resets atomic.Int64
			var first atomic.Value
			var wg sync.WaitGroup
			tr := &http.Transport{DisableKeepAlives: true}
			hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						_, err := get(ctx, hc, url, "")
						sent.Add(1)
						if err != nil {
							failed.Add(1)
							first.CompareAndSwap(nil, err.Error())
							if strings.Contains(err.Error(), "reset") {
								resets.Add(1)
							}
						}
					}
				}()
			}
			for i := range 20 {
				d := "web-blue:8080"
				if i%2 == 1 {
					d = "web-green:8080"
				}
				for n := sent.Load(); sent.Load() < n+100; {
					time.Sleep(time.Millisecond)
				}
				if err := c.SetUpstreams(ctx, "web", []edge.Upstream{{Dial: d, Weight: 1}}); err != nil {
					t.Fatal(err)
				}
			}
			stop.Store(true)
			wg.Wait()
			t.Logf("%s %s: %d requests (new connection each) over 20 switches, %d failed (%d resets), first %v", variant, target, sent.Load(), failed.Load(), resets.Load(), first.Load())
		}
	}
}
