package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
	"github.com/gantry-dev/gantry/internal/demo"
	"github.com/gantry-dev/gantry/internal/history"
)

// composeFile is the stack of the rolling scenarios: the sample app with a
// healthcheck every second, updated one task at a time, each watched for
// 3 s. The update order comes from deploy-swarm's --update-order.
const composeFile = `services:
  web:
    image: bench/web # pinned by digest by gantry's override
    healthcheck:
      test: ["CMD", "/app", "-health"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 1s
    deploy:
      replicas: %d
      update_config:
        parallelism: 1
        monitor: 3s
`

// edgeComposeFile is the stack of the edge scenarios: the same service,
// served through gantry's edge (the label, and the port the edge reaches it
// on). gantry renders it as web-blue and web-green (endpoint_mode dnsrr)
// plus gantry-edge; update_config does not come into play, since a deploy
// updates the color that has no task.
const edgeComposeFile = `services:
  web:
    image: bench/web # pinned by digest by gantry's override
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
      replicas: %d
      update_config:
        parallelism: 1
        monitor: 3s
`

// scenarioKeys are the scenarios, in the order they run by default.
var scenarioKeys = []string{"start-first", "stop-first", "blue-green", "canary"}

// canarySteps is the canary scenario's --canary-steps.
const canarySteps = "50"

// isEdge tells whether a scenario deploys through gantry's edge.
func isEdge(key string) bool { return key == "blue-green" || key == "canary" }

// phase is one step of a deploy's own timeline.
type phase struct {
	Name       string
	Start, End time.Time
	Err        string
}

// scenario is one deploy under load and what was measured.
type scenario struct {
	// Key is one of scenarioKeys; Edge says it deploys through the edge.
	Key, Name, Stack string
	Edge             bool
	Load             *loadResult
	LoadStart        time.Time // k6 started
	// DeployStart is when the deploy command was started, DeployEnd when it
	// exited; Verified when its verify step ended without error (zero if it
	// did not).
	DeployStart, DeployEnd, Verified time.Time
	Phases                           []phase
	Events                           []benchenv.Event
	// Changes and Refused are the stand-in balancer's backend changes and
	// the connections it could not pass on, during the load (rolling
	// scenarios).
	Changes []backendChange
	Refused []connOutcome
	Refresh []refreshRun
	// URL is where k6 and deploy-swarm's --url send requests: the stand-in,
	// or the edge's host-mode port.
	URL string
	// Live and Next are the colors that served v1 and that v2 went to
	// (edge scenarios: web-blue, web-green).
	Live, Next string
	// EdgeLog is the edge's configuration changes during the load.
	EdgeLog []benchenv.EdgeEntry
	// Applied is, after the deploy, the service's update_config as Swarm
	// has it (rolling), or the colors' replicas (edge).
	Applied string
	// Warnings are the warnings gantry logged during the v2 deploy.
	Warnings []string
	Gantry   *gantryRun
	Outcome  string
	// Err says why the scenario did not run as intended.
	Err error
}

func (s *scenario) rel(t time.Time) float64 { return t.Sub(s.DeployStart).Seconds() }

// scenarioName is how the report names a scenario: the options that make it.
func scenarioName(key string, c config) string {
	switch key {
	case "blue-green":
		return "`--strategy blue-green` (edge)"
	case "canary":
		return fmt.Sprintf("`--strategy canary --canary-steps %s --canary-interval %s` (edge)", canarySteps, c.CanaryInterval)
	}
	return "`--update-order " + key + "`"
}

