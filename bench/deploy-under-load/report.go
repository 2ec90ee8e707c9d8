package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// Targets from the issue.
const (
	minRequests        = 10_000          // per scenario
	targetVerifiedOver = 2 * time.Second // blue-green deploy start → verified, beyond a bare container start
	targetCrashOver    = 5 * time.Second // crash detection, beyond a bare container start
)

// results is everything the report is made of.
type results struct {
	Config    config
	RunID     string
	Start     *startTimes
	Scenarios []*scenario
	Machine   string
	Versions  map[string]string
	Date      time.Time
}

func (r *results) scenario(kind string) *scenario {
	for _, s := range r.Scenarios {
		if s.Kind == kind {
			return s
		}
	}
	return nil
}

func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// containerStart is the median bare container start: compose up to the
// first good /health.
func (r *results) containerStart() time.Duration { return medianDur(r.Start.Health) }

// loadStats summarises one load.
type loadStats struct {
	N, Failed, Dropped int
	P99, Max           time.Duration
	// Lead and Tail are how long the load ran before the deploy started
	// and after it ended.
	Lead, Tail time.Duration
	// FailedOutside counts failures outside the deploy window.
	FailedOutside int
	// OldServed and NewServed count 200 answers of each version.
	OldServed, NewServed int
	// FirstNew and LastOld are the start of the first request the new
	// version answered and of the last the old one answered.
	FirstNew, LastOld time.Time
}

func (s *scenario) stats() loadStats {
	var st loadStats
	if s.Load == nil || len(s.Load.Requests) == 0 {
		return st
	}
	rs := s.Load.Requests
	st.N, st.Dropped = len(rs), s.Load.Dropped
	lat := make([]time.Duration, len(rs))
	for i, r := range rs {
		lat[i] = r.Latency()
		if r.Failed() {
			st.Failed++
			if r.End.Before(s.DeployStart) || r.Start.After(s.DeployEnd) {
				st.FailedOutside++
			}
			continue
		}
		switch r.SHA {
		case s.OldSHA[:7]:
			st.OldServed++
			st.LastOld = r.Start
		case s.NewSHA[:7]:
			st.NewServed++
			if st.FirstNew.IsZero() {
				st.FirstNew = r.Start
			}
		}
	}
	slices.Sort(lat)
	st.P99 = lat[min(len(lat)-1, (len(lat)*99+99)/100-1)]
	st.Max = lat[len(lat)-1]
	st.Lead = s.DeployStart.Sub(rs[0].Start)
	st.Tail = rs[len(rs)-1].Start.Sub(s.DeployEnd)
	return st
}

// spans reports whether the load covered the deploy as the run requires.
func (r *results) spans(st loadStats) bool {
	return st.N >= minRequests && st.Lead >= time.Second && st.Tail >= r.Config.MinTail
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)) }

