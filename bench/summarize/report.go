//go:build linux

package main

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// Targets of issue 7 for gantry loadtest summarize.
const (
	targetMBps       = 150.0 // MB/s on this 2-core machine
	targetRSS        = 64e6  // bytes of peak memory, whatever the input size
	targetPercentErr = 1.0   // % from the exact percentile
)

// results is everything the report is made of.
type results struct {
	Config       config
	Started      time.Time
	Date         time.Time
	Machine      string
	Build        string
	Versions     map[string]string
	Recording    *recording
	Inputs       []*input
	Measurements []*measurement
	K6Runs       []k6Run
	Profile      *profile
	ProfileErr   error
}

func (res *results) find(toolKey, inputName string) *measurement {
	for _, m := range res.Measurements {
		if m.Tool.Key == toolKey && m.Input.Name == inputName {
			return m
		}
	}
	return nil
}

func wall(r measured) float64 { return r.Wall.Seconds() }
func cpu(r measured) float64  { return r.CPU.Seconds() }

// relErr is |got - want| / want in %.
func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got) * 100
	}
	return math.Abs(got-want) / math.Abs(want) * 100
}

// worstPercentileErr is the largest error of p50, p95 and p99 in %.
func worstPercentileErr(r result, e exact) float64 {
	return max(relErr(r.P50, e.P50), relErr(r.P95, e.P95), relErr(r.P99, e.P99))
}

func ms(v float64) string { return fmt.Sprintf("%.3f", v) }

func mbps(bytes int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / secs
}

