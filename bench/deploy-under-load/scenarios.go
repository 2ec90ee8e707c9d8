package main

import (
	"bufio"
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

// Scenario kinds.
const (
	kindBlueGreen = "blue-green"
	kindCrash     = "crash"
	kindRolling   = "rolling"
	kindBaseline  = "baseline"
)

// phase is one step of a deploy's own timeline.
type phase struct {
	Name       string
	Start, End time.Time
	Err        string
}

// scenario is one deploy under load and what was measured.
type scenario struct {
	Kind, Name string
	// OldSHA serves before the deploy; NewSHA is deployed.
	OldSHA, NewSHA string
	Load           *loadResult
	LoadStart      time.Time // k6 started
	// DeployStart is when the deploy command was started, DeployEnd when it
	// exited.
	DeployStart, DeployEnd time.Time
	// Verified is when the deploy had verified the new version through the
	// public URL (zero if it did not); Detected, for the crash, is when
	// the step failed with "failed to start".
	Verified, Detected time.Time
	DetectMsg          string
	Phases             []phase
	Events             []benchenv.Event
	// Edge lists the edge's configuration changes during the load.
	Edge []benchenv.EdgeEntry
	// Gantry is the gantry run, for gantry scenarios; Outcome its result.
	Gantry  *gantryRun
	Outcome string
	// Script is the baseline script's text and output.
	Script, ScriptOut string
	// Err says why the scenario did not run as intended.
	Err error
}

func (s *scenario) rel(t time.Time) float64 { return t.Sub(s.DeployStart).Seconds() }

// gantryCompose is the service as gantry deploys it: no published port,
// served through the edge.
const gantryCompose = `services:
  web:
    image: bench/web # pinned by digest by gantry's override
    expose: ["8080"]
    labels:
      gantry.edge: "true"
%s`

// baselineCompose is the same service as most Compose files have it: the
// port published on the host, the image from the environment.
const baselineCompose = `services:
  web:
    image: ${APP_IMAGE:?set APP_IMAGE}
    ports: ["127.0.0.1:${PORT:?set PORT}:8080"]
`

// baselineScript is the deploy most teams script: pull the new image,
// recreate the service, then sleep and curl until /health answers with the
// new commit. The echo lines only timestamp its steps for the timeline.
const baselineScript = `#!/bin/sh
set -eu
compose() { docker compose --project-name "$PROJECT" --file "$COMPOSE_FILE" "$@"; }
echo "pull $(date +%s.%N)"
compose pull --quiet web
echo "up $(date +%s.%N)"
compose up -d --force-recreate web
echo "wait $(date +%s.%N)"
until curl -fsS --max-time 2 "$URL" | grep -q "\"git_sha\":\"$SHA\""; do
  sleep 1
done
echo "verified $(date +%s.%N)"
`

// edgeTarget is a gantry project served by an edge on a loopback port.
type edgeTarget struct {
	project, dir, compose, url string
	port                       int
}

func (b *bench) newEdgeTarget(ctx context.Context, suffix, extra string) (*edgeTarget, error) {
	t := &edgeTarget{project: b.project(ctx, suffix), dir: filepath.Join(b.tmp, suffix)}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, err
	}
	t.compose = filepath.Join(t.dir, "compose.yml")
	if err := os.WriteFile(t.compose, []byte(fmt.Sprintf(gantryCompose, extra)), 0o644); err != nil {
		return nil, err
	}
	var err error
	if t.port, err = demo.FreePort(); err != nil {
		return nil, err
	}
	t.url = fmt.Sprintf("http://127.0.0.1:%d/health", t.port)
	return t, nil
}

// deployArgs is gantry deploy-compose of release to t with strategy; every
// other input keeps its default.
func (b *bench) deployArgs(t *edgeTarget, strategy, release, sha string) []string {
	return []string{"deploy-compose", "--host", "local", "--project", t.project,
		"--project-dir", filepath.Join(t.dir, "host"), "--compose-file", t.compose,
		"--strategy", strategy, "--images", "web=" + b.images[release], "--sha", sha,
		"--edge-image", b.images["edge"], "--edge-ports", fmt.Sprintf("127.0.0.1:%d:80", t.port),
		"--url", t.url, "--reason", "bench " + b.id}
}

// The blue-green project stays up for the crash scenario.
var errNoBlueGreen = errors.New("the blue-green scenario did not leave v2 serving, so the crash scenario has nothing to fall back to")

func (b *bench) blueGreen(ctx context.Context) (*scenario, error) {
	sc := &scenario{Kind: kindBlueGreen, Name: "gantry blue-green", OldSHA: shaV1, NewSHA: shaV2}
	t, err := b.newEdgeTarget(ctx, "bg", "")
	if err != nil {
		return nil, err
	}
	b.bg = t
	if _, err := b.gantryStep(ctx, "bg-v1", b.deployArgs(t, "blue-green", "v1", shaV1)...); err != nil {
		sc.Err = fmt.Errorf("first deploy (v1): %w", err)
		return sc, nil
	}
	b.gantryUnderLoad(ctx, sc, t, "bg-v2", b.deployArgs(t, "blue-green", "v2", shaV2))
	if sc.Err == nil {
		b.bgServes = shaV2
	}
	return sc, nil
}

