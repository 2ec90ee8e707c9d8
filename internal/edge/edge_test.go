package edge_test

import (
	"context"
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
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/testenv"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	up := func(dial string, w int) edge.Upstream { return edge.Upstream{Dial: dial, Weight: w} }
	ok := []edge.Upstream{up("blue:8080", 1)}
	tests := []struct {
		name string
		cfg  edge.Config
		want string
	}{
		{"no service", edge.Config{}, "no service"},
		{"bad name", edge.Config{Services: []edge.Service{{Name: "a b", Upstreams: ok}}}, `service name "a b"`},
		{"twice", edge.Config{Services: []edge.Service{{Name: "a", Hosts: []string{"x"}, Upstreams: ok}, {Name: "a", Upstreams: ok}}}, `"a" is configured twice`},
		{"two catch-alls", edge.Config{Services: []edge.Service{{Name: "a", Upstreams: ok}, {Name: "b", Upstreams: ok}}}, "both have no hosts"},
		{"shared host", edge.Config{Services: []edge.Service{{Name: "a", Hosts: []string{"x"}, Upstreams: ok}, {Name: "b", Hosts: []string{"x"}, Upstreams: ok}}}, `host "x" is routed to both`},
		{"no upstream", edge.Config{Services: []edge.Service{{Name: "a"}}}, "no upstream with a positive weight"},
		{"all zero", edge.Config{Services: []edge.Service{{Name: "a", Upstreams: []edge.Upstream{up("blue:8080", 0)}}}}, "no upstream with a positive weight"},
		{"negative", edge.Config{Services: []edge.Service{{Name: "a", Upstreams: []edge.Upstream{up("blue:8080", -1)}}}}, "negative weight"},
		{"no port", edge.Config{Services: []edge.Service{{Name: "a", Upstreams: []edge.Upstream{up("blue", 1)}}}}, `"blue" is not host:port`},
		{"bad port", edge.Config{Services: []edge.Service{{Name: "a", Upstreams: []edge.Upstream{up("blue:http", 1)}}}}, "is not host:port"},
		{"duplicate upstream", edge.Config{Services: []edge.Service{{Name: "a", Upstreams: []edge.Upstream{up("blue:80", 1), up("blue:80", 2)}}}}, "listed twice"},
		{"fine", edge.Config{Services: []edge.Service{{Name: "web_1", Upstreams: ok}}}, ""},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestConfigJSON(t *testing.T) {
	t.Parallel()
	b, err := edge.Config{
		UpstreamHeader: edge.UpstreamHeader,
		Services: []edge.Service{
			{Name: "api", Upstreams: []edge.Upstream{{Dial: "api-blue:8080", Weight: 1}}},
			{Name: "web", Hosts: []string{"example.com"}, Upstreams: []edge.Upstream{
				{Dial: "web-blue:8080", Weight: 90}, {Dial: "web-green:8080", Weight: 10}, {Dial: "web-old:8080", Weight: 0},
			}},
		},
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Admin struct{ Listen string }
		Apps  struct {
			HTTP struct {
				GracePeriod string `json:"grace_period"`
				Servers     map[string]struct {
					Listen []string
					Routes []struct {
						Match  []map[string][]string
						Handle []map[string]any
					}
				}
			}
		}
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != edge.DefaultAdminListen || cfg.Apps.HTTP.GracePeriod != "30s" {
		t.Errorf("admin listen %q, grace period %q", cfg.Admin.Listen, cfg.Apps.HTTP.GracePeriod)
	}
	srv := cfg.Apps.HTTP.Servers["edge"]
	if len(srv.Listen) != 1 || srv.Listen[0] != edge.DefaultListen {
		t.Errorf("listen %v", srv.Listen)
	}
	// The service with hosts comes first, the catch-all last.
	if len(srv.Routes) != 2 || srv.Routes[0].Match[0]["host"][0] != "example.com" || srv.Routes[1].Match != nil {
		t.Fatalf("routes %s", b)
	}
	web := srv.Routes[0].Handle[0]
	if web["@id"] != "gantry-service-web" || web["handler"] != "reverse_proxy" {
		t.Errorf("web handler %v", web)
	}
	got, _ := json.Marshal([]any{web["upstreams"], web["load_balancing"].(map[string]any)["selection_policy"]})
	want := `[[{"dial":"web-blue:8080"},{"dial":"web-green:8080"}],{"policy":"weighted_round_robin","weights":[90,10]}]`
	if string(got) != want {
		t.Errorf("web upstreams and policy\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(string(b), `"X-Gantry-Upstream":["{http.reverse_proxy.upstream.hostport}"]`) {
		t.Errorf("no upstream header in %s", b)
	}

	// Without a catch-all, unmatched hosts get a 404 route.
	b, err = edge.Config{Services: []edge.Service{{Name: "web", Hosts: []string{"a"}, Upstreams: []edge.Upstream{{Dial: "x:1", Weight: 1}}}}}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"status_code":404`) {
		t.Errorf("no 404 route in %s", b)
	}
}

// caddy is a caddy process on loopback, driven by Client.
type caddy struct {
	edge.Client
	// URL is the edge's base URL.
	URL string
	log *lockedBuffer
}

// Listener addresses of the test caddy: sockets the test opened and passed
// to it as file descriptors 3 and 4. Ports the test picks could be taken by
// another process before caddy binds them, and caddy binds with SO_REUSEPORT,
// so two caddies could even share one.
const (
	caddyListen = "fd/3"
	caddyAdmin  = "fd/4"
)

// startCaddy runs the pinned caddy with only its admin API on, as the edge
// container starts.
func startCaddy(t *testing.T) *caddy {
	t.Helper()
	bin := testenv.Caddy(t)
	dir := t.TempDir()
	front, frontFile := listenFile(t)
	admin, adminFile := listenFile(t)
	boot := filepath.Join(dir, "boot.json")
	if err := os.WriteFile(boot, []byte(`{"admin":{"listen":"`+caddyAdmin+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &caddy{
		Client: edge.Client{HTTP: &http.Client{Timeout: 30 * time.Second}, Admin: "http://" + admin},
		URL:    "http://" + front, log: &lockedBuffer{},
	}
	cmd := exec.Command(bin, "run", "--config", boot)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.ExtraFiles = []*os.File{frontFile, adminFile}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start caddy: %v", err)
	}
	frontFile.Close()
	adminFile.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("caddy log:\n%s", c.log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("caddy exited: %v\n%s", err, c.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy admin API did not answer on %s within 30s\n%s", admin, c.log.String())
		}
	}
}

// listenFile opens a loopback TCP listener and returns its address and a
// file for a child process; the test's own listener is closed.
func listenFile(t *testing.T) (string, *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), f
}

// config is an edge configuration for the test caddy with the given services.
func (c *caddy) config(services ...edge.Service) edge.Config {
	return edge.Config{
		Listen:         caddyListen,
		AdminListen:    caddyAdmin,
		UpstreamHeader: edge.UpstreamHeader,
		Services:       services,
	}
}

// backend is an upstream that answers with its color and counts requests.
type backend struct {
	color string
	srv   *httptest.Server
	hits  atomic.Int64
}

func newBackend(t *testing.T, color string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{color: color}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if h != nil {
			h(w, r)
		}
		w.Header().Set("X-Color", color)
		_, _ = io.WriteString(w, color)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) dial() string { return b.srv.Listener.Addr().String() }

func (b *backend) up(weight int) edge.Upstream { return edge.Upstream{Dial: b.dial(), Weight: weight} }

// get sends one request through the edge and returns the answering color.
func get(ctx context.Context, client *http.Client, url, host string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return string(body), nil
}

// getRetry is get, tried up to three times while it fails with EOF.
func getRetry(ctx context.Context, client *http.Client, url, host string) (string, error) {
	return retryEOF(func() (string, error) { return get(ctx, client, url, host) })
}

// retryEOF calls f up to three times while it fails with io.EOF. Right after a
// switch, a new connection that the previous configuration's server accepted
// as it stopped is closed unanswered (golang/go#75591, see the package
// documentation); TestSwitchUnderLoad shows that keep-alive clients, whose
// transport retries, do not see it.
func retryEOF[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 3 {
		if v, err = f(); !errors.Is(err, io.EOF) {
			break
		}
	}
	return v, err
}

func edgeClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestLoadRoutesByHost(t *testing.T) {
	t.Parallel()
	c := startCaddy(t)
	ctx := context.Background()
	blue, api := newBackend(t, "blue", nil), newBackend(t, "api", nil)
	if err := c.Load(ctx, c.config(
		edge.Service{Name: "api", Upstreams: []edge.Upstream{api.up(1)}},
		edge.Service{Name: "web", Hosts: []string{"web.test"}, Upstreams: []edge.Upstream{blue.up(1)}},
	)); err != nil {
		t.Fatal(err)
	}
	hc := edgeClient()
	for host, want := range map[string]string{"web.test": "blue", "other.test": "api", "": "api"} {
		if got, err := getRetry(ctx, hc, c.URL+"/", host); err != nil || got != want {
			t.Errorf("host %q: got %q, %v; want %q", host, got, err, want)
		}
	}
	// The upstream header names the dial address that answered.
	resp, err := retryEOF(func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, c.URL+"/", nil)
		req.Host = "web.test"
		return hc.Do(req)
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(edge.UpstreamHeader); got != blue.dial() {
		t.Errorf("%s = %q, want %q", edge.UpstreamHeader, got, blue.dial())
	}
	got, err := c.Upstreams(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != blue.up(1) {
		t.Errorf("upstreams of web: %v", got)
	}

	// Without a catch-all service, an unknown host gets 404.
	if err := c.Load(ctx, c.config(edge.Service{Name: "web", Hosts: []string{"web.test"}, Upstreams: []edge.Upstream{blue.up(1)}})); err != nil {
		t.Fatal(err)
	}
	if _, err := getRetry(ctx, hc, c.URL+"/", "other.test"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("unknown host: %v, want HTTP 404", err)
	}
}

// TestSwitchUnderLoad switches blue to green while workers send requests
// without pause: no request may fail, and none sent after SetUpstreams
// returned may reach blue.
func TestSwitchUnderLoad(t *testing.T) {
	t.Parallel()
	c := startCaddy(t)
	ctx := context.Background()
	blue, green := newBackend(t, "blue", nil), newBackend(t, "green", nil)
	if err := c.Load(ctx, c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}})); err != nil {
		t.Fatal(err)
	}
	const workers, before, after = 16, 1000, 2000
	var (
		calling, switched    atomic.Bool
		sent, sentAfter      atomic.Int64
		failed, blueAfter    atomic.Int64
		firstErr             atomic.Value
		reachedBefore        = make(chan struct{})
		signalOnce           sync.Once
		wg                   sync.WaitGroup
		hc                   = edgeClient()
		greenBefore, blueAll atomic.Int64
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sentAfter.Load() < after {
				afterSwitch := switched.Load()
				color, err := get(ctx, hc, c.URL+"/", "")
				n := sent.Add(1)
				if afterSwitch {
					sentAfter.Add(1)
				}
				if n >= before {
					signalOnce.Do(func() { close(reachedBefore) })
				}
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case color == "blue":
					blueAll.Add(1)
					if afterSwitch {
						blueAfter.Add(1)
					}
				case color == "green" && !calling.Load():
					greenBefore.Add(1)
				}
			}
		}()
	}
	<-reachedBefore
	calling.Store(true)
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{blue.up(0), green.up(1)}); err != nil {
		t.Fatal(err)
	}
	switched.Store(true)
	wg.Wait()
	t.Logf("%d requests, %d after the switch; blue answered %d, green %d", sent.Load(), sentAfter.Load(), blue.hits.Load(), green.hits.Load())
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests failed, first: %v", n, firstErr.Load())
	}
	if n := blueAfter.Load(); n > 0 {
		t.Errorf("%d requests sent after SetUpstreams returned reached blue", n)
	}
	if n := greenBefore.Load(); n > 0 {
		t.Errorf("%d requests reached green before SetUpstreams was called", n)
	}
	if blueAll.Load() < before-workers || green.hits.Load() < after {
		t.Errorf("blue answered %d (want ≥ %d), green %d (want ≥ %d)", blueAll.Load(), before-workers, green.hits.Load(), after)
	}
	got, err := c.Upstreams(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != green.up(1) {
		t.Errorf("upstreams after the switch: %v", got)
	}
	// SetUpstreams kept the service's other settings: the upstream header.
	resp, err := retryEOF(func() (*http.Response, error) { return hc.Get(c.URL + "/") })
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get(edge.UpstreamHeader); h != green.dial() {
		t.Errorf("%s after SetUpstreams = %q, want %q", edge.UpstreamHeader, h, green.dial())
	}
	if err := c.WaitDrained(ctx, blue.dial()); err != nil {
		t.Error(err)
	}
}