func (r *results) markdown() string {
	var w strings.Builder
	c := r.Config
	cs := r.containerStart()
	conn := "a new TCP connection per request (k6 `noConnectionReuse`), as requests from many users arrive"
	if c.ReuseConnections {
		conn = "keep-alive connections, one per k6 VU"
	}
	fmt.Fprintf(&w, "\n## deploy-under-load: failed requests while deploying, %d req/s (%s)\n\n", c.Rate, r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "Reproduce: `./scripts/tools.sh test && %s` (from the repository root).\n\n", c.Command)
	fmt.Fprintf(&w, "- Machine: %s. Shared and noisy (other test suites were using the same Docker engine): compare within this section.\n", r.Machine)
	fmt.Fprintf(&w, "- Versions: gantry %s; Docker %s; Compose %s; Caddy %s (edge, FROM scratch); %s; %s.\n",
		r.Versions["gantry"], r.Versions["docker"], r.Versions["compose"], r.Versions["caddy"], r.Versions["k6"], firstWords(r.Versions["curl"], 2))
	fmt.Fprintf(&w, "- Service: examples/app (Go, static, FROM scratch, graceful shutdown on SIGTERM), v1 → v2, built daemonlessly into a registry on 127.0.0.1; images already on the host (each deploy still runs its pull). Everything on this machine's Docker engine; the edge's and the baseline's ports are published on 127.0.0.1.\n")
	fmt.Fprintf(&w, "- Load: k6 `constant-arrival-rate` %d req/s for %s on the public `/health` URL, started %s before the deploy; %s; 10 s request timeout. *Failed* = not 2xx or a transport error. Latency is the wall time of the call, connection included, over every request.\n", c.Rate, c.Window, c.Lead, conn)
	fmt.Fprintf(&w, "- gantry: `gantry deploy-compose --host local` with default inputs (drain 30s, stop-timeout 10s, 2 consecutive verifications 1 s apart) and `--url` the public URL; *verified* = end of the `verify-public` step in gantry's own timeline (the deploy history it writes; the job summary shows the same steps rounded to 0.1 s), counted from the start of the gantry process. Baseline: *verified* = the script's curl saw the new commit, counted from the start of the script.\n")
	w.WriteString("- Timelines: container events as `docker events` stamps them (the engine stamps `start` when its start call returns, which can be a few hundred ms after the process already serves); edge configuration changes from the edge's (Caddy's) own log.\n")
	fmt.Fprintf(&w, "- Container start (bare `docker compose up -d` of v2 to its first good `/health`, polled every 10 ms, %d runs): median **%ss** (runs: %s; `compose up` itself returned after a median %ss).\n\n",
		len(r.Start.Health), secs(cs), durList(r.Start.Health), secs(medianDur(r.Start.Up)))

	w.WriteString("| Deploy of v1 → v2 under load | Requests | Failed | Dropped by k6 | p99 latency (ms) | Max latency (ms) | Deploy start → verified new version (s) | … minus container start (s) | Deploy command (s) | Load before / after the deploy (s) |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range r.Scenarios {
		if s.Kind == kindCrash {
			continue
		}
		r.row(&w, s, cs)
	}
	w.WriteString("\n")
	if s := r.scenario(kindCrash); s != nil {
		r.crashTable(&w, s, cs)
	}
	var failures []string
	for _, s := range r.Scenarios {
		if s.Err != nil {
			failures = append(failures, fmt.Sprintf("- %s: %s", s.Name, oneLine(tail(s.Err.Error(), 1500))))
		}
	}
	if len(failures) > 0 {
		w.WriteString("Scenarios that did not run as intended:\n\n" + strings.Join(failures, "\n") + "\n\n")
	}
	w.WriteString(r.targets(cs))
	w.WriteString(r.timelines())
	w.WriteString(r.baselineScript())
	return w.String()
}

func (r *results) row(w *strings.Builder, s *scenario, cs time.Duration) {
	st := s.stats()
	if st.N == 0 {
		fmt.Fprintf(w, "| %s | not measured | | | | | | | | |\n", s.Name)
		return
	}
	name := s.Name
	if !r.spans(st) {
		name += " ⚠️ load did not span the deploy as required"
	}
	verified, over := "not verified", ""
	if !s.Verified.IsZero() {
		v := s.Verified.Sub(s.DeployStart)
		verified, over = secs(v), fmt.Sprintf("%+.2f", (v-cs).Seconds())
	}
	failed := fmt.Sprintf("**%d**", st.Failed)
	if st.Failed > 0 {
		failed = fmt.Sprintf("**%d** (%.2f%%)", st.Failed, 100*float64(st.Failed)/float64(st.N))
	}
	fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s / %s |\n", name, st.N, failed, st.Dropped,
		ms(st.P99), ms(st.Max), verified, over, secs(s.DeployEnd.Sub(s.DeployStart)), secs(st.Lead), secs(st.Tail))
}

func (r *results) crashTable(w *strings.Builder, s *scenario, cs time.Duration) {
	st := s.stats()
	w.WriteString("| Deploy of a release that exits 1 on start, blue-green, under load | Requests | Failed | Answered by the old version | Deploy start → step failed \"failed to start\" (s) | … minus container start (s) | Crash container started → step failed (s) | Deploy command (s) | Result |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	if st.N == 0 {
		fmt.Fprintf(w, "| %s | not measured | | | | | | | |\n\n", s.Name)
		return
	}
	det, over, fromStart := "not detected", "", "–"
	if !s.Detected.IsZero() {
		d := s.Detected.Sub(s.DeployStart)
		det, over = secs(d), fmt.Sprintf("%+.2f", (d-cs).Seconds())
		if t, ok := firstEvent(s.Events, "start", "web", s.DeployStart); ok {
			fromStart = secs(s.Detected.Sub(t))
		}
	}
	name := s.Name
	if !r.spans(st) {
		name += " ⚠️ load did not span the deploy as required"
	}
	fmt.Fprintf(w, "| %s | %d | **%d** | %d of %d | %s | %s | %s | %s | %s |\n\n", name, st.N, st.Failed, st.OldServed, st.N,
		det, over, fromStart, secs(s.DeployEnd.Sub(s.DeployStart)), s.Outcome)
	if s.DetectMsg != "" {
		fmt.Fprintf(w, "gantry's message: `%s`\n\n", oneLine(s.DetectMsg))
	}
}

