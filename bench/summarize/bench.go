//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
	"github.com/gantry-dev/gantry/internal/loadtest"
)

// dashboardModule is the xk6-dashboard version k6 v1.8.1 embeds; its
// standalone command aggregates a JSON output into dashboard events.
const dashboardModule = "github.com/grafana/xk6-dashboard/cmd/k6-web-dashboard@v0.8.1"

// jqMean is the jq program that computes what the comparison needs from a
// k6 JSON output in one streaming pass.
const jqMean = `reduce (inputs | select(.type == "Point" and .metric == "http_req_duration") | .data.value) as $v ({count: 0, sum: 0}; .count += 1 | .sum += $v) | {count, mean: (.sum / .count)}`

type bench struct {
	c      config
	root   string
	tmp    string
	env    []string
	bin    map[string]string
	shop   *shop
	script string
}

func newBench(ctx context.Context, c config, root, tmp string) (*bench, error) {
	b := &bench{c: c, root: root, tmp: tmp, bin: map[string]string{}}
	// k6 1.x: the comparison (and its text) is with k6 v1.8.1 and the
	// xk6-dashboard release that embeds it.
	b.bin["k6"] = filepath.Join(root, ".bin", "k6-v1")
	if _, err := os.Stat(b.bin["k6"]); err != nil {
		return nil, fmt.Errorf("%s not found; run ./scripts/tools.sh bench", b.bin["k6"])
	}
	for _, name := range []string{"jq", "wc"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s not found on PATH; run ./scripts/tools.sh bench as root (it installs jq)", name)
		}
		b.bin[name] = p
	}
	// GNU time, not the shell keyword: it reports a command's own peak RSS.
	b.bin["time"] = "/usr/bin/time"
	if _, err := os.Stat(b.bin["time"]); err != nil {
		return nil, fmt.Errorf("/usr/bin/time not found; install Debian's time package")
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "K6_") && !strings.HasPrefix(k, "GITHUB_") {
			b.env = append(b.env, kv)
		}
	}
	b.env = append(b.env, "K6_NO_USAGE_REPORT=true")

	b.bin["gantry"] = filepath.Join(tmp, "gantry")
	logf("building gantry (CGO_ENABLED=0 -trimpath -ldflags '-s -w')")
	if err := goBuild(ctx, root, b.bin["gantry"], "./cmd/gantry"); err != nil {
		return nil, err
	}
	if c.Dashboard {
		p := filepath.Join(root, ".bin", "k6-web-dashboard")
		if _, err := os.Stat(p); err != nil {
			logf("go install %s into .bin", dashboardModule)
			cmd := exec.CommandContext(ctx, "go", "install", dashboardModule)
			cmd.Env = append(os.Environ(), "GOBIN="+filepath.Join(root, ".bin"), "GOFLAGS=-buildvcs=false")
			if out, err := cmd.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("go install %s: %v\n%s; or run with -dashboard=false", dashboardModule, err, out)
			}
		}
		b.bin["k6-web-dashboard"] = p
	}
	return b, nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if log, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, log)
	}
	return nil
}

// input is one synthesized k6 output and what is known about it.
type input struct {
	Name     string // "small", "large", "long"
	Stretch  int
	Path     string
	Bytes    int64
	Lines    int64
	Requests int
	Exact    exact
	Gen      time.Duration
}

// measured is one process run: wall time, CPU time, peak memory.
type measured struct {
	Wall, CPU time.Duration
	MaxRSS    int64 // bytes
	Stdout    string
	Err       error
}

// measure runs argv under GNU time, which reports the CPU time and peak RSS
// of the command alone: Go's own rusage of a child counts at least this
// process's RSS, which the child shares until its exec (vfork).
func (b *bench) measure(ctx context.Context, argv ...string) measured {
	report := filepath.Join(b.tmp, "time.out")
	_ = os.Remove(report)
	cmd := exec.CommandContext(ctx, b.bin["time"], append([]string{"-f", "%e %U %S %M", "-o", report}, argv...)...)
	cmd.Dir, cmd.Env = b.tmp, b.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := measured{Wall: time.Since(start), Stdout: stdout.String()}
	if err != nil {
		r.Err = fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, benchenv.Tail(stderr.String()+stdout.String(), 2000))
	}
	data, rerr := os.ReadFile(report)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var wallS, userS, sysS float64
	var rssKB int64
	if n, _ := fmt.Sscanf(lines[len(lines)-1], "%g %g %g %d", &wallS, &userS, &sysS, &rssKB); rerr != nil || n != 4 {
		if r.Err == nil {
			r.Err = fmt.Errorf("GNU time wrote %q to %s (%v)", data, report, rerr)
		}
		return r
	}
	r.CPU = time.Duration((userS + sysS) * float64(time.Second))
	r.MaxRSS = rssKB * 1024
	return r
}