// scenario deploys v1 to a new stack, then v2 under load as key says, and
// removes the stack.
func (b *bench) scenario(ctx context.Context, key string) *scenario {
	sc := &scenario{Key: key, Edge: isEdge(key), Name: scenarioName(key, b.c), Stack: b.stack(key)}
	defer b.removeStack(context.WithoutCancel(ctx), sc.Stack)
	dir := filepath.Join(b.tmp, sc.Stack)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		sc.Err = err
		return sc
	}
	file := composeFile
	if sc.Edge {
		file = edgeComposeFile
	}
	compose := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(compose, []byte(fmt.Sprintf(file, b.c.Replicas)), 0o644); err != nil {
		sc.Err = err
		return sc
	}
	// v2's deploy options beyond those of both deploys.
	var v2Extra []string
	var ing *ingress
	if sc.Edge {
		port, err := demo.FreePort()
		if err != nil {
			sc.Err = err
			return sc
		}
		sc.URL = fmt.Sprintf("http://127.0.0.1:%d/health", port)
		if key == "canary" {
			v2Extra = []string{"--canary-steps", canarySteps, "--canary-interval", b.c.CanaryInterval.String()}
		}
	} else {
		var err error
		if ing, err = startIngress(ctx, sc.Stack+"_web", 8080); err != nil {
			sc.Err = err
			return sc
		}
		defer ing.Close()
		sc.URL = "http://" + ing.Addr() + "/health"
		v2Extra = []string{"--update-order", key}
	}
	stackDir := filepath.Join(dir, "manager")
	args := func(release, sha string, extra ...string) []string {
		a := []string{"deploy-swarm", "--host", "local", "--stack", sc.Stack, "--stack-dir", stackDir,
			"--compose-file", compose, "--images", "web=" + b.images[release], "--sha", sha, "--url", sc.URL,
			"--verify-timeout", "60s", "--timeout", "5m", "--lock-wait", "0s", "--reason", "bench " + b.id}
		if sc.Edge {
			port := strings.TrimSuffix(strings.TrimPrefix(sc.URL, "http://127.0.0.1:"), "/health")
			a = append(a, "--strategy", key, "--edge-image", b.images["edge"], "--edge-ports", port+":80")
		}
		return append(a, extra...)
	}

	logf("%s: deploying v1 to stack %s (%d replicas)", sc.Name, sc.Stack, b.c.Replicas)
	if r := b.runGantry(ctx, sc.Stack+"-v1", args("v1", shaV1)...); r.Err != nil {
		sc.Err = fmt.Errorf("first deploy (v1): %w", r.Err)
		return sc
	}
	if sc.Edge {
		sc.Live, sc.Next = "web-blue", "web-green"
		if got := b.replicas(ctx, sc.Stack+"_"+sc.Live); got != strconv.Itoa(b.c.Replicas) {
			sc.Err = fmt.Errorf("after the first deploy %s_%s wants %q replicas, want %d (gantry's first color is blue)", sc.Stack, sc.Live, got, b.c.Replicas)
			return sc
		}
		if err := b.waitHealthy(ctx, sc.Stack+"_"+sc.Live, b.c.Replicas, time.Minute); err != nil {
			sc.Err = err
			return sc
		}
	} else if err := waitBackends(ctx, ing, b.c.Replicas, time.Minute); err != nil {
		sc.Err = err
		return sc
	}
	if err := waitServes(ctx, sc.URL, shaV1, 30*time.Second); err != nil {
		sc.Err = err
		return sc
	}

	via := "the stand-in " + strings.TrimSuffix(strings.TrimPrefix(sc.URL, "http://"), "/health")
	if sc.Edge {
		via = "the edge's host-mode port " + strings.TrimSuffix(strings.TrimPrefix(sc.URL, "http://"), "/health")
	}
	logf("%s: load %d req/s for %s through %s; deploy of v2 after %s", sc.Name, b.c.Rate, b.c.Window, via, b.c.Lead)
	ev, err := b.watchEvents(ctx, sc.Stack)
	if err != nil {
		sc.Err = err
		return sc
	}
	l, err := b.startLoad(ctx, key, sc.URL)
	if err != nil {
		ev.Stop()
		sc.Err = err
		return sc
	}
	sc.LoadStart = l.Started
	select {
	case <-ctx.Done():
	case <-time.After(b.c.Lead):
	}
	var derr error
	if ctx.Err() == nil {
		sc.Gantry = b.runGantry(ctx, sc.Stack+"-v2", args("v2", shaV2, v2Extra...)...)
		sc.DeployStart, sc.DeployEnd = sc.Gantry.Start, sc.Gantry.End
		sc.Outcome = sc.Gantry.Outputs["result"]
		derr = sc.Gantry.Err
		for _, line := range strings.Split(sc.Gantry.Log, "\n") {
			if w, ok := strings.CutPrefix(strings.TrimSpace(line), "warning: "); ok {
				sc.Warnings = append(sc.Warnings, w)
			}
		}
		logf("%s: deploy took %.1fs (%s)", sc.Name, sc.DeployEnd.Sub(sc.DeployStart).Seconds(), errOrOK(derr))
	}
	res, lerr := l.Wait()
	sc.Events = ev.Stop()
	if ing != nil {
		sc.Changes, sc.Refused, sc.Refresh = ing.Since(sc.LoadStart)
	}
	sc.Load = res
	sc.Err = errors.Join(derr, lerr)
	switch {
	case res != nil && sc.Edge:
		logf("%s: %d requests, %d failed", sc.Name, len(res.Requests), countFailed(res.Requests))
	case res != nil:
		logf("%s: %d requests, %d failed; the stand-in could not pass on %d connections", sc.Name, len(res.Requests), countFailed(res.Requests), len(sc.Refused))
	}
	if sc.Edge {
		if sc.EdgeLog, err = b.edgeLog(ctx, sc.Stack, sc.LoadStart); err != nil {
			logf("%s: the edge's log: %v", sc.Name, err)
		}
		var parts []string
		for _, svc := range []string{sc.Live, sc.Next, "gantry-edge"} {
			parts = append(parts, fmt.Sprintf("%s %s", svc, orNone(b.replicas(ctx, sc.Stack+"_"+svc))))
		}
		sc.Applied = "replicas " + strings.Join(parts, ", ")
	} else if out, err := b.exec(ctx, nil, "docker", "service", "inspect", "--format",
		"order {{.Spec.UpdateConfig.Order}}, parallelism {{.Spec.UpdateConfig.Parallelism}}, monitor {{.Spec.UpdateConfig.Monitor}}, failure action {{.Spec.UpdateConfig.FailureAction}}", sc.Stack+"_web"); err == nil {
		sc.Applied = strings.TrimSpace(out)
	}
	if sc.Gantry == nil {
		return sc
	}
	e, err := lastHistory(filepath.Join(stackDir, ".gantry", "history.jsonl"))
	if err != nil {
		sc.Err = errors.Join(sc.Err, err)
		return sc
	}
	for _, p := range e.Phases {
		sc.Phases = append(sc.Phases, phase{Name: p.Name, Start: p.Started, End: p.Started.Add(p.Duration), Err: p.Error})
		if p.Name == "verify" && p.Error == "" {
			sc.Verified = p.Started.Add(p.Duration)
		}
	}
	return sc
}

