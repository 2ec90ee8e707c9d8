package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Load of the switch tests: every request on a new connection.
const (
	switchWorkers  = 16
	switchRequests = 6000
)

// switchReport counts a load run's outcome around a switch at switched.
type switchReport struct {
	failed, blue, green, blueAfter int
	firstErrs                      []string
}

func countSwitch(results []result, switched time.Time) switchReport {
	var r switchReport
	for _, res := range results {
		switch {
		case res.err != nil:
			r.failed++
			if len(r.firstErrs) < 5 {
				r.firstErrs = append(r.firstErrs, res.err.Error())
			}
		case res.color == "blue":
			r.blue++
			if res.start.After(switched) {
				r.blueAfter++
			}
		case res.color == "green":
			r.green++
		}
	}
	return r
}

func TestSwitchUnderLoadLosesNoRequest(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	adminAddr, listen := freeAddr(t), freeAddr(t)
	edge := newEdgeHome(t).startWithConfig(t, adminAddr, edgeConfig(t, adminAddr, listen, dynamicProxy()))
	url := "http://" + listen + "/"
	c := freshConnClient()

	if _, err := get(c, url); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("before any PUT the edge answered %v, want HTTP 503 (no upstreams)", err)
	}
	edge.setUpstreams(upstream{blue.dial(), 1})
	if color, err := get(c, url); color != "blue" {
		t.Fatalf("after PUT blue the edge answered %q, %v", color, err)
	}

	var blueHitsAtSwitch int64
	results, switched := runLoad(c, url, switchWorkers, switchRequests, switchRequests/2, func() time.Time {
		at := edge.setUpstreams(upstream{green.dial(), 1})
		blueHitsAtSwitch = blue.hits.Load()
		return at
	})
	r := countSwitch(results, switched)
	t.Logf("dynamic switch: %d of %d requests failed (%d blue, %d green); blue got %d requests that arrived after the PUT returned (started before it)",
		r.failed, len(results), r.blue, r.green, blue.hits.Load()-blueHitsAtSwitch)
	if r.failed != 0 {
		t.Errorf("%d requests failed across the switch, e.g. %q", r.failed, r.firstErrs)
	}
	if r.blueAfter != 0 {
		t.Errorf("%d requests that started after the PUT returned were answered by blue", r.blueAfter)
	}
	if r.blue < 1000 || r.green < 1000 {
		t.Errorf("blue answered %d and green %d; the switch did not happen mid-load", r.blue, r.green)
	}
}

// TestReloadSwitchContrast runs the same load across a switch made the old
// way, by changing static upstreams in Caddy's config (a reload). It only
// reports what it measures: the failures depend on timing.
func TestReloadSwitchContrast(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	adminAddr, listen := freeAddr(t), freeAddr(t)
	edge := newEdgeHome(t).startWithConfig(t, adminAddr, edgeConfig(t, adminAddr, listen, staticProxy(blue.dial())))
	url := "http://" + listen + "/"
	c := freshConnClient()
	if color, err := get(c, url); color != "blue" {
		t.Fatalf("the edge answered %q, %v", color, err)
	}
	results, switched := runLoad(c, url, switchWorkers, switchRequests, switchRequests/2, func() time.Time {
		edge.mustCall(http.MethodPatch, "/id/proxy/upstreams", []map[string]string{{"dial": green.dial()}})
		return time.Now()
	})
	r := countSwitch(results, switched)
	t.Logf("config-reload switch: %d of %d requests failed (%d blue, %d green, %d blue after the PATCH returned); first errors: %q",
		r.failed, len(results), r.blue, r.green, r.blueAfter, r.firstErrs)
}

func TestWeightsSplitRequests(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	adminAddr, listen := freeAddr(t), freeAddr(t)
	edge := newEdgeHome(t).startWithConfig(t, adminAddr, edgeConfig(t, adminAddr, listen, dynamicProxy()))
	edge.setUpstreams(upstream{blue.dial(), 90}, upstream{green.dial(), 10})

	c := &http.Client{Timeout: 10 * time.Second}
	results, _ := runLoad(c, "http://"+listen+"/", 8, 2000, 0, nil)
	r := countSwitch(results, time.Time{})
	t.Logf("weights 90/10: blue %d, green %d, failed %d of 2000", r.blue, r.green, r.failed)
	if r.failed != 0 || r.blue < 1700 || r.blue > 1900 || r.green < 100 || r.green > 300 {
		t.Fatalf("weights 90/10 gave blue %d, green %d, failed %d of 2000; want about 1800/200", r.blue, r.green, r.failed)
	}

	// A canary step the other way round.
	edge.setUpstreams(upstream{blue.dial(), 1}, upstream{green.dial(), 3})
	results, _ = runLoad(c, "http://"+listen+"/", 8, 2000, 0, nil)
	r = countSwitch(results, time.Time{})
	t.Logf("weights 1/3: blue %d, green %d, failed %d of 2000", r.blue, r.green, r.failed)
	if r.failed != 0 || r.blue < 400 || r.blue > 600 {
		t.Fatalf("weights 1/3 gave blue %d, green %d, failed %d of 2000; want about 500/1500", r.blue, r.green, r.failed)
	}
}

