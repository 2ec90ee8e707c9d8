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
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/history"
)

// composeFile is the stack: the sample app with a healthcheck every second,
// updated one task at a time, each watched for 3 s. The update order comes
// from deploy-swarm's --update-order.
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

// phase is one step of a deploy's own timeline.
type phase struct {
	Name       string
	Start, End time.Time
	Err        string
}

// scenario is one update under load and what was measured.
type scenario struct {
	Order, Name, Stack string
	Load               *loadResult
	LoadStart          time.Time // k6 started
	// DeployStart is when the deploy command was started, DeployEnd when it
	// exited; Verified when its verify step ended without error (zero if it
	// did not).
	DeployStart, DeployEnd, Verified time.Time
	Phases                           []phase
	Events                           []event
	// Changes and Refused are the stand-in balancer's backend changes and
	// the connections it could not pass on, during the load.
	Changes []backendChange
	Refused []connOutcome
	Refresh []refreshRun
	// Applied is the service's update_config after the deploy, as Swarm
	// has it.
	Applied string
	Gantry  *gantryRun
	Outcome string
	// Err says why the scenario did not run as intended.
	Err error
}

func (s *scenario) rel(t time.Time) float64 { return t.Sub(s.DeployStart).Seconds() }

// scenario deploys v1 to a new stack, then v2 with --update-order order
// under load, and removes the stack.
func (b *bench) scenario(ctx context.Context, order string) *scenario {
	sc := &scenario{Order: order, Name: "`--update-order " + order + "`", Stack: b.stack(order)}
	defer b.removeStack(context.WithoutCancel(ctx), sc.Stack)
	service := sc.Stack + "_web"
	dir := filepath.Join(b.tmp, sc.Stack)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		sc.Err = err
		return sc
	}
	compose := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(compose, []byte(fmt.Sprintf(composeFile, b.c.Replicas)), 0o644); err != nil {
		sc.Err = err
		return sc
	}
	ing, err := startIngress(ctx, service, 8080)
	if err != nil {
		sc.Err = err
		return sc
	}
	defer ing.Close()
	url := "http://" + ing.Addr() + "/health"
	stackDir := filepath.Join(dir, "manager")
	args := func(release, sha string, extra ...string) []string {
		return append([]string{"deploy-swarm", "--host", "local", "--stack", sc.Stack, "--stack-dir", stackDir,
			"--compose-file", compose, "--images", "web=" + b.images[release], "--sha", sha, "--url", url,
			"--verify-timeout", "60s", "--timeout", "5m", "--lock-wait", "0s", "--reason", "bench " + b.id}, extra...)
	}

	logf("%s: deploying v1 to stack %s (%d replicas)", sc.Name, sc.Stack, b.c.Replicas)
	if r := b.runGantry(ctx, sc.Stack+"-v1", args("v1", shaV1)...); r.Err != nil {
		sc.Err = fmt.Errorf("first deploy (v1): %w", r.Err)
		return sc
	}
	if err := waitBackends(ctx, ing, b.c.Replicas, time.Minute); err != nil {
		sc.Err = err
		return sc
	}
	if err := waitServes(ctx, url, shaV1, 30*time.Second); err != nil {
		sc.Err = err
		return sc
	}

	logf("%s: load %d req/s for %s through the stand-in %s; deploy of v2 after %s", sc.Name, b.c.Rate, b.c.Window, ing.Addr(), b.c.Lead)
	ev, err := b.watchEvents(ctx, service)
	if err != nil {
		sc.Err = err
		return sc
	}
	l, err := b.startLoad(ctx, order, url)
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
		sc.Gantry = b.runGantry(ctx, sc.Stack+"-v2", args("v2", shaV2, "--update-order", order)...)
		sc.DeployStart, sc.DeployEnd = sc.Gantry.Start, sc.Gantry.End
		sc.Outcome = sc.Gantry.Outputs["result"]
		derr = sc.Gantry.Err
		logf("%s: deploy took %.1fs (%s)", sc.Name, sc.DeployEnd.Sub(sc.DeployStart).Seconds(), errOrOK(derr))
	}
	res, lerr := l.Wait()
	sc.Events = ev.Stop()
	sc.Changes, sc.Refused, sc.Refresh = ing.Since(sc.LoadStart)
	sc.Load = res
	sc.Err = errors.Join(derr, lerr)
	if res != nil {
		logf("%s: %d requests, %d failed; the stand-in could not pass on %d connections", sc.Name, len(res.Requests), countFailed(res.Requests), len(sc.Refused))
	}
	if out, err := b.exec(ctx, nil, "docker", "service", "inspect", "--format",
		"order {{.Spec.UpdateConfig.Order}}, parallelism {{.Spec.UpdateConfig.Parallelism}}, monitor {{.Spec.UpdateConfig.Monitor}}, failure action {{.Spec.UpdateConfig.FailureAction}}", service); err == nil {
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