// firstEvent is the time of the first action event of service's
// containers after t.
func firstEvent(es []benchenv.Event, action, service string, after time.Time) (time.Time, bool) {
	for _, e := range es {
		if e.Action == action && e.Labels["com.docker.compose.service"] == service && e.Time.After(after) {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

// targets renders the goals and whether this run met them.
func (r *results) targets(cs time.Duration) string {
	var w strings.Builder
	verdict := func(measured, met bool) string {
		switch {
		case !measured:
			return "not measured"
		case met:
			return "**met**"
		}
		return "**not met**"
	}
	w.WriteString("| Target | Measured | Goal | Result |\n|---|--:|--:|---|\n")
	if s := r.scenario(kindBlueGreen); s != nil {
		st := s.stats()
		ok := st.N > 0
		fmt.Fprintf(&w, "| gantry blue-green: failed requests | %d of %d | 0 of ≥ %d | %s |\n", st.Failed, st.N, minRequests,
			verdict(ok, st.Failed == 0 && st.N >= minRequests && r.spans(st)))
		if !s.Verified.IsZero() {
			v := s.Verified.Sub(s.DeployStart)
			fmt.Fprintf(&w, "| gantry blue-green: deploy start → verified new version | %ss | ≤ container start + 2 s = %ss | %s |\n",
				secs(v), secs(cs+targetVerifiedOver), verdict(true, v <= cs+targetVerifiedOver))
		} else {
			fmt.Fprintf(&w, "| gantry blue-green: deploy start → verified new version | not verified | ≤ container start + 2 s = %ss | **not met** |\n", secs(cs+targetVerifiedOver))
		}
	}
	if s := r.scenario(kindCrash); s != nil {
		st := s.stats()
		if !s.Detected.IsZero() {
			d := s.Detected.Sub(s.DeployStart)
			fmt.Fprintf(&w, "| crash detection: deploy start → step failed with \"failed to start\" | %ss | ≤ container start + 5 s = %ss | %s |\n",
				secs(d), secs(cs+targetCrashOver), verdict(true, d <= cs+targetCrashOver))
		} else {
			fmt.Fprintf(&w, "| crash detection: deploy start → step failed with \"failed to start\" | not detected | ≤ container start + 5 s = %ss | **not met** |\n", secs(cs+targetCrashOver))
		}
		fmt.Fprintf(&w, "| crash: the old version kept serving (failed requests during the crash deploy) | %d of %d | 0 | %s |\n",
			st.Failed, st.N, verdict(st.N > 0, st.Failed == 0 && r.spans(st)))
	}
	w.WriteString("\nContext (not targets): ")
	var ctx []string
	for _, s := range r.Scenarios {
		if s.Kind == kindBlueGreen || s.Kind == kindCrash || s.Verified.IsZero() {
			continue
		}
		st := s.stats()
		ctx = append(ctx, fmt.Sprintf("%s: %d of %d requests failed, verified %ss after the deploy started (container start + %.2f s)",
			s.Name, st.Failed, st.N, secs(s.Verified.Sub(s.DeployStart)), (s.Verified.Sub(s.DeployStart)-cs).Seconds()))
	}
	w.WriteString(strings.Join(ctx, "; ") + ".\n\n")
	return w.String()
}

// timelines renders, per scenario, the deploy's steps, the container
// events and the failed requests grouped in bursts, all in seconds from
// the deploy start.
func (r *results) timelines() string {
	var w strings.Builder
	w.WriteString("<details><summary>Timelines: each deploy's steps, container events and failed requests (seconds from the deploy start)</summary>\n\n")
	for _, s := range r.Scenarios {
		st := s.stats()
		fmt.Fprintf(&w, "**%s** (load %s → %s)\n\n", s.Name, fmtRel(s, s.LoadStart), fmtRel(s, s.DeployEnd.Add(st.Tail)))
		var lines []string
		for _, p := range s.Phases {
			l := fmt.Sprintf("- %s → %s `%s`", fmtRel(s, p.Start), fmtRel(s, p.End), p.Name)
			if p.Err != "" {
				l += ": ❌ " + oneLine(tail(p.Err, 400))
			}
			lines = append(lines, l)
		}
		if !s.DeployEnd.IsZero() {
			lines = append(lines, fmt.Sprintf("- %s deploy command exited", fmtRel(s, s.DeployEnd)))
		}
		for _, e := range s.Events {
			if e.Time.Before(s.DeployStart.Add(-time.Second)) {
				continue
			}
			l := fmt.Sprintf("- %s container %s `%s`", fmtRel(s, e.Time), e.Action, e.Name)
			switch e.Action {
			case "create", "start", "destroy":
			case "die":
				l += " (" + e.Detail + ")"
			default:
				continue // kill and health events: the Compose timeline shows the containers' lives only
			}
			lines = append(lines, l)
		}
		for _, e := range s.Edge {
			if e.Time.Before(s.DeployStart) {
				continue
			}
			lines = append(lines, fmt.Sprintf("- %s %s", fmtRel(s, e.Time), e.What))
		}
		if !st.FirstNew.IsZero() {
			lines = append(lines, fmt.Sprintf("- %s first request answered by the new version", fmtRel(s, st.FirstNew)))
		}
		if !st.LastOld.IsZero() && s.Kind != kindCrash {
			lines = append(lines, fmt.Sprintf("- %s last request answered by the old version", fmtRel(s, st.LastOld)))
		}
		for _, b := range bursts(s) {
			l := fmt.Sprintf("- %s → %s **%d failed requests** (%s)", fmtRel(s, b.from), fmtRel(s, b.to), b.n, b.kinds())
			if e, ok := benchenv.NearestEdgeChange(s.Edge, b.from, true); ok {
				l += fmt.Sprintf("; the first started %+.0f ms from the edge configuration change at %s", b.from.Sub(e.Time).Seconds()*1000, fmtRel(s, e.Time))
			}
			lines = append(lines, l)
		}
		sort.SliceStable(lines, func(i, j int) bool { return leadNum(lines[i]) < leadNum(lines[j]) })
		w.WriteString(strings.Join(lines, "\n") + "\n\n")
	}
	w.WriteString("</details>\n\n")
	return w.String()
}

func fmtRel(s *scenario, t time.Time) string { return fmt.Sprintf("%+.2f", s.rel(t)) }

// leadNum is the number a timeline line starts with, for sorting.
func leadNum(line string) float64 {
	var f float64
	_, _ = fmt.Sscanf(strings.TrimPrefix(line, "- "), "%f", &f)
	return f
}

// burst is failed requests less than a second apart.
type burst struct {
	from, to time.Time
	n        int
	kind     map[string]int
}

func (b burst) kinds() string {
	var ks []string
	for k := range b.kind {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return b.kind[ks[i]] > b.kind[ks[j]] })
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("`%s` ×%d", k, b.kind[k])
	}
	return strings.Join(parts, ", ")
}

func bursts(s *scenario) []burst {
	if s.Load == nil {
		return nil
	}
	var out []burst
	for _, r := range s.Load.Requests {
		if !r.Failed() {
			continue
		}
		if n := len(out); n == 0 || r.Start.Sub(out[n-1].to) > time.Second {
			out = append(out, burst{from: r.Start, kind: map[string]int{}})
		}
		b := &out[len(out)-1]
		b.to = r.Start
		b.n++
		b.kind[errKind(r)]++
	}
	return out
}

func (r *results) baselineScript() string {
	s := r.scenario(kindBaseline)
	if s == nil {
		return ""
	}
	return "<details><summary>The baseline deploy script</summary>\n\n```sh\n" + s.Script + "```\n\nwith `compose.yml`:\n\n```yaml\n" + baselineCompose + "```\n\n</details>\n\n"
}

func durList(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = secs(d)
	}
	return strings.Join(parts, ", ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}