// tool is one way of summarizing an input.
type tool struct {
	Key, Name string
	NoInput   bool // the command does not read the input
	// argv is the command for in (its outputs under dir).
	argv func(in *input, dir string) []string
	// check reads what the run computed: count, mean and percentiles of
	// http_req_duration (NaN when it does not compute them).
	check func(r measured, dir string) (result, error)
}

// result is what a tool computed for http_req_duration.
type result struct {
	Count         int64
	Mean          float64
	P50, P95, P99 float64
	HasP          bool
}

func (b *bench) tools() []tool {
	ts := []tool{
		{Key: "gantry", Name: "`gantry loadtest summarize`",
			argv: func(in *input, dir string) []string {
				return []string{b.bin["gantry"], "loadtest", "summarize", in.Path, "--out", filepath.Join(dir, "summary.json")}
			},
			check: func(_ measured, dir string) (result, error) {
				data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
				if err != nil {
					return result{}, err
				}
				var s loadtest.Summary
				if err := json.Unmarshal(data, &s); err != nil {
					return result{}, err
				}
				d := s.Metrics["http_req_duration"]
				if d == nil {
					return result{}, fmt.Errorf("summary.json has no http_req_duration")
				}
				return result{Count: d.Count, Mean: d.Mean, P50: d.P50, P95: d.P95, P99: d.P99, HasP: true}, nil
			}},
		{Key: "jq", Name: "`jq -n` streaming count and mean",
			argv: func(in *input, _ string) []string { return []string{b.bin["jq"], "-n", "-c", jqMean, in.Path} },
			check: func(r measured, _ string) (result, error) {
				var out struct {
					Count int64   `json:"count"`
					Mean  float64 `json:"mean"`
				}
				if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
					return result{}, fmt.Errorf("jq printed %q: %v", r.Stdout, err)
				}
				return result{Count: out.Count, Mean: out.Mean}, nil
			}},
	}
	if b.bin["k6-web-dashboard"] != "" {
		ts = append(ts, tool{Key: "dashboard", Name: "`k6-web-dashboard aggregate` (xk6-dashboard v0.8.1)",
			argv: func(in *input, dir string) []string {
				return []string{b.bin["k6-web-dashboard"], "aggregate", in.Path, filepath.Join(dir, "events.ndjson")}
			},
			check: func(_ measured, dir string) (result, error) {
				_, err := os.Stat(filepath.Join(dir, "events.ndjson"))
				return result{Count: -1}, err
			}})
	}
	ts = append(ts, tool{Key: "gantry-version", Name: "reference: `gantry version` (the same binary starting, no input)", NoInput: true,
		argv:  func(*input, string) []string { return []string{b.bin["gantry"], "version"} },
		check: func(measured, string) (result, error) { return result{Count: -1}, nil },
	}, tool{Key: "wc", Name: "reference: `wc -l` (reading the file, no parsing)",
		argv: func(in *input, _ string) []string { return []string{b.bin["wc"], "-l", in.Path} },
		check: func(r measured, _ string) (result, error) {
			_, err := strconv.ParseInt(strings.Fields(r.Stdout + " x")[0], 10, 64)
			return result{Count: -1}, err
		}})
	return ts
}

// measurement is every round of one tool on one input.
type measurement struct {
	Tool   tool
	Input  *input
	Runs   []measured
	Result result
	Err    error
}

func (m *measurement) median(f func(measured) float64) float64 {
	var vs []float64
	for _, r := range m.Runs {
		vs = append(vs, f(r))
	}
	slices.Sort(vs)
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)/2]
}

func (m *measurement) maxRSS() int64 {
	var top int64
	for _, r := range m.Runs {
		top = max(top, r.MaxRSS)
	}
	return top
}