func TestWeightedSplit(t *testing.T) {
	t.Parallel()
	c := startCaddy(t)
	ctx := context.Background()
	blue, green := newBackend(t, "blue", nil), newBackend(t, "green", nil)
	if err := c.Load(ctx, c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}})); err != nil {
		t.Fatal(err)
	}
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{blue.up(90), green.up(10)}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Upstreams(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != blue.up(90) || got[1] != green.up(10) {
		t.Errorf("upstreams: %v", got)
	}
	hc := edgeClient()
	const total = 1000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range total / 8 {
				if _, err := getRetry(ctx, hc, c.URL+"/", ""); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	share := float64(green.hits.Load()) / total
	t.Logf("green answered %d of %d (%.1f%%)", green.hits.Load(), total, 100*share)
	if failed.Load() > 0 || share < 0.05 || share > 0.20 {
		t.Errorf("green's share %.3f (failed %d), want 0.05–0.20 for weights 90/10", share, failed.Load())
	}
}

func TestDeadUpstream(t *testing.T) {
	t.Parallel()
	c := startCaddy(t)
	ctx := context.Background()
	a, b, dead := newBackend(t, "a", nil), newBackend(t, "b", nil), newBackend(t, "dead", nil)
	if err := c.Load(ctx, c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{a.up(1), b.up(1), dead.up(1)}})); err != nil {
		t.Fatal(err)
	}
	dead.srv.Close() // connections to it are now refused
	hc := edgeClient()
	for i := range 300 {
		if color, err := getRetry(ctx, hc, c.URL+"/", ""); err != nil || color == "dead" {
			t.Fatalf("request %d with one upstream dead: %q, %v", i, color, err)
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range st {
		if s.Dial == dead.dial() {
			found = true
			if s.Fails == 0 {
				t.Errorf("status of the dead upstream: %+v, want fails > 0", s)
			}
		}
	}
	if !found {
		t.Errorf("no status for %s in %+v", dead.dial(), st)
	}
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{a.up(1), b.up(1), dead.up(0)}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Upstreams(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != a.up(1) || got[1] != b.up(1) {
		t.Errorf("upstreams after removing the dead one: %v", got)
	}
	for i := range 20 {
		if _, err := getRetry(ctx, hc, c.URL+"/", ""); err != nil {
			t.Fatalf("request %d after removal: %v", i, err)
		}
	}
}

// TestWaitDrained holds a request on blue across the switch to green:
// WaitDrained waits for it, and it still completes.
func TestWaitDrained(t *testing.T) {
	t.Parallel()
	c := startCaddy(t)
	ctx := context.Background()
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	blue := newBackend(t, "blue", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
	})
	green := newBackend(t, "green", nil)
	if err := c.Load(ctx, c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}})); err != nil {
		t.Fatal(err)
	}
	hc := edgeClient()
	slow := make(chan error, 1)
	go func() {
		color, err := get(ctx, hc, c.URL+"/slow", "")
		if err == nil && color != "blue" {
			err = fmt.Errorf("slow request answered by %q", color)
		}
		slow <- err
	}()
	select {
	case <-arrived:
	case err := <-slow:
		t.Fatalf("slow request ended before reaching blue: %v", err)
	case <-time.After(30 * time.Second): // a guard against hanging, not a timing check
		t.Fatal("slow request did not reach blue within 30s")
	}
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{green.up(1)}); err != nil {
		t.Fatal(err)
	}
	if color, err := getRetry(ctx, hc, c.URL+"/", ""); err != nil || color != "green" {
		t.Fatalf("after the switch: %q, %v", color, err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := c.WaitDrained(short, blue.dial())
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), blue.dial()+" (1)") {
		t.Errorf("WaitDrained with a request held on blue: %v, want a deadline naming %s (1)", err, blue.dial())
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("request in flight during the switch: %v", err)
	}
	if err := c.WaitDrained(ctx, blue.dial()); err != nil {
		t.Errorf("WaitDrained after the request finished: %v", err)
	}
}

