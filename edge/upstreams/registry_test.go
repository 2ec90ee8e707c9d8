package upstreams

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestCheckUpstreams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []Upstream
		want string // substring of the error; "" for none
	}{
		{"one", []Upstream{{"web-1:8080", 1}}, ""},
		{"canary", []Upstream{{"web-1:8080", 90}, {"web-2:8080", 10}}, ""},
		{"zero kept", []Upstream{{"web-1:8080", 0}, {"web-2:8080", 1}}, ""},
		{"ipv6", []Upstream{{"[::1]:8080", 1}}, ""},
		{"empty", nil, "upstream list is empty"},
		{"all zero", []Upstream{{"web-1:8080", 0}, {"web-2:8080", 0}}, "every weight is 0"},
		{"negative", []Upstream{{"web-1:8080", -1}}, "weight -1 is outside 0 to 1000000"},
		{"too heavy", []Upstream{{"web-1:8080", MaxWeight + 1}}, "is outside"},
		{"no port", []Upstream{{"web-1", 1}}, `dial "web-1" is not host:port`},
		{"no host", []Upstream{{":8080", 1}}, "is not host:port"},
		{"bad port", []Upstream{{"web:0", 1}}, "is not host:port"},
		{"scheme", []Upstream{{"http://web:80", 1}}, "is not host:port"},
		{"placeholder", []Upstream{{"{http.request.host}:80", 1}}, "is not host:port"},
		{"twice", []Upstream{{"web:80", 1}, {"web:80", 2}}, "upstream 2: web:80 is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkUpstreams(tt.in)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkUpstreams: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkUpstreams = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPickSplitsByWeight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		weights   []int
		available []bool
		rounds    int
		want      []int
	}{
		{"90/10", []int{90, 10}, []bool{true, true}, 100, []int{90, 10}},
		{"10/90", []int{10, 90}, []bool{true, true}, 1000, []int{100, 900}},
		{"1/2/3", []int{1, 2, 3}, []bool{true, true, true}, 60, []int{10, 20, 30}},
		{"one down", []int{1, 2, 3}, []bool{true, false, true}, 40, []int{10, 0, 30}},
		{"all down", []int{1, 1}, []bool{false, false}, 5, []int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rt := &route{weights: tt.weights, current: make([]int, len(tt.weights))}
			got := make([]int, len(tt.weights))
			for range tt.rounds {
				if i := rt.pick(tt.available); i >= 0 {
					got[i]++
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPickInterleaves(t *testing.T) {
	t.Parallel()
	rt := &route{weights: []int{3, 1}, current: make([]int, 2)}
	var seq []int
	for range 8 {
		seq = append(seq, rt.pick([]bool{true, true}))
	}
	// Smooth: the light upstream comes once in every four, not after a burst.
	if want := []int{0, 0, 1, 0, 0, 0, 1, 0}; !reflect.DeepEqual(seq, want) {
		t.Fatalf("sequence = %v, want %v", seq, want)
	}
}

func TestRegistryPersists(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "gantry", "upstreams.json")
	reg, err := OpenRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	web := []Upstream{{"web-blue:8080", 90}, {"web-green:8080", 10}, {"web-old:8080", 0}}
	api := []Upstream{{"api-1:9000", 1}}
	for name, us := range map[string][]Upstream{"web": web, "api": api} {
		if err := reg.Set(name, us); err != nil {
			t.Fatal(err)
		}
	}
	again, err := OpenRegistry(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := again.All(), map[string][]Upstream{"web": web, "api": api}; !reflect.DeepEqual(got, want) {
		t.Fatalf("reopened registry = %v, want %v", got, want)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("registry directory holds %d files, want only upstreams.json (no temporary files left)", len(entries))
	}
}

func TestRegistryRefusesBadFile(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"not json":   "{",
		"version":    `{"version":2,"services":{}}`,
		"bad entry":  `{"version":1,"services":{"web":[{"dial":"web","weight":1}]}}`,
		"bad name":   `{"version":1,"services":{"a b":[{"dial":"web:1","weight":1}]}}`,
		"no weights": `{"version":1,"services":{"web":[{"dial":"web:1","weight":0}]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "upstreams.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenRegistry(path); err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("OpenRegistry = %v, want an error naming %s", err, path)
			}
		})
	}
}

func TestRegistryWriteFailureChangesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg, err := OpenRegistry(filepath.Join(dir, "upstreams.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Set("web", []Upstream{{"web-1:80", 1}}); err != nil {
		t.Fatal(err)
	}
	// A directory where the file should be makes the rename fail.
	reg.path = dir
	if err := reg.Set("web", []Upstream{{"web-2:80", 1}}); err == nil {
		t.Fatal("Set succeeded although the file could not be written")
	}
	if got, _ := reg.Get("web"); !reflect.DeepEqual(got, []Upstream{{"web-1:80", 1}}) {
		t.Fatalf("after a failed Set, web = %v, want the old upstreams", got)
	}
}

// proxyRequest does what reverse_proxy does with one request: get the
// upstreams, provision them, let the policy choose. end finishes the request.
func proxyRequest(t testing.TB, src *Source) (chosen string, end func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), caddyhttp.VarsCtxKey, map[string]any{}))
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://edge/", nil)
	pool, err := src.GetUpstreams(r)
	if err != nil {
		t.Errorf("GetUpstreams: %v", err)
	}
	for _, u := range pool {
		u.Host = new(reverseproxy.Host)
	}
	u := Policy{}.Select(pool, r, nil)
	if u == nil {
		return "", cancel
	}
	return u.Dial, cancel
}

func testSource(t testing.TB, reg *Registry, service string) *Source {
	t.Helper()
	return &Source{Service: service, reg: reg, logger: zap.NewNop(), warnOnce: new(sync.Once)}
}

func inFlight(reg *Registry, dial string) int64 {
	for _, e := range reg.InFlight() {
		if e.Dial == dial {
			return e.InFlight
		}
	}
	return 0
}

func TestSourceAndPolicyHonourWeights(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	if err := reg.Set("web", []Upstream{{"blue:80", 90}, {"green:80", 10}}); err != nil {
		t.Fatal(err)
	}
	src := testSource(t, reg, "web")
	got := map[string]int{}
	for range 1000 {
		dial, end := proxyRequest(t, src)
		got[dial]++
		end()
	}
	if want := map[string]int{"blue:80": 900, "green:80": 100}; !reflect.DeepEqual(got, want) {
		t.Fatalf("requests per upstream = %v, want %v", got, want)
	}
}

func TestInFlightCountsTheChosenUpstream(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	if err := reg.Set("web", []Upstream{{"blue:80", 1}, {"green:80", 1}}); err != nil {
		t.Fatal(err)
	}
	src := testSource(t, reg, "web")
	first, end1 := proxyRequest(t, src)
	second, end2 := proxyRequest(t, src)
	if first == second {
		t.Fatalf("1/1 weights sent both requests to %s", first)
	}
	if inFlight(reg, "blue:80") != 1 || inFlight(reg, "green:80") != 1 {
		t.Fatalf("in flight = %+v, want 1 on each", reg.InFlight())
	}
	if err := reg.Set("web", []Upstream{{"green:80", 1}}); err != nil {
		t.Fatal(err)
	}
	got := reg.InFlight()
	if len(got) != 2 || got[0].Dial != "blue:80" || got[0].InFlight != 1 || got[0].RemovedAt == nil || len(got[0].Services) != 0 {
		t.Fatalf("after removing blue, in flight = %+v, want blue listed as removed with 1", got)
	}
	end1()
	end2()
	waitFor(t, func() bool { return inFlight(reg, "blue:80") == 0 && inFlight(reg, "green:80") == 0 })
}

func TestUnknownServiceGetsNoUpstreams(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	dial, end := proxyRequest(t, testSource(t, reg, "web"))
	defer end()
	if dial != "" {
		t.Fatalf("a service without upstreams was routed to %s", dial)
	}
}

// TestNoRequestAfterDrained checks the promise a deploy relies on: once the
// switch has returned and the old upstream's count has been read as 0, no
// request goes there any more.
func TestNoRequestAfterDrained(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	if err := reg.Set("web", []Upstream{{"blue:80", 1}}); err != nil {
		t.Fatal(err)
	}
	src := testSource(t, reg, "web")
	var drained atomic.Bool
	var late, requests atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				dial, end := proxyRequest(t, src)
				requests.Add(1)
				// The request is still counted on dial here.
				if dial == "blue:80" && drained.Load() {
					late.Add(1)
				}
				end()
			}
		})
	}
	for requests.Load() < 2000 {
		time.Sleep(time.Millisecond)
	}
	if err := reg.Set("web", []Upstream{{"green:80", 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return inFlight(reg, "blue:80") == 0 })
	drained.Store(true)
	n := requests.Load()
	for requests.Load() < n+2000 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if late.Load() != 0 {
		t.Fatalf("%d requests went to blue after its count was read as 0", late.Load())
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTwoHandlersInOneRequest(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	_ = reg.Set("auth", []Upstream{{"auth:80", 1}})
	_ = reg.Set("web", []Upstream{{"blue:80", 1}, {"green:80", 1}})
	auth, web := testSource(t, reg, "auth"), testSource(t, reg, "web")
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), caddyhttp.VarsCtxKey, map[string]any{}))
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://edge/", nil)
	get := func(src *Source) reverseproxy.UpstreamPool {
		pool, _ := src.GetUpstreams(r)
		for _, u := range pool {
			u.Host = new(reverseproxy.Host)
		}
		return pool
	}
	// The outer handler's request is still in flight while an inner one
	// (a handle_response route, say) proxies to another service.
	outer := get(web)
	chosen := Policy{}.Select(outer, r, nil)
	inner := get(auth)
	if u := (Policy{}).Select(inner, r, nil); u == nil || u.Dial != "auth:80" {
		t.Fatalf("inner handler chose %v, want auth:80", u)
	}
	other := map[string]string{"blue:80": "green:80", "green:80": "blue:80"}[chosen.Dial]
	if inFlight(reg, chosen.Dial) != 1 || inFlight(reg, other) != 0 || inFlight(reg, "auth:80") != 1 {
		t.Fatalf("in flight = %+v, want 1 on %s and auth:80 only", reg.InFlight(), chosen.Dial)
	}
	cancel()
	waitFor(t, func() bool {
		return inFlight(reg, "blue:80")+inFlight(reg, "green:80")+inFlight(reg, "auth:80") == 0
	})
}

func TestOtherPolicyIsWarnedAbout(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	_ = reg.Set("web", []Upstream{{"blue:80", 1}, {"green:80", 1}})
	core, logs := observer.New(zap.WarnLevel)
	src := testSource(t, reg, "web")
	src.logger = zap.New(core)
	for range 3 {
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), caddyhttp.VarsCtxKey, map[string]any{}))
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://edge/", nil)
		if pool, _ := src.GetUpstreams(r); len(pool) != 2 {
			t.Fatalf("got %d upstreams, want 2", len(pool))
		}
		// Another policy chose; the request counts on both until it ends.
		if inFlight(reg, "blue:80") != 1 || inFlight(reg, "green:80") != 1 {
			t.Fatalf("in flight = %+v, want 1 on each", reg.InFlight())
		}
		cancel()
		waitFor(t, func() bool { return inFlight(reg, "blue:80")+inFlight(reg, "green:80") == 0 })
	}
	if n := logs.FilterMessageSnippet(`without selection_policy "gantry"`).Len(); n != 1 {
		t.Fatalf("%d warnings about the policy, want 1", n)
	}
}