// measureAll records k6, synthesizes the inputs and measures every tool on
// them, rounds interleaved.
func (b *bench) measureAll(ctx context.Context, res *results) error {
	var err error
	if b.script, err = writeScript(b.tmp); err != nil {
		return err
	}
	if b.shop, err = startShop(); err != nil {
		return err
	}
	defer b.shop.Close()
	logf("recording k6 at %d requests/s for %s against %s", b.c.RecordRate, b.c.RecordFor, b.shop.URL)
	recPath, err := b.record(ctx, b.c.RecordRate, b.c.RecordFor)
	if err != nil {
		return err
	}
	rec, err := readRecording(recPath)
	if err != nil {
		return err
	}
	res.Recording = rec
	logf("recording: %d requests, %s, %d lines, span %s", rec.requests, mb(rec.bytes), len(rec.lines), rec.span)

	type inputSpec struct {
		name    string
		size    int64
		stretch int
	}
	specs := []inputSpec{{"small", b.c.Small, 1}, {"large", b.c.Size, 1}}
	if b.c.Stretch > 0 {
		specs = append(specs, inputSpec{"long", b.c.Size, b.c.Stretch})
	}
	for _, spec := range specs {
		in := &input{Name: spec.name, Stretch: spec.stretch, Path: filepath.Join(b.tmp, "k6-"+spec.name+".json")}
		g := newSynth(rec, b.c.Seed)
		g.Stretch = spec.stretch
		start := time.Now()
		if in.Bytes, err = g.WriteFile(in.Path, spec.size); err != nil {
			return fmt.Errorf("write %s: %w", in.Path, err)
		}
		in.Gen = time.Since(start)
		in.Lines, in.Requests, in.Exact = g.Lines, g.Requests, exactStats(g.Durations)
		g.Durations = nil
		logf("%s input: %s, %d lines, %d requests, written in %s", spec.name, mb(in.Bytes), in.Lines, in.Requests, in.Gen.Round(time.Millisecond))
		// Every tool reads the file from the page cache.
		if err := readAll(in.Path); err != nil {
			return err
		}
		res.Inputs = append(res.Inputs, in)
	}

	tools := b.tools()
	for _, in := range res.Inputs {
		for _, t := range tools {
			// The long input only shows how gantry's memory grows with the run.
			if in.Stretch == 1 || t.Key == "gantry" {
				res.Measurements = append(res.Measurements, &measurement{Tool: t, Input: in})
			}
		}
	}
	for round := 1; round <= b.c.Rounds; round++ {
		for _, m := range res.Measurements {
			if m.Err != nil || ctx.Err() != nil {
				continue
			}
			dir := filepath.Join(b.tmp, "out", m.Tool.Key+"-"+m.Input.Name)
			_ = os.RemoveAll(dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			r := b.measure(ctx, m.Tool.argv(m.Input, dir)...)
			if r.Err != nil {
				m.Err = r.Err
				logf("%s on %s: %v", m.Tool.Key, m.Input.Name, r.Err)
				continue
			}
			if m.Result, m.Err = m.Tool.check(r, dir); m.Err != nil {
				logf("%s on %s: %v", m.Tool.Key, m.Input.Name, m.Err)
				continue
			}
			m.Runs = append(m.Runs, r)
			logf("round %d: %-9s on %-5s %6.2fs wall, %6.2fs CPU, %s peak RSS", round, m.Tool.Key, m.Input.Name, r.Wall.Seconds(), r.CPU.Seconds(), mb(r.MaxRSS))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	if b.c.K6Run {
		for _, in := range res.Inputs[:2] {
			logf("k6 run: %d iterations, end-of-test summary only", in.Requests)
			cmd := b.k6(ctx, "ITERATIONS="+strconv.Itoa(in.Requests))
			r := b.measure(ctx, cmd.Args...)
			if r.Err != nil && !strings.Contains(r.Err.Error(), "exit status 99") {
				res.K6Runs = append(res.K6Runs, k6Run{Input: in, Err: r.Err})
				continue
			}
			res.K6Runs = append(res.K6Runs, k6Run{Input: in, Run: r, Summary: r.Stdout})
			logf("k6 run: %.1fs wall, %.1fs CPU, %s peak RSS", r.Wall.Seconds(), r.CPU.Seconds(), mb(r.MaxRSS))
		}
	}
	if b.c.Profile {
		logf("profiling loadtest.Summarize on the small input")
		res.Profile, res.ProfileErr = profileSummarize(ctx, b.tmp, res.Inputs[0].Path)
	}
	return ctx.Err()
}

// k6Run is k6 running as many requests as an input holds.
type k6Run struct {
	Input   *input
	Run     measured
	Summary string
	Err     error
}

// runLength is how long the run an input records lasted.
func (in *input) runLength(rec *recording) time.Duration {
	return time.Duration(in.Requests/rec.requests*in.Stretch) * rec.span
}

func readAll(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

// versions names every tool compared.
func (b *bench) versions(ctx context.Context) map[string]string {
	v := map[string]string{}
	out := func(argv ...string) string {
		o, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return "unknown"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(o)), "\n")
		return line
	}
	v["k6"] = out(b.bin["k6"], "version")
	v["jq"] = out(b.bin["jq"], "--version")
	v["wc"] = out(b.bin["wc"], "--version")
	v["time"] = "GNU time " + out("dpkg-query", "-W", "-f", "${Version}", "time")
	if p := b.bin["k6-web-dashboard"]; p != "" {
		// It calls itself "version dev"; go version -m knows its module.
		v["k6-web-dashboard"] = "unknown"
		k6 := ""
		if o, err := exec.CommandContext(ctx, "go", "version", "-m", p).Output(); err == nil {
			for _, line := range strings.Split(string(o), "\n") {
				if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
					v["k6-web-dashboard"] = f[1] + " " + f[2]
				} else if len(f) >= 3 && f[0] == "dep" && f[1] == "go.k6.io/k6" {
					k6 = " (its go.mod links " + f[1] + " " + f[2] + ")"
				}
			}
			v["k6-web-dashboard"] += k6
		}
	}
	return v
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