func (b *bench) crash(ctx context.Context) (*scenario, error) {
	sc := &scenario{Kind: kindCrash, Name: "gantry blue-green, release exits 1 on start", OldSHA: shaV2, NewSHA: shaCrash}
	if b.bg == nil || b.bgServes != shaV2 {
		sc.Err = errNoBlueGreen
		return sc, nil
	}
	b.gantryUnderLoad(ctx, sc, b.bg, "bg-crash", b.deployArgs(b.bg, "blue-green", "crash", shaCrash))
	// The deploy must fail, at the start step, saying so.
	if sc.Gantry == nil {
		return sc, nil
	}
	for _, p := range sc.Phases {
		if p.Name == "start" && strings.Contains(p.Err, "failed to start") {
			sc.Detected, sc.DetectMsg = p.End, p.Err
		}
	}
	switch {
	case sc.Gantry.Err == nil:
		sc.Err = errors.Join(sc.Err, errors.New("gantry reported success deploying a release that exits on start"))
	case sc.Detected.IsZero():
		sc.Err = errors.Join(sc.Err, fmt.Errorf("the deploy failed, but not at the start step with \"failed to start\": %s", firstLine(sc.Gantry.Err.Error())))
	}
	return sc, nil
}

func (b *bench) rolling(ctx context.Context) (*scenario, error) {
	sc := &scenario{Kind: kindRolling, Name: "gantry rolling, 2 replicas", OldSHA: shaV1, NewSHA: shaV2}
	t, err := b.newEdgeTarget(ctx, "roll", "    deploy:\n      replicas: 2\n")
	if err != nil {
		return nil, err
	}
	if _, err := b.gantryStep(ctx, "roll-v1", b.deployArgs(t, "rolling", "v1", shaV1)...); err != nil {
		sc.Err = fmt.Errorf("first deploy (v1): %w", err)
		return sc, nil
	}
	b.gantryUnderLoad(ctx, sc, t, "roll-v2", b.deployArgs(t, "rolling", "v2", shaV2))
	return sc, nil
}

// gantryUnderLoad runs one gantry deploy under load and reads its timeline
// from the deploy history gantry keeps in the project directory.
func (b *bench) gantryUnderLoad(ctx context.Context, sc *scenario, t *edgeTarget, step string, args []string) {
	err := waitServes(ctx, t.url, sc.OldSHA, 30*time.Second)
	if err != nil {
		sc.Err = err
		return
	}
	b.underLoad(ctx, sc, t.project, t.url, func(ctx context.Context) error {
		sc.Gantry = b.runGantry(ctx, step, args...)
		sc.DeployStart, sc.DeployEnd = sc.Gantry.Start, sc.Gantry.End
		sc.Outcome = sc.Gantry.Outputs["result"]
		return sc.Gantry.Err
	})
	if sc.Edge, err = b.edgeLog(ctx, t.project, sc.LoadStart); err != nil {
		logf("%s: edge log unavailable: %v", sc.Name, err)
	}
	e, err := lastHistory(filepath.Join(t.dir, "host", ".gantry", "history.jsonl"))
	if err != nil {
		sc.Err = errors.Join(sc.Err, err)
		return
	}
	for _, p := range e.Phases {
		sc.Phases = append(sc.Phases, phase{Name: p.Name, Start: p.Started, End: p.Started.Add(p.Duration), Err: p.Error})
		if p.Name == "verify-public" && p.Error == "" {
			sc.Verified = p.Started.Add(p.Duration)
		}
	}
}