// replicas is a service's desired replicas ("" when it does not exist).
func (b *bench) replicas(ctx context.Context, service string) string {
	out, err := b.exec(ctx, nil, "docker", "service", "inspect", "--format", "{{.Spec.Mode.Replicated.Replicas}}", service)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// waitHealthy waits until n containers of service run healthy.
func (b *bench) waitHealthy(ctx context.Context, service string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var got int
	for time.Now().Before(deadline) {
		out, err := b.exec(ctx, nil, "docker", "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name="+service, "--filter", "health=healthy")
		if got = len(strings.Fields(out)); err == nil && got == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s has %d healthy containers after %s, want %d", service, got, timeout, n)
}

func errOrOK(err error) string {
	if err == nil {
		return "ok"
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func countFailed(rs []request) int {
	n := 0
	for _, r := range rs {
		if r.Failed() {
			n++
		}
	}
	return n
}

// lastHistory reads the last deploy of a gantry history file.
func lastHistory(path string) (*history.Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gantry's deploy history: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var e history.Entry
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &e, nil
}

// waitBackends waits until the stand-in sends connections to n containers.
func waitBackends(ctx context.Context, ing *ingress, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ing.Backends() == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the stand-in balancer has %d healthy containers of %s after %s, want %d", ing.Backends(), ing.service, timeout, n)
}

// waitServes waits until url answers 200 with sha.
func waitServes(ctx context.Context, url, sha string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var last string
	for time.Now().Before(deadline) {
		got, err := healthSHA(ctx, client, url)
		if err == nil && got == sha {
			return nil
		}
		last = fmt.Sprint(got, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not serve %s within %s (last: %s)", url, sha[:7], timeout, last)
}

// healthSHA returns the commit url's /health reports.
func healthSHA(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var h struct {
		SHA string `json:"git_sha"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return "", err
	}
	return h.SHA, nil
}