func (res *results) markdown() string {
	var w strings.Builder
	c := res.Config
	v := res.Versions
	large := res.Inputs[1]
	rec := res.Recording
	fmt.Fprintf(&w, "\n## summarize: %s of k6 JSON output, gantry loadtest summarize vs jq vs k6's own tools (%s)\n\n", mb(large.Bytes), res.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "Reproduce: `%s` (from the repository root; about %s).\n\n", c.Command, res.Date.Sub(res.Started).Round(time.Minute))
	fmt.Fprintf(&w, "- Machine: %s. Shared and noisy (other test suites ran at the same time): compare within this section, and read the CPU-time columns, which the other load disturbs less than wall time.\n", res.Machine)
	fmt.Fprintf(&w, "- Versions: gantry %s (`gantry loadtest summarize`, built `CGO_ENABLED=0 -trimpath -ldflags \"-s -w\"`); %s; %s; %s; k6-web-dashboard from %s.\n",
		res.Build, v["k6"], v["jq"], v["wc"], orNone(v["k6-web-dashboard"]))
	fmt.Fprintf(&w, "- Recording: a real k6 run (`constant-arrival-rate` %d requests/s for %s, 20–200 VUs, `discardResponseBodies`) against a loopback Go server: a small shop API with `GET /api/items` (group `browse`), `GET /`, `POST /api/orders` (group `checkout`, every 25th a 500) and `GET /api/items/{id}` (named `…/api/items/:id`, ids ≥ 900 a 404), a check on each, thresholds on `http_req_duration` and `http_req_failed`. It wrote %d requests in %s (%d lines, %.0f bytes per request).\n",
		c.RecordRate, c.RecordFor, rec.requests, mb(rec.bytes), len(rec.lines), float64(rec.bytes)/float64(rec.requests))
	fmt.Fprintf(&w, "- Inputs: the recording written again and again, each repetition %s later, byte for byte in k6's format (same lines, tags and field order; the metric declarations once, where k6 wrote them), with fresh values: `http_req_duration` drawn per request from a log-normal body (median %.0f ms, σ %.2f) with a %.0f %% slow tail (median %.0f ms, σ %.2f), scaled per endpoint and status (×0.4–2.4) and by a %.0f %% wave of load over %s, at k6's nanosecond resolution; `http_req_sending`/`waiting`/`receiving` keep their share of it; `group_duration` and `iteration_duration` grow with it; the rest as recorded. Seed %d. *Exact* is computed from every value the generator wrote, percentiles as k6's end-of-test summary computes them (linear interpolation between the two nearest ranks).\n",
		rec.span, bodyMedian, bodySigma, tailShare*100, tailMedian, tailSigma, waveDepth*100, wavePeriod, c.Seed)
	for _, in := range res.Inputs {
		what := ""
		if in.Stretch > 1 {
			size := "to the same size"
			switch d := res.Inputs[1].Requests/rec.requests - in.Requests/rec.requests; {
			case d == 1:
				size += ", which takes one repetition less: the times are longer"
			case d > 1:
				size += fmt.Sprintf(", which takes %d repetitions less: the times are longer", d)
			}
			what = fmt.Sprintf(" The recording, values and seed of the large input, %d× further apart in time (%s): a long run at a low rate, measured with gantry only (its per-second series is what a longer run changes).", in.Stretch, size)
		}
		fmt.Fprintf(&w, "  - %s: %s (%d bytes), %d lines, %d requests over %s of run, %.0f requests/s (written in %.1f s).%s\n",
			in.Name, mb(in.Bytes), in.Bytes, in.Lines, in.Requests, in.runLength(rec), float64(in.Requests)/in.runLength(rec).Seconds(), in.Gen.Seconds(), what)
	}
	fmt.Fprintf(&w, "- Each round runs every tool on every input (on the long one gantry only), one after another (%d rounds, tools interleaved); times are medians. Every input was read once before the rounds, so all tools read it from the page cache. Wall time from start to exit; CPU time (user + system) and peak RSS as %s reports them for the command alone (`-f %%U %%S %%M`). MB = 10⁶ bytes.\n", c.Rounds, v["time"])
	fmt.Fprintf(&w, "- jq runs `jq -n -c '%s' FILE`: the count and mean only (percentiles would need every value in memory and a sort).\n", jqMean)
	w.WriteString("- k6's own tools: **k6 v1.8.1 cannot replay a JSON output.** It embeds the web dashboard as an output (`--out web-dashboard`, `K6_WEB_DASHBOARD=true`) during a run, but not the dashboard's `replay`/`aggregate` commands: `k6 dashboard` makes k6 ask its build service (ingest.k6.io) for a custom binary with that extension, which fails offline. The same commands ship in xk6-dashboard's standalone `k6-web-dashboard`, at v0.8.1 the dashboard module k6 v1.8.1 embeds, so the bench runs `k6-web-dashboard aggregate FILE events.ndjson` (JSON output → the dashboard's 10 s aggregated events, from which `k6-web-dashboard report` draws the HTML report). It prints no count or mean to compare. And, for memory, k6 itself running as many requests as each input holds (`shared-iterations`, 20 VUs, no output, the default end-of-test summary), which aggregates in-run.\n\n")

	w.WriteString("| Tool | Input | Wall (s) | MB/s (wall) | CPU (s) | MB/s (CPU) | Peak RSS | http_req_duration count | mean (ms) | p50 / p95 / p99 (ms) | worst percentile error |\n")
	w.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
	for _, in := range res.Inputs {
		e := in.Exact
		fmt.Fprintf(&w, "| exact (from the generator) | %s | | | | | | %d | %s | %s / %s / %s | |\n", in.Name, e.Count, ms(e.Mean), ms(e.P50), ms(e.P95), ms(e.P99))
		for _, m := range res.Measurements {
			if m.Input != in {
				continue
			}
			if m.Err != nil && len(m.Runs) == 0 {
				fmt.Fprintf(&w, "| %s | %s | failed: %s | | | | | | | | |\n", m.Tool.Name, in.Name, oneLine(m.Err.Error(), 200))
				continue
			}
			wt, ct := m.median(wall), m.median(cpu)
			r := m.Result
			count, mean, ps, perr := "–", "–", "–", "–"
			if r.Count >= 0 {
				count = fmt.Sprintf("%d", r.Count)
				if r.Count != int64(e.Count) {
					count += " ❌"
				}
				mean = ms(r.Mean) + " (exact)"
				if r.Mean != e.Mean {
					mean = fmt.Sprintf("%s (%+.1e %%)", ms(r.Mean), (r.Mean-e.Mean)/e.Mean*100)
				}
			}
			if r.HasP {
				ps = fmt.Sprintf("%s / %s / %s", ms(r.P50), ms(r.P95), ms(r.P99))
				perr = fmt.Sprintf("%.3f %%", worstPercentileErr(r, e))
			}
			name := m.Tool.Name
			if m.Tool.Key == "gantry" {
				name = "**" + name + "**"
			}
			speed, cpuSpeed := fmt.Sprintf("%.0f", mbps(in.Bytes, wt)), fmt.Sprintf("%.0f", mbps(in.Bytes, ct))
			if m.Tool.NoInput || ct == 0 {
				speed, cpuSpeed = "–", "–"
			}
			fmt.Fprintf(&w, "| %s | %s | %.2f | %s | %.2f | %s | %s | %s | %s | %s | %s |\n",
				name, in.Name, wt, speed, ct, cpuSpeed, mb(m.maxRSS()), count, mean, ps, perr)
		}
	}
	for _, k := range res.K6Runs {
		if k.Err != nil {
			fmt.Fprintf(&w, "| k6 v1.8.1 running the %s input's %d requests, in-run summary | %s | failed: %s | | | | | | | | |\n", k.Input.Name, k.Input.Requests, k.Input.Name, oneLine(k.Err.Error(), 200))
			continue
		}
		fmt.Fprintf(&w, "| k6 v1.8.1 running the %s input's %d requests (%.0f/s), in-run summary | %s | %.2f | | %.2f | | %s | | | | |\n",
			k.Input.Name, k.Input.Requests, float64(k.Input.Requests)/k.Run.Wall.Seconds(), k.Input.Name, k.Run.Wall.Seconds(), k.Run.CPU.Seconds(), mb(k.Run.MaxRSS))
	}
	w.WriteString("\n")
	w.WriteString(res.targets())
	w.WriteString(res.meaning())
	w.WriteString(res.details())
	return w.String()
}