func (b *bench) baseline(ctx context.Context) (*scenario, error) {
	sc := &scenario{Kind: kindBaseline, Name: "docker compose up -d --force-recreate + curl", OldSHA: shaV1, NewSHA: shaV2, Script: baselineScript}
	project := b.project(ctx, "base")
	dir := filepath.Join(b.tmp, "base")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	compose, script := filepath.Join(dir, "compose.yml"), filepath.Join(dir, "deploy.sh")
	if err := os.WriteFile(compose, []byte(baselineCompose), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(script, []byte(baselineScript), 0o755); err != nil {
		return nil, err
	}
	port, err := demo.FreePort()
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	env := func(release, sha string) []string {
		return []string{"PROJECT=" + project, "COMPOSE_FILE=" + compose, "APP_IMAGE=" + b.images[release],
			"PORT=" + strconv.Itoa(port), "URL=" + url, "SHA=" + sha}
	}
	if _, err := b.exec(ctx, env("v1", shaV1), "docker", "compose", "--project-name", project, "--file", compose, "up", "-d", "web"); err != nil {
		sc.Err = fmt.Errorf("first deploy (v1): %w", err)
		return sc, nil
	}
	if err := waitServes(ctx, url, shaV1, 30*time.Second); err != nil {
		sc.Err = err
		return sc, nil
	}
	b.underLoad(ctx, sc, project, url, func(ctx context.Context) error {
		sc.DeployStart = time.Now()
		out, err := b.exec(ctx, env("v2", shaV2), b.bin["sh"], script)
		sc.DeployEnd = time.Now()
		sc.ScriptOut = out
		var marks []phase
		sc2 := bufio.NewScanner(strings.NewReader(out))
		for sc2.Scan() {
			f := strings.Fields(sc2.Text())
			if len(f) != 2 {
				continue
			}
			secs, perr := strconv.ParseFloat(f[1], 64)
			if perr != nil {
				continue
			}
			at := time.Unix(0, int64(secs*1e9))
			if len(marks) > 0 {
				marks[len(marks)-1].End = at
			}
			marks = append(marks, phase{Name: f[0], Start: at})
			if f[0] == "verified" {
				sc.Verified = at
			}
		}
		if len(marks) > 0 {
			marks = marks[:len(marks)-1] // "verified" is an instant
		}
		for i := range marks {
			marks[i].Name = map[string]string{"pull": "compose pull", "up": "compose up -d --force-recreate", "wait": "sleep/curl until /health has the new commit"}[marks[i].Name]
		}
		sc.Phases = marks
		return err
	})
	return sc, nil
}

// underLoad starts the load on url, waits the lead time, runs deploy, and
// waits for the load to end; project's container events are recorded.
func (b *bench) underLoad(ctx context.Context, sc *scenario, project, url string, deploy func(context.Context) error) {
	logf("%s: load %d req/s for %s on %s; deploy after %s", sc.Name, b.c.Rate, b.c.Window, url, b.c.Lead)
	ev, err := b.watchEvents(ctx, project)
	if err != nil {
		sc.Err = err
		return
	}
	l, err := b.startLoad(ctx, sc.Kind, url)
	if err != nil {
		ev.Stop()
		sc.Err = err
		return
	}
	sc.LoadStart = l.Started
	select {
	case <-ctx.Done():
	case <-time.After(b.c.Lead):
	}
	var derr error
	if ctx.Err() == nil {
		derr = deploy(ctx)
		logf("%s: deploy took %.1fs (%v)", sc.Name, sc.DeployEnd.Sub(sc.DeployStart).Seconds(), errOrOK(derr))
	}
	res, lerr := l.Wait()
	sc.Events = ev.Stop()
	sc.Load = res
	if sc.Kind != kindCrash {
		sc.Err = errors.Join(derr, lerr)
	} else {
		sc.Err = lerr
	}
	if res != nil {
		logf("%s: %d requests, %d failed", sc.Name, len(res.Requests), countFailed(res.Requests))
	}
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

// startTimes times bare container starts of v2: `docker compose up -d` of
// a fresh container (network already there, image present) until its first
// 200 on /health with the v2 commit, polled every 10 ms through the
// published port.
type startTimes struct {
	Up, Health []time.Duration // compose up returned; first good /health
}

func (b *bench) containerStarts(ctx context.Context) (*startTimes, error) {
	project := b.project(ctx, "start")
	dir := filepath.Join(b.tmp, "start")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	compose := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(compose, []byte(baselineCompose), 0o644); err != nil {
		return nil, err
	}
	port, err := demo.FreePort()
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	env := []string{"APP_IMAGE=" + b.images["v2"], "PORT=" + strconv.Itoa(port)}
	compose2 := func(args ...string) error {
		_, err := b.exec(ctx, env, append([]string{"docker", "compose", "--project-name", project, "--file", compose}, args...)...)
		return err
	}
	// Untimed: create the network once, as deploys find it there.
	if err := compose2("up", "-d", "web"); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	st := &startTimes{}
	for i := range b.c.StartRuns {
		if err := compose2("rm", "--stop", "--force", "web"); err != nil {
			return nil, err
		}
		upDone := make(chan error, 1)
		start := time.Now()
		var upTook time.Duration
		go func() {
			err := compose2("up", "-d", "web")
			upTook = time.Since(start)
			upDone <- err
		}()
		var healthy time.Duration
		for healthy == 0 {
			if sha, err := healthSHA(ctx, client, url); err == nil && sha == shaV2 {
				healthy = time.Since(start)
				break
			}
			if time.Since(start) > time.Minute {
				return nil, fmt.Errorf("container of %s did not answer on %s within a minute", b.images["v2"], url)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := <-upDone; err != nil {
			return nil, err
		}
		st.Up, st.Health = append(st.Up, upTook), append(st.Health, healthy)
		logf("container start %d/%d: compose up returned after %.2fs, first good /health after %.2fs", i+1, b.c.StartRuns, upTook.Seconds(), healthy.Seconds())
	}
	demo.Down(ctx, project)
	return st, nil
}
