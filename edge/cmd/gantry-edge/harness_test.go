package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// edgeBin is the gantry-edge binary the tests run: built by TestMain with the
// release's flags, or GANTRY_EDGE_BIN.
var edgeBin string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	if bin := os.Getenv("GANTRY_EDGE_BIN"); bin != "" {
		edgeBin = bin
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "gantry-edge-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	edgeBin = filepath.Join(dir, "gantry-edge")
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return 0, fmt.Errorf("build gantry-edge: %w; put go on PATH or set GANTRY_EDGE_BIN to a built gantry-edge", err)
	}
	// The release's flags, so the build cache serves both.
	build := exec.Command(goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", edgeBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build gantry-edge: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// edgeHome is the state of one edge "container": its directories and
// environment, which survive a restart.
type edgeHome struct {
	dataHome string // XDG_DATA_HOME, like /data
	env      []string
}

func newEdgeHome(t testing.TB, extraEnv ...string) *edgeHome {
	t.Helper()
	dir := t.TempDir()
	h := &edgeHome{dataHome: filepath.Join(dir, "data")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CADDY_") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "HOME=") {
			h.env = append(h.env, kv)
		}
	}
	h.env = append(h.env, "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+h.dataHome)
	h.env = append(h.env, extraEnv...)
	return h
}

// edgeProc is one running gantry-edge.
type edgeProc struct {
	t     testing.TB
	cmd   *exec.Cmd
	admin string // base URL of the admin API
	logs  *lockedBuffer
	exit  chan struct{}
}

// start runs gantry-edge with args and waits until its admin API at
// adminAddr answers.
func (h *edgeHome) start(t testing.TB, adminAddr string, args ...string) *edgeProc {
	t.Helper()
	p := &edgeProc{t: t, admin: "http://" + adminAddr, logs: &lockedBuffer{}, exit: make(chan struct{})}
	p.cmd = exec.Command(edgeBin, args...)
	p.cmd.Env = h.env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start gantry-edge: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exit) }()
	t.Cleanup(func() {
		p.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("gantry-edge %s output:\n%s", strings.Join(args, " "), tail(p.logs.String(), 6000))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(p.admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.exit:
			t.Fatalf("gantry-edge %s exited:\n%s", strings.Join(args, " "), tail(p.logs.String(), 6000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gantry-edge admin API %s did not answer within 15s:\n%s", p.admin, tail(p.logs.String(), 6000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends sig and waits for the process to end.
func (p *edgeProc) stop(sig os.Signal) {
	select {
	case <-p.exit:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exit:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exit
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// adminAttempts is how often call sends a request that the admin API closed
// unanswered: Caddy replaces its admin server after every config load, and
// the old one closes the connections it has not read. Every request the
// tests send may be repeated.
const adminAttempts = 4

// call sends one admin API request and returns the status and body.
func (p *edgeProc) call(method, path string, body any) (int, []byte) {
	p.t.Helper()
	var payload []byte
	if body != nil {
		var ok bool
		if payload, ok = body.([]byte); !ok {
			var err error
			if payload, err = json.Marshal(body); err != nil {
				p.t.Fatal(err)
			}
		}
	}
	for attempt := 1; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequest(method, p.admin+path, rd)
		if err != nil {
			p.t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if attempt < adminAttempts && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
				time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
				continue
			}
			p.t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, b
	}
}

// mustCall is call that fails the test unless the answer is 200.
func (p *edgeProc) mustCall(method, path string, body any) []byte {
	p.t.Helper()
	status, b := p.call(method, path, body)
	if status != http.StatusOK {
		p.t.Fatalf("%s %s: HTTP %d %s", method, path, status, b)
	}
	return b
}

type upstream struct {
	Dial   string `json:"dial"`
	Weight int    `json:"weight"`
}

// setUpstreams switches service web to ups and returns when the PUT returned.
func (p *edgeProc) setUpstreams(ups ...upstream) time.Time {
	p.t.Helper()
	p.mustCall(http.MethodPut, "/gantry/upstreams/web", ups)
	return time.Now()
}

type dialInFlight struct {
	Dial      string     `json:"dial"`
	InFlight  int        `json:"in_flight"`
	Services  []string   `json:"services"`
	RemovedAt *time.Time `json:"removed_at"`
}

func (p *edgeProc) inFlight() map[string]dialInFlight {
	p.t.Helper()
	var list []dialInFlight
	if err := json.Unmarshal(p.mustCall(http.MethodGet, "/gantry/inflight", nil), &list); err != nil {
		p.t.Fatal(err)
	}
	out := map[string]dialInFlight{}
	for _, e := range list {
		out[e.Dial] = e
	}
	return out
}

// backend is an upstream that answers its color; /slow waits for release.
type backend struct {
	color   string
	srv     *httptest.Server
	hits    atomic.Int64
	arrived chan struct{} // a /slow request arrived
	release chan struct{} // lets /slow requests answer
}

func newBackend(t testing.TB, color string) *backend {
	t.Helper()
	b := &backend{color: color, arrived: make(chan struct{}, 16), release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if r.URL.Path == "/slow" {
			b.arrived <- struct{}{}
			<-b.release
		}
		_, _ = io.WriteString(w, b.color)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) dial() string { return b.srv.Listener.Addr().String() }

// handler is one reverse_proxy handler of the test configurations.
type handler map[string]any

// dynamicProxy routes service web through gantry's dynamic upstreams.
func dynamicProxy() handler {
	return handler{
		"handler":           "reverse_proxy",
		"dynamic_upstreams": map[string]any{"source": "gantry", "service": "web"},
		"load_balancing":    map[string]any{"selection_policy": map[string]any{"policy": "gantry"}, "retries": 2},
		"health_checks":     map[string]any{"passive": map[string]any{"fail_duration": "10s", "max_fails": 1}},
	}
}

// staticProxy is the same handler with upstreams in the config, the way
// internal/edge configures Caddy today; its @id is "proxy".
func staticProxy(dial string) handler {
	return handler{
		"@id":            "proxy",
		"handler":        "reverse_proxy",
		"upstreams":      []map[string]any{{"dial": dial}},
		"load_balancing": map[string]any{"selection_policy": map[string]any{"policy": "round_robin"}, "retries": 2},
		"health_checks":  map[string]any{"passive": map[string]any{"fail_duration": "10s", "max_fails": 1}},
	}
}

// edgeConfig is a Caddy configuration serving h on listen; adminAddr ""
// leaves the admin address to CADDY_ADMIN.
func edgeConfig(t testing.TB, adminAddr, listen string, h handler) []byte {
	t.Helper()
	cfg := map[string]any{
		"apps": map[string]any{"http": map[string]any{
			"grace_period": "5s",
			"servers": map[string]any{"edge": map[string]any{
				"listen":          []string{listen},
				"automatic_https": map[string]any{"disable": true},
				"routes":          []any{map[string]any{"handle": []any{h}, "terminal": true}},
			}},
		}},
	}
	if adminAddr != "" {
		cfg["admin"] = map[string]any{"listen": adminAddr}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startWithConfig writes cfg to a file and runs "gantry-edge run --config".
func (h *edgeHome) startWithConfig(t testing.TB, adminAddr string, cfg []byte) *edgeProc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return h.start(t, adminAddr, "run", "--config", path)
}

// get sends one request through the edge and returns the color that answered.
func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// result is one request of a load run.
type result struct {
	start time.Time
	color string
	err   error
}

// runLoad sends total requests to url from workers goroutines. Once switchAt
// requests have finished it calls doSwitch (once), which returns when the
// switch returned.
func runLoad(c *http.Client, url string, workers, total, switchAt int, doSwitch func() time.Time) ([]result, time.Time) {
	results := make([]result, total)
	var next, finished atomic.Int64
	switched := make(chan time.Time, 1)
	var switchOnce sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				start := time.Now()
				color, err := get(c, url)
				results[i] = result{start: start, color: color, err: err}
				if int(finished.Add(1)) == switchAt && doSwitch != nil {
					switchOnce.Do(func() { go func() { switched <- doSwitch() }() })
				}
			}
		})
	}
	wg.Wait()
	var at time.Time
	if doSwitch != nil {
		at = <-switched
	}
	return results, at
}

// freshConnClient opens a new connection for every request, like the
// clients that lose requests when Caddy reloads.
func freshConnClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}
