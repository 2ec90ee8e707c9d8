//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// k6Script is the load of the recording and of the in-run measurement: a
// small shop API, four kinds of requests, two groups, a check on each; the
// recording runs at a constant arrival rate, the in-run measurement a fixed
// number of iterations (one request each) as fast as k6 goes.
const k6Script = `import http from 'k6/http';
import { check, group } from 'k6';

const BASE = __ENV.BASE;

export const options = {
  discardResponseBodies: true,
  scenarios: __ENV.ITERATIONS ? {
    shop: { executor: 'shared-iterations', vus: 20, iterations: Number(__ENV.ITERATIONS), maxDuration: '30m' },
  } : {
    shop: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s', duration: __ENV.DURATION, preAllocatedVUs: 20, maxVUs: 200 },
  },
  thresholds: {
    http_req_duration: ['p(95)<500'],
    http_req_failed: ['rate<0.1'],
  },
};

export default function () {
  const r = Math.random();
  if (r < 0.5) {
    group('browse', () => {
      const res = http.get(BASE + '/api/items');
      check(res, { 'items listed': (res) => res.status === 200 });
    });
  } else if (r < 0.7) {
    const res = http.get(BASE + '/');
    check(res, { 'home page': (res) => res.status === 200 });
  } else if (r < 0.9) {
    group('checkout', () => {
      const res = http.post(BASE + '/api/orders', JSON.stringify({ item: 7, qty: 2 }), { headers: { 'Content-Type': 'application/json' } });
      check(res, { 'order created': (res) => res.status === 201 });
    });
  } else {
    const id = Math.floor(Math.random() * 1000);
    const res = http.get(BASE + '/api/items/' + id, { tags: { name: BASE + '/api/items/:id' } });
    check(res, { 'item found': (res) => res.status === 200 });
  }
}
`

// shop is the loopback server k6 loads: every 25th order fails with a 500,
// items 900 and up do not exist.
type shop struct {
	srv    *http.Server
	URL    string
	orders atomic.Int64
}

func startShop() (*shop, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &shop{URL: "http://" + ln.Addr().String()}
	items := []byte(`{"items":[` + repeatJSON(`{"id":1,"name":"widget","price":9.5}`, 40) + `]}`)
	home := []byte("<!doctype html><title>shop</title>" + strings.Repeat("<p>a widget, in stock</p>", 36))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(home) })
	mux.HandleFunc("GET /api/items", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(items) })
	mux.HandleFunc("GET /api/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if id, err := strconv.Atoi(r.PathValue("id")); err != nil || id >= 900 {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"id":1,"name":"widget","price":9.5}`))
	})
	mux.HandleFunc("POST /api/orders", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if s.orders.Add(1)%25 == 0 {
			http.Error(w, "payment service unavailable", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"order":42}`))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *shop) Close() { _ = s.srv.Close() }

func repeatJSON(item string, n int) string {
	out := item
	for i := 1; i < n; i++ {
		out += "," + item
	}
	return out
}

// record runs k6 at rate requests per second for d against the shop and
// returns the path of its --out json file.
func (b *bench) record(ctx context.Context, rate int, d time.Duration) (string, error) {
	out := filepath.Join(b.tmp, "recording.json")
	cmd := b.k6(ctx, "RATE="+strconv.Itoa(rate), "DURATION="+d.String())
	cmd.Args = append(cmd.Args[:2], append([]string{"--out", "json=" + out}, cmd.Args[2:]...)...)
	if log, err := cmd.CombinedOutput(); err != nil && exitCode(err) != 99 { // 99: a threshold failed, the output is whole
		return "", fmt.Errorf("k6 recording: %v\n%s", err, benchenv.Tail(string(log), 2000))
	}
	return out, nil
}

// k6 is the command running the script against the shop with vars set.
func (b *bench) k6(ctx context.Context, vars ...string) *exec.Cmd {
	args := []string{"run", "--quiet", "--no-color", "-e", "BASE=" + b.shop.URL}
	for _, v := range vars {
		args = append(args, "-e", v)
	}
	cmd := exec.CommandContext(ctx, b.bin["k6"], append(args, b.script)...)
	cmd.Dir, cmd.Env = b.tmp, b.env
	return cmd
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func writeScript(dir string) (string, error) {
	p := filepath.Join(dir, "shop.js")
	return p, os.WriteFile(p, []byte(k6Script), 0o644)
}
