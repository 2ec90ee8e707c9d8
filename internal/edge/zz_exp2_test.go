package edge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/testenv"
)

func TestExpLoopback(t *testing.T) {
	for _, mode := range []string{"tcp", "fd"} {
		c := startCaddy(t)
		ctx := context.Background()
		blue, green := newBackend(t, "blue", nil), newBackend(t, "green", nil)
		cfg := c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}})
		url := c.URL + "/"
		if mode == "tcp" {
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			cfg.Listen = addr
			url = "http://" + addr + "/"
		}
		if err := c.Load(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var sent, failed, resets atomic.Int64
		var first atomic.Value
		var wg sync.WaitGroup
		hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
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
			to := blue
			if i%2 == 1 {
				to = green
			}
			for n := sent.Load(); sent.Load() < n+200; {
				time.Sleep(time.Millisecond)
			}
			if err := c.SetUpstreams(ctx, "web", []edge.Upstream{to.up(1)}); err != nil {
				t.Fatal(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("%s: %d requests, %d failed (%d resets), first %v", mode, sent.Load(), failed.Load(), resets.Load(), first.Load())
	}
}