func TestAdminErrors(t *testing.T) {
	t.Parallel()
	c := startCaddy(t)
	ctx := context.Background()
	blue := newBackend(t, "blue", nil)
	if err := c.Load(ctx, c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}})); err != nil {
		t.Fatal(err)
	}

	err := c.SetUpstreams(ctx, "nope", []edge.Upstream{blue.up(1)})
	if !errors.Is(err, edge.ErrUnknownService) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := c.Upstreams(ctx, "nope"); !errors.Is(err, edge.ErrUnknownService) {
		t.Errorf("Upstreams of an unknown service: %v", err)
	}
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{blue.up(0)}); err == nil || !strings.Contains(err.Error(), "no upstream with a positive weight") {
		t.Errorf("all weights zero: %v", err)
	}

	// A configuration Caddy refuses: the answer carries Caddy's reason, and
	// the edge keeps serving the old one.
	bad := c.config(edge.Service{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}})
	bad.Listen = "127.0.0.1:99999"
	err = c.Load(ctx, bad)
	var ae *edge.AdminError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "99999") {
		t.Errorf("invalid listen address: %v", err)
	} else {
		t.Logf("caddy refused the config: %v", err)
	}
	if color, err := getRetry(ctx, edgeClient(), c.URL+"/", ""); err != nil || color != "blue" {
		t.Errorf("after a refused config: %q, %v", color, err)
	}

	down := edge.Client{Admin: fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))}
	if _, err := down.Upstreams(ctx, "web"); err == nil || !strings.Contains(err.Error(), "admin API unreachable") || !strings.Contains(err.Error(), down.Admin) {
		t.Errorf("admin API down: %v", err)
	}
	if err := (&edge.Client{}).Load(ctx, bad); err == nil || !strings.Contains(err.Error(), "Client.Admin is empty") {
		t.Errorf("no admin URL: %v", err)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAdminOverUnixSocket drives an edge whose admin API listens on a unix
// socket, through an http.Client that dials it, as a deploy does through SSH.
func TestAdminOverUnixSocket(t *testing.T) {
	t.Parallel()
	sock, listen := startUnixAdminCaddy(t)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	c := edge.Client{HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}, Admin: "http://edge"}
	blue, green := newBackend(t, "blue", nil), newBackend(t, "green", nil)
	cfg := edge.Config{Listen: caddyListen, AdminListen: "unix/" + sock, Services: []edge.Service{{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}}}}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Load(ctx, cfg)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("load through %s: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{green.up(1)}); err != nil {
		t.Fatal(err)
	}
	if color, err := getRetry(ctx, edgeClient(), "http://"+listen+"/", ""); err != nil || color != "green" {
		t.Errorf("after the switch: %q, %v", color, err)
	}
}

// startUnixAdminCaddy starts the edge binary with its admin API on a unix
// socket and one inherited listener; it returns the socket's path and the
// listener's address.
func startUnixAdminCaddy(t *testing.T) (sock, listen string) {
	t.Helper()
	bin := testenv.Caddy(t)
	dir, err := os.MkdirTemp("", "edge") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock = filepath.Join(dir, "admin.sock")
	boot := filepath.Join(dir, "boot.json")
	if err := os.WriteFile(boot, []byte(`{"admin":{"listen":"unix/`+sock+`"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var listenF *os.File
	listen, listenF = listenFile(t)
	log := &lockedBuffer{}
	cmd := exec.Command(bin, "run", "--config", boot)
	cmd.ExtraFiles = []*os.File{listenF}
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listenF.Close()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", log.String())
		}
	})
	return sock, listen
}