func orNone(s string) string {
	if s == "" {
		return "not measured (-dashboard=false)"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func (res *results) targets() string {
	var w strings.Builder
	small, large := res.find("gantry", "small"), res.find("gantry", "large")
	if small == nil || large == nil || len(small.Runs) == 0 || len(large.Runs) == 0 {
		return "gantry did not complete; no targets to check.\n\n"
	}
	w.WriteString("| Target | Measured | Goal | Result |\n|---|--:|--:|---|\n")
	speed, cpuSpeed := mbps(large.Input.Bytes, large.median(wall)), mbps(large.Input.Bytes, large.median(cpu))
	result := verdict(speed >= targetMBps)
	if speed < targetMBps && cpuSpeed >= targetMBps {
		result = "**met in CPU time**; the wall time suffered from the other load"
	}
	fmt.Fprintf(&w, "| gantry throughput on the %s input: median wall time; median CPU time (what a core of its own would give, the summary being one goroutine) | %.0f MB/s; %.0f MB/s | ≥ %.0f MB/s | %s |\n",
		mb(large.Input.Bytes), speed, cpuSpeed, targetMBps, result)
	names, rss, top := []string{}, []string{}, int64(0)
	for _, in := range res.Inputs {
		if m := res.find("gantry", in.Name); m != nil && len(m.Runs) > 0 {
			names = append(names, in.Name)
			rss = append(rss, mb(m.maxRSS()))
			top = max(top, m.maxRSS())
		}
	}
	fmt.Fprintf(&w, "| gantry peak memory (RSS), %s input | %s | ≤ %s | %s |\n",
		strings.Join(names, " / "), strings.Join(rss, " / "), mb(targetRSS), verdict(top <= targetRSS))
	worst := 0.0
	for _, in := range res.Inputs {
		if m := res.find("gantry", in.Name); m != nil && len(m.Runs) > 0 {
			worst = max(worst, worstPercentileErr(m.Result, in.Exact))
		}
	}
	fmt.Fprintf(&w, "| gantry p50/p95/p99 of http_req_duration vs exact (worst of all inputs) | %.3f %% | ≤ %.0f %% | %s |\n\n",
		worst, targetPercentErr, verdict(worst <= targetPercentErr))
	fmt.Fprintf(&w, "Memory stays flat: %.1f× the input, %.2f× the peak RSS (%s → %s). Results count the worst round for memory and the median for time.",
		float64(large.Input.Bytes)/float64(small.Input.Bytes), float64(large.maxRSS())/float64(small.maxRSS()), mb(small.maxRSS()), mb(large.maxRSS()))
	if idle := res.find("gantry-version", "large"); idle != nil && len(idle.Runs) > 0 {
		fmt.Fprintf(&w, " Of gantry's peak, %s is the binary starting (`gantry version`: the runtime and the package initialisation of every SDK linked in); the summary adds %s.",
			mb(idle.maxRSS()), mb(large.maxRSS()-idle.maxRSS()))
	}
	if long := res.find("gantry", "long"); long != nil && len(long.Runs) > 0 {
		rec := res.Recording
		extra := long.Input.runLength(rec) - large.Input.runLength(rec)
		fmt.Fprintf(&w, " But it grows with the length of the run: the long input (the large one over %s instead of %s) takes %s, %+.1f MB, about %.0f bytes per second of run.",
			long.Input.runLength(rec), large.Input.runLength(rec), mb(long.maxRSS()), float64(long.maxRSS()-large.maxRSS())/1e6, float64(long.maxRSS()-large.maxRSS())/extra.Seconds())
	}
	w.WriteString("\n\n")
	return w.String()
}

// meaning says what the numbers mean, from the numbers.
func (res *results) meaning() string {
	var w strings.Builder
	w.WriteString("What it means:\n\n")
	g, jq, dash := res.find("gantry", "large"), res.find("jq", "large"), res.find("dashboard", "large")
	if g != nil && len(g.Runs) > 0 {
		gc := g.median(cpu)
		if jq != nil && len(jq.Runs) > 0 {
			fmt.Fprintf(&w, "- gantry needs %.2f× jq's CPU time and %.2f× its wall time for the %s input, and gives percentiles, groups, checks, errors and a per-second series where jq gives a count and a mean; jq stays flat in memory too (%s), as a streaming reduce does.\n",
				gc/jq.median(cpu), g.median(wall)/jq.median(wall), mb(g.Input.Bytes), mb(jq.maxRSS()))
		}
		if ds, dl := res.find("dashboard", "small"), dash; ds != nil && dl != nil && len(ds.Runs) > 0 && len(dl.Runs) > 0 {
			fmt.Fprintf(&w, "- k6's dashboard aggregator takes %.2f× gantry's CPU time; its memory goes from %s to %s between the two inputs (k6's trend sinks keep every sample for the cumulative percentiles), gantry's from %s to %s.\n",
				dl.median(cpu)/gc, mb(ds.maxRSS()), mb(dl.maxRSS()), mb(res.find("gantry", "small").maxRSS()), mb(g.maxRSS()))
		}
		if len(res.K6Runs) == 2 && res.K6Runs[0].Err == nil && res.K6Runs[1].Err == nil {
			a, b := res.K6Runs[0], res.K6Runs[1]
			fmt.Fprintf(&w, "- k6's in-run summary: %s for %d requests, %s for %d (its trend sinks hold every value of the run: %.0f bytes per request more); gantry summarizing the same run's output afterwards peaks at %s.\n",
				mb(a.Run.MaxRSS), a.Input.Requests, mb(b.Run.MaxRSS), b.Input.Requests, float64(b.Run.MaxRSS-a.Run.MaxRSS)/float64(b.Input.Requests-a.Input.Requests), mb(g.maxRSS()))
		}
	}
	large, long := res.find("gantry", "large"), res.find("gantry", "long")
	if large != nil && long != nil && len(large.Runs) > 0 && len(long.Runs) > 0 && long.maxRSS() > large.maxRSS()+2e6 {
		rec := res.Recording
		perSecond := float64(long.maxRSS()-large.maxRSS()) / (long.Input.runLength(rec) - large.Input.runLength(rec)).Seconds()
		fmt.Fprintf(&w, "- The long input peaks higher by about %.0f bytes per second of run (a 24-hour run: %s more). That is the output, not the accumulator: the summarizer keeps at most %d seconds of latency histograms open (a sample more than that late still counts in every whole-run figure and in its second's counts), each closed second is a %d-byte `SecondStats` (%s a day), and `summary.json` has one entry per second, encoded in memory.\n",
			perSecond, mb(int64(perSecond*86400)), 121, unsafe.Sizeof(loadtest.SecondStats{}), mb(int64(unsafe.Sizeof(loadtest.SecondStats{}))*86400))
	}
	if res.Profile != nil {
		res.writeProfileAdvice(&w)
	} else if res.ProfileErr != nil {
		fmt.Fprintf(&w, "- The profile failed: %s\n", oneLine(res.ProfileErr.Error(), 300))
	}
	w.WriteString("\n")
	return w.String()
}

func (res *results) writeProfileAdvice(w *strings.Builder) {
	p := res.Profile
	share := func(f string) float64 {
		for _, b := range p.Buckets {
			if b.Func == f {
				return b.Share
			}
		}
		return 0
	}
	fmt.Fprintf(w, "- Where gantry's time goes (`loadtest.SummarizeFile` on the small input under the CPU profiler, in-process: %.2f s, %.0f MB/s of wall time; shares of the CPU samples, cumulative):\n\n", p.Took.Seconds(), mbps(p.Bytes, p.Took.Seconds()))
	w.WriteString("  | Where | Share of CPU samples |\n  |---|--:|\n")
	for _, b := range p.Buckets {
		fmt.Fprintf(w, "  | %s (`%s`) | %.1f %% |\n", b.What, b.Func, b.Share)
	}
	w.WriteString("\n")
	dec := share("encoding/json.Unmarshal")
	if dec > 50 {
		fmt.Fprintf(w, "  Decoding is the cost: %.0f %% of the CPU time is `json.Unmarshal` of each line into `line` through reflection (%.0f %% of all of it the validity pre-scan `json.Unmarshal` makes before decoding, %.0f %% parsing `data.time` into a `time.Time`); the summarizing proper costs little (the accumulator %.1f %%, of which the histograms %.1f %%).\n",
			dec, share("encoding/json.checkValid"), share("time.(*Time).UnmarshalJSON"),
			share("github.com/gantry-dev/gantry/internal/loadtest.(*accumulator).addPoint"), share("github.com/gantry-dev/gantry/internal/loadtest.record"))
	}
	if g := res.find("gantry", "large"); g != nil && len(g.Runs) > 0 && mbps(g.Input.Bytes, g.median(cpu)) < targetMBps && dec > 50 {
		w.WriteString(`
  What to change in ` + "`internal/loadtest/summarize.go`" + ` to reach the throughput target (the reader, the histograms and the summary can stay as they are):

  1. In ` + "`accumulator.add`" + `, decode Point lines (all but a few dozen lines of a k6 output) with a hand-written scanner over the bytes the Scanner hands out: ` + "`metric`" + `, ` + "`data.time`" + `, ` + "`data.value`" + ` (` + "`strconv.ParseFloat`" + `) and the seven tags the summary groups by, skipping the other tags; fall back to ` + "`json.Unmarshal`" + ` as today for Metric lines, unknown types, and any line with a backslash escape or a shape the scanner does not expect, so odd input behaves exactly as now.
  2. Parse the time with a fixed-layout RFC 3339 parser to Unix nanoseconds (k6 always writes ` + "`2006-01-02T15:04:05.999999999Z07:00`" + `), key ` + "`seconds`" + ` by t / 1e9 and keep a pointer to the last second used, as samples arrive in time order.
  3. Keep tag values as byte slices until a map needs them: look up with ` + "`m[string(b)]`" + ` (Go does not allocate for that) and intern a string only when a key is new, so no string is allocated per line (today each line allocates its metric name and tags).
  4. If that is not enough on 2 cores: split lines and scan them on a second goroutine in batches of about a thousand, the accumulator staying on one goroutine and in order.
`)
	}
}

// details holds every round and the profile's top functions.
func (res *results) details() string {
	var w strings.Builder
	w.WriteString("<details><summary>Every round (wall s / CPU s / peak RSS MB)</summary>\n\n| Tool | Input | Rounds |\n|---|---|---|\n")
	for _, m := range res.Measurements {
		var rounds []string
		for _, r := range m.Runs {
			rounds = append(rounds, fmt.Sprintf("%.2f / %.2f / %.1f", r.Wall.Seconds(), r.CPU.Seconds(), float64(r.MaxRSS)/1e6))
		}
		fmt.Fprintf(&w, "| %s | %s | %s |\n", m.Tool.Name, m.Input.Name, strings.Join(rounds, "<br>"))
	}
	w.WriteString("\n</details>\n\n")
	if p := res.Profile; p != nil {
		fmt.Fprintf(&w, "<details><summary>The profile's top functions (go tool pprof -top)</summary>\n\n```\n%s```\n\n</details>\n\n", p.Top)
	}
	if len(res.K6Runs) > 0 && res.K6Runs[len(res.K6Runs)-1].Err == nil {
		fmt.Fprintf(&w, "<details><summary>k6's end-of-test summary of the %s run</summary>\n\n```\n%s\n```\n\n</details>\n\n", res.K6Runs[len(res.K6Runs)-1].Input.Name, strings.TrimSpace(res.K6Runs[len(res.K6Runs)-1].Summary))
	}
	return w.String()
}