func TestInFlightShowsDrainingUpstream(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	adminAddr, listen := freeAddr(t), freeAddr(t)
	edge := newEdgeHome(t).startWithConfig(t, adminAddr, edgeConfig(t, adminAddr, listen, dynamicProxy()))
	edge.setUpstreams(upstream{blue.dial(), 1})
	url := "http://" + listen

	slow := make(chan error, 1)
	go func() {
		color, err := get(freshConnClient(), url+"/slow")
		if err == nil && color != "blue" {
			err = &unexpectedColor{color}
		}
		slow <- err
	}()
	select {
	case <-blue.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request did not reach blue")
	}
	edge.setUpstreams(upstream{green.dial(), 1})

	got := edge.inFlight()
	if b := got[blue.dial()]; b.InFlight != 1 || len(b.Services) != 0 || b.RemovedAt == nil {
		t.Fatalf("after the switch, blue = %+v, want 1 in flight, no services, removed_at set (all: %+v)", b, got)
	}
	if g := got[green.dial()]; g.InFlight != 0 || !reflect.DeepEqual(g.Services, []string{"web"}) {
		t.Fatalf("after the switch, green = %+v, want 0 in flight, services [web]", g)
	}
	if color, err := get(freshConnClient(), url+"/"); color != "green" {
		t.Fatalf("a new request went to %q (%v), want green", color, err)
	}

	close(blue.release)
	if err := <-slow; err != nil {
		t.Fatalf("the slow request on blue failed after the switch: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for edge.inFlight()[blue.dial()].InFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("blue still has requests in flight 5s after the slow one finished: %+v", edge.inFlight())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type unexpectedColor struct{ color string }

func (e *unexpectedColor) Error() string { return "answered by " + e.color }

func TestRestartKeepsRouting(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	adminAddr, listen := freeAddr(t), freeAddr(t)
	// Like the edge container: "gantry-edge run --resume", the admin
	// address from CADDY_ADMIN, the config loaded through the API.
	home := newEdgeHome(t, "CADDY_ADMIN="+adminAddr)
	edge := home.start(t, adminAddr, "run", "--resume")
	edge.mustCall(http.MethodPost, "/load", json.RawMessage(edgeConfig(t, "", listen, dynamicProxy())))
	want := []upstream{{blue.dial(), 0}, {green.dial(), 1}}
	edge.setUpstreams(want...)
	url := "http://" + listen + "/"
	if color, err := get(freshConnClient(), url); color != "green" {
		t.Fatalf("before the restart the edge answered %q, %v", color, err)
	}

	edge.stop(syscall.SIGKILL) // a crash: nothing is written on the way out
	if _, err := os.Stat(filepath.Join(home.dataHome, "caddy", "gantry", "upstreams.json")); err != nil {
		t.Fatalf("registry file: %v", err)
	}
	edge = home.start(t, adminAddr, "run", "--resume")

	var got []upstream
	if err := json.Unmarshal(edge.mustCall(http.MethodGet, "/gantry/upstreams/web", nil), &got); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restart web = %+v (%v), want %+v", got, err, want)
	}
	c := freshConnClient()
	for i := range 20 {
		color, err := get(c, url)
		if err != nil && i == 0 && strings.Contains(err.Error(), "connection refused") {
			time.Sleep(100 * time.Millisecond) // the listener may follow the admin API
			continue
		}
		if color != "green" {
			t.Fatalf("after the restart request %d was answered %q, %v; want green", i, color, err)
		}
	}
}

func TestBadPutIsRefused(t *testing.T) {
	adminAddr, listen := freeAddr(t), freeAddr(t)
	edge := newEdgeHome(t).startWithConfig(t, adminAddr, edgeConfig(t, adminAddr, listen, dynamicProxy()))
	tests := []struct {
		name, body, want string
	}{
		{"empty", `[]`, "upstream list is empty"},
		{"all zero", `[{"dial":"a:1","weight":0}]`, "every weight is 0"},
		{"not json", `web-2:8080`, "decode body"},
		{"no port", `[{"dial":"web-2","weight":1}]`, `dial \"web-2\" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := edge.call(http.MethodPut, "/gantry/upstreams/web", []byte(tt.body))
			var e struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(body, &e)
			if status != http.StatusBadRequest || !strings.Contains(string(body), tt.want) || e.Error == "" {
				t.Fatalf("PUT %s = %d %s, want 400 and {\"error\": ...%s...}", tt.body, status, body, tt.want)
			}
		})
	}
	if status, body := edge.call(http.MethodGet, "/gantry/upstreams/web", nil); status != http.StatusNotFound {
		t.Fatalf("after refused PUTs GET = %d %s, want 404", status, body)
	}
}

func TestCaddyfile(t *testing.T) {
	dir := t.TempDir()
	caddyfile := filepath.Join(dir, "Caddyfile")
	err := os.WriteFile(caddyfile, []byte(":8080 {\n\treverse_proxy {\n\t\tdynamic gantry web\n\t\tlb_policy gantry\n\t}\n}\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(edgeBin, "adapt", "--config", caddyfile)
	cmd.Env = newEdgeHome(t).env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{`"dynamic_upstreams":{"service":"web","source":"gantry"}`, `"selection_policy":{"policy":"gantry"}`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("adapted config lacks %s:\n%s", want, out)
		}
	}
}
