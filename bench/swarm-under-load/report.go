package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// minRequests is the least number of requests a scenario's load must make.
const minRequests = 3000

// results is everything the report is made of.
type results struct {
	Config    config
	RunID     string
	Scenarios []*scenario
	Machine   string
	Versions  map[string]string
	Date      time.Time
}

// loadStats summarises one load.
type loadStats struct {
	N, Failed, Dropped int
	P99, Max           time.Duration
	Kinds              map[string]int
	// Lead and Tail are how long the load ran before the deploy started
	// and after it ended.
	Lead, Tail time.Duration
	// FailedOutside counts failures outside the deploy command.
	FailedOutside int
	// OldServed and NewServed count 200 answers of each version.
	OldServed, NewServed int
	// FirstNew and LastOld are the start of the first request v2 answered
	// and of the last v1 answered.
	FirstNew, LastOld time.Time
}

func (s *scenario) stats() loadStats {
	st := loadStats{Kinds: map[string]int{}}
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
			st.Kinds[errKind(r)]++
			if r.End.Before(s.DeployStart) || r.Start.After(s.DeployEnd) {
				st.FailedOutside++
			}
			continue
		}
		switch r.SHA {
		case shaV1[:7]:
			st.OldServed++
			st.LastOld = r.Start
		case shaV2[:7]:
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
	var rolling, edged []string
	for _, k := range c.Scenarios {
		if isEdge(k) {
			edged = append(edged, k)
		} else {
			rolling = append(rolling, k)
		}
	}
	var what []string
	if len(rolling) > 0 {
		what = append(what, "rolling update "+strings.Join(rolling, " vs "))
	}
	if len(edged) > 0 {
		what = append(what, strings.Join(edged, " and ")+" through gantry's edge")
	}
	fmt.Fprintf(&w, "\n## swarm-under-load: failed requests during a Swarm deploy, %s, %d req/s (%s)\n\n", strings.Join(what, " vs "), c.Rate, r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&w, "Reproduce: `./scripts/tools.sh test && %s` (from the repository root).\n\n", c.Command)
	fmt.Fprintf(&w, "- Machine: %s. Shared and noisy (other test suites were using the same Docker engine): compare within this section.\n", r.Machine)
	fmt.Fprintf(&w, "- Versions: gantry %s; Docker %s, single-node swarm; k6 %s; registry %s", r.Versions["gantry"], r.Versions["docker"],
		strings.TrimPrefix(firstWords(r.Versions["k6"], 2), "k6 "), r.Versions["registry"])
	if v, ok := r.Versions["edge"]; ok {
		fmt.Fprintf(&w, "; edge %s", v)
	}
	w.WriteString(".\n")
	fmt.Fprintf(&w, "- Service: examples/app (Go, static, FROM scratch, graceful shutdown on SIGTERM), v1 → v2, built daemonlessly (`gantry build-push --files`) into a registry on 127.0.0.1, images already on the host. Stack: %d replicas, healthcheck `/app -health` every 1 s (timeout 2 s, retries 2, start period 1 s), `deploy.update_config` parallelism 1, monitor 3s", c.Replicas)
	if len(rolling) > 0 {
		w.WriteString("; rolling rows: the order from `--update-order`")
	}
	if len(edged) > 0 {
		w.WriteString("; edge rows: the same service with `expose: [\"8080\"]` and the label `gantry.edge: \"true\"`, which gantry renders as the services `web-blue` and `web-green` (`endpoint_mode: dnsrr`) plus `gantry-edge` pinned to this manager: v1 runs as `web-blue`, v2 goes to `web-green`, created by the deploy (so update_config does not come into play)")
	}
	w.WriteString(". Each scenario starts from a fresh stack on v1, all replicas healthy.\n")
	w.WriteString("- Deploy: `gantry deploy-swarm --host local` (the manager is this engine, no SSH) `--verify-timeout 60s`")
	if len(rolling) > 0 {
		w.WriteString("; rolling rows `--update-order <order> --url <stand-in>/health`")
	}
	if len(edged) > 0 {
		fmt.Fprintf(&w, "; edge rows `--strategy blue-green` or `--strategy canary --canary-steps %s --canary-interval %s` (gantry probes through the edge during the interval; at most 1 %% failed, the default), with `--edge-image <registry>/…/edge@sha256:… --edge-ports <port>:80 --url http://127.0.0.1:<port>/health` and `--drain` at its default 30 s (a ceiling: gantry scales the old color to 0 as soon as the edge has no request in flight on it)", canarySteps, c.CanaryInterval)
	}
	w.WriteString("; other inputs at their defaults (poll interval 1 s). *Time to verified* = end of the `verify` step (`--url`) in gantry's own timeline (the deploy history it writes), counted from the start of the gantry process")
	if len(edged) > 0 {
		w.WriteString("; in the edge rows that check runs through the edge after the switch, while each new task was checked at its own address before it (the `verify web-green` step)")
	}
	w.WriteString(".\n")
	fmt.Fprintf(&w, "- Load: k6 `constant-arrival-rate` %d req/s for %s on `/health`, started %s before the deploy; a new TCP connection per request (`noConnectionReuse`); 10 s request timeout. *Failed* = not 2xx or a transport error. Latency is the wall time of the call, connection included, over every request. *First v2 answer* = when the first request that v2 answered was sent, from the deploy start.", c.Rate, c.Window, c.Lead)
	if len(rolling) > 0 {
		w.WriteString(" *Healthy containers*, rolling rows: those the stand-in balancer sent connections to (see Routing).")
	}
	if len(edged) > 0 {
		w.WriteString(" *Healthy containers*, edge rows: the containers of the color(s) the edge routed to at each instant (the old color until gantry's `switch web` step ended, both during its `canary web` step, the new color after), counted while healthy and not yet sent SIGTERM, from the engine's events.")
	}
	w.WriteString("\n")
	if len(rolling) > 0 {
		w.WriteString("- **Routing of the rolling rows: not Swarm's routing mesh.** On this machine the mesh does not work (the engine creates no `DOCKER-INGRESS` iptables chain, so a published port is unreachable), so every request of these rows, k6's and deploy-swarm's `--url` checks alike, goes through a stand-in TCP balancer on 127.0.0.1 (`bench/swarm-under-load/ingress.go`, the idea of `internal/testenv.SwarmIngress`): each connection to a random running container of the service that is healthy, at its `docker_gwbridge` address; the set is refreshed every 100 ms from the Engine API, and a container is dropped as soon as the engine reports that it died or turned unhealthy; a connection with no container, or that its container refuses (or does not accept within 500 ms), is closed unanswered, which k6 reports as `read: connection reset by peer` or `EOF`. The real mesh takes a task out of its IPVS table when Swarm shuts the task down, before the container gets SIGTERM (Docker's task executor deactivates the task's service binding, waits 2 s for gossip to converge, then stops the container: `Shutdown` in moby's `daemon/cluster/executor/container/controller.go`; hence the ≈ 3 s in the timelines between a replacement turning healthy (start-first) or being created (stop-first) and the old container's SIGTERM); the stand-in only once the container stops running (its process exited after SIGTERM) or turns unhealthy. So through the stand-in each stopped v1 task costs the connections sent to it between its SIGTERM (the app closes its listener at once) and its drop (times below), about rate × that window ÷ containers serving, in either order; the mesh would not lose those. The failures of these rows are therefore the stand-in's, an upper bound for the mesh; what the order changes is how many containers share that window, how long the update takes and how soon v2 answers.\n")
	}
	if len(edged) > 0 {
		w.WriteString("- **Routing of the edge rows: the real path, no stand-in.** k6's requests and deploy-swarm's `--url` checks go to the port the edge publishes in host mode on this manager, at 127.0.0.1: the engine maps it straight to the `gantry-edge` container, so the routing mesh is not involved (and host mode works here). The edge (gantry-edge: Caddy with gantry's upstreams module, a FROM-scratch image built daemonlessly from `.bin/gantry-edge`) sends each request to a task of the color it routes to, by the color's DNS name (`endpoint_mode: dnsrr`, no IPVS); gantry switches it through Caddy's admin API, without reloading its HTTP server. These rows measure what a user of this setup would see.")
		if len(rolling) > 0 {
			w.WriteString(" **Not apples to apples with the rolling rows**: those go through the stand-in, whose failures are an upper bound for the mesh (above), so the comparison disfavours the rolling rows by as much as the stand-in's documented difference (the connections it sends to a v1 task between its SIGTERM and its drop), and no more: the rest (capacity, update time, when v2 answers) is Swarm's and gantry's own. Each path adds one proxy hop on loopback to every request's latency (the stand-in a TCP relay, the edge an HTTP reverse proxy).")
		}
		w.WriteString("\n")
	}
	w.WriteString("\n")

	fmt.Fprintf(&w, "| Scenario (v1 → v2, %d replicas) | Requests | Failed | Failure kinds (k6) | p99 latency (ms) | Time to verified (s) | First v2 answer (s) | Fewest healthy containers | Time below %d healthy (s) | Deploy command (s) | Load before / after the deploy (s) |\n", c.Replicas, c.Replicas)
	w.WriteString("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range r.Scenarios {
		r.row(&w, s)
	}
	w.WriteString("\n")
	for _, s := range r.Scenarios {
		st := s.stats()
		if st.N == 0 {
			continue
		}
		if s.Edge {
			fmt.Fprintf(&w, "- %s: result `%s`; after the deploy: %s; %d of %d answers from v1, %d from v2", s.Name, orNone(s.Outcome), orNone(s.Applied), st.OldServed, st.N, st.NewServed)
		} else {
			fmt.Fprintf(&w, "- %s: result `%s`; Swarm's update_config after the deploy: %s; %d of %d answers from v1, %d from v2", s.Name, orNone(s.Outcome), orNone(s.Applied), st.OldServed, st.N, st.NewServed)
		}
		if !st.LastOld.IsZero() {
			fmt.Fprintf(&w, ", the last v1 answer at %ss", fmtRel(s, st.LastOld))
		}
		fmt.Fprintf(&w, "; k6 dropped %d iterations; %d failures outside the deploy command", st.Dropped, st.FailedOutside)
		if s.Edge {
			_, _, most := s.edgeCapacity(r.Config.Replicas)
			fmt.Fprintf(&w, "; requests sent to the edge's host-mode port %s, no stand-in; at most %d healthy containers of web ran at once (both colors); the edge logged %d configuration change%s during the load",
				strings.TrimSuffix(strings.TrimPrefix(s.URL, "http://"), "/health"), most, len(s.EdgeLog), plural(len(s.EdgeLog)))
			if len(s.Warnings) > 0 {
				fmt.Fprintf(&w, "; gantry warned: %s", strings.Join(s.Warnings, " / "))
			} else {
				w.WriteString("; gantry logged no warning")
			}
			w.WriteString(".")
		} else {
			fmt.Fprintf(&w, "; the stand-in could not pass on %d connections (%s); %s.", len(s.Refused), refusedKinds(s.Refused), refreshStats(s))
		}
		if n, healthy := earlyNew(s); n > 0 {
			fmt.Fprintf(&w, " ⚠️ %d v2 answers were sent before the first v2 container was healthy (%ss)", n, fmtRel(s, healthy))
			if !s.Edge {
				w.WriteString(": the stand-in reached it through an address it reused")
			}
			w.WriteString(".")
		}
		w.WriteString("\n")
	}
	w.WriteString("\n")
	var failures []string
	for _, s := range r.Scenarios {
		if s.Err != nil {
			failures = append(failures, fmt.Sprintf("- %s: %s", s.Name, oneLine(tail(s.Err.Error(), 1500))))
		}
	}
	if len(failures) > 0 {
		w.WriteString("Scenarios that did not run as intended:\n\n" + strings.Join(failures, "\n") + "\n\n")
	}
	w.WriteString(r.timelines())
	return w.String()
}

// refreshStats describes the stand-in's refreshes during the deploy.
func refreshStats(s *scenario) string {
	var took []time.Duration
	var gap time.Duration
	var prev time.Time
	for _, r := range s.Refresh {
		if r.Start.Before(s.DeployStart) || r.Start.After(s.DeployEnd) {
			continue
		}
		took = append(took, r.Took)
		if !prev.IsZero() {
			gap = max(gap, r.Start.Sub(prev))
		}
		prev = r.Start
	}
	if len(took) == 0 {
		return "no stand-in refresh during the deploy"
	}
	slices.Sort(took)
	out := fmt.Sprintf("during the deploy the stand-in refreshed its set %d times, its Engine API calls taking a median %s ms (max %s ms), at most %s ms apart",
		len(took), ms(took[len(took)/2]), ms(took[len(took)-1]), ms(gap))
	if ws := staleWindows(s); len(ws) > 0 {
		parts := make([]string, len(ws))
		for i, w := range ws {
			parts[i] = ms(w)
		}
		out += "; it dropped each stopped v1 container " + strings.Join(parts, ", ") + " ms after its SIGTERM"
	}
	return out
}

// earlyNew counts the v2 answers to requests sent before the first v2
// container turned healthy, and says when that was.
func earlyNew(s *scenario) (int, time.Time) {
	var healthy time.Time
	for _, e := range s.Events {
		if e.Action == "health_status: healthy" && release(e.Image) == "v2" {
			healthy = e.Time
			break
		}
	}
	if healthy.IsZero() || s.Load == nil {
		return 0, healthy
	}
	n := 0
	for _, r := range s.Load.Requests {
		if !r.Failed() && r.SHA == shaV2[:7] && r.Start.Before(healthy) {
			n++
		}
	}
	return n, healthy
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (r *results) row(w *strings.Builder, s *scenario) {
	st := s.stats()
	if st.N == 0 {
		fmt.Fprintf(w, "| %s | not measured | | | | | | | | | |\n", s.Name)
		return
	}
	name := s.Name
	if !r.spans(st) {
		name += " ⚠️ load did not span the deploy as required"
	}
	verified := "not verified"
	if !s.Verified.IsZero() {
		verified = secs(s.Verified.Sub(s.DeployStart))
	}
	firstNew := "none"
	if !st.FirstNew.IsZero() {
		firstNew = fmtRel(s, st.FirstNew)
	}
	failed := fmt.Sprintf("**%d**", st.Failed)
	if st.Failed > 0 {
		failed = fmt.Sprintf("**%d** (%.2f%%)", st.Failed, 100*float64(st.Failed)/float64(st.N))
	}
	kinds := kindList(st.Kinds)
	if kinds == "" {
		kinds = "–"
	}
	fewest, below := s.capacity(r.Config.Replicas)
	if s.Edge {
		fewest, below, _ = s.edgeCapacity(r.Config.Replicas)
	}
	fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %d | %s | %s | %s / %s |\n", name, st.N, failed, kinds,
		ms(st.P99), verified, firstNew, fewest, secs(below), secs(s.DeployEnd.Sub(s.DeployStart)), secs(st.Lead), secs(st.Tail))
}

// capacity is the fewest containers the stand-in sent connections to during
// the deploy, and how long it had fewer than replicas. The deploy starts
// with replicas (the scenario waits for them).
func (s *scenario) capacity(replicas int) (int, time.Duration) {
	n, fewest := replicas, replicas
	var below time.Duration
	at := s.DeployStart
	for _, c := range s.Changes {
		if c.Time.Before(s.DeployStart) {
			n = c.Running
			continue
		}
		if c.Time.After(s.DeployEnd) {
			break
		}
		if n < replicas {
			below += c.Time.Sub(at)
		}
		n, at = c.Running, c.Time
		fewest = min(fewest, n)
	}
	if n < replicas {
		below += s.DeployEnd.Sub(at)
	}
	return fewest, below
}

// serviceOf is the stack service of a task container's name,
// <stack>_<service>.<slot>.<task id>.
func serviceOf(name string) string {
	if i := strings.LastIndex(name, "_"); i >= 0 {
		name = name[i+1:]
	}
	svc, _, _ := strings.Cut(name, ".")
	return svc
}

// routed are the colors the edge sends traffic to at t, from gantry's own
// timeline: the old color until the switch (the end of the `switch web`
// step) or the first canary step (the start of `canary web`), both colors
// during the canary steps, the new color after; the old color again after a
// `switch back`.
func (s *scenario) routed(t time.Time) []string {
	out := []string{s.Live}
	for _, p := range s.Phases {
		switch p.Name {
		case "switch web":
			if !t.Before(p.End) {
				out = []string{s.Next}
			}
		case "canary web":
			if !t.Before(p.End) {
				out = []string{s.Next}
			} else if !t.Before(p.Start) {
				out = []string{s.Live, s.Next}
			}
		case "switch back":
			if !t.Before(p.End) {
				out = []string{s.Live}
			}
		}
	}
	return out
}

// edgeCapacity is, for an edge scenario, the fewest healthy containers of
// the colors the edge routed to during the deploy, how long there were
// fewer than replicas, and the most healthy containers of both colors at
// once. A container counts from its health_status: healthy event until it
// is sent SIGTERM (or dies, or turns unhealthy); the old color's replicas
// were healthy before the events begin.
func (s *scenario) edgeCapacity(replicas int) (fewest int, below time.Duration, most int) {
	healthy := map[string]string{} // container ID → service
	gone := map[string]bool{}
	before := map[string]int{s.Live: replicas} // healthy before the events begin
	count := func(t time.Time) (routed, all int) {
		per := map[string]int{}
		for svc, n := range before {
			per[svc] += n
		}
		for _, svc := range healthy {
			per[svc]++
		}
		for _, svc := range s.routed(t) {
			routed += per[svc]
		}
		return routed, per[s.Live] + per[s.Next]
	}
	apply := func(e benchenv.Event) {
		svc := serviceOf(e.Name)
		if svc != s.Live && svc != s.Next {
			return // the edge
		}
		switch e.Action {
		case "health_status: healthy":
			if !gone[e.ID] {
				healthy[e.ID] = svc
			}
		case "kill", "die", "destroy", "health_status: unhealthy":
			if _, ok := healthy[e.ID]; ok {
				delete(healthy, e.ID)
			} else if !gone[e.ID] && before[svc] > 0 {
				before[svc]--
			}
			gone[e.ID] = true
		}
	}
	// The instants the count can change: the engine's events and the edge's
	// routing changes, in order.
	type point struct {
		t  time.Time
		ev *benchenv.Event
	}
	var pts []point
	for i := range s.Events {
		pts = append(pts, point{s.Events[i].Time, &s.Events[i]})
	}
	for _, p := range s.Phases {
		pts = append(pts, point{t: p.Start}, point{t: p.End})
	}
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].t.Before(pts[j].t) })
	i := 0
	for ; i < len(pts) && pts[i].t.Before(s.DeployStart); i++ {
		if pts[i].ev != nil {
			apply(*pts[i].ev)
		}
	}
	n, all := count(s.DeployStart)
	fewest, most, at := n, all, s.DeployStart
	for ; i < len(pts) && !pts[i].t.After(s.DeployEnd); i++ {
		if pts[i].ev != nil {
			apply(*pts[i].ev)
		}
		if n < replicas {
			below += pts[i].t.Sub(at)
		}
		n, all = count(pts[i].t)
		at = pts[i].t
		fewest, most = min(fewest, n), max(most, all)
	}
	if n < replicas {
		below += s.DeployEnd.Sub(at)
	}
	return fewest, below, most
}

// kindList renders counts by kind, the most frequent first.
func kindList(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	parts := make([]string, len(ks))
	for i, k := range ks {
		parts[i] = fmt.Sprintf("`%s` ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func refusedKinds(outs []connOutcome) string {
	m := map[string]int{}
	for _, o := range outs {
		m[o.Why]++
	}
	if len(m) == 0 {
		return "none"
	}
	return kindList(m)
}

// timelines renders, per scenario, the deploy's steps, the containers'
// events, the stand-in's backend changes and the failed requests grouped
// in bursts, all in seconds from the deploy start.
func (r *results) timelines() string {
	var w strings.Builder
	w.WriteString("<details><summary>Timelines: each deploy's steps, container events, the stand-in's backends (rolling rows) or the edge's configuration changes (edge rows), and failed requests (seconds from the deploy start)</summary>\n\n")
	for _, s := range r.Scenarios {
		if s.DeployStart.IsZero() {
			continue
		}
		st := s.stats()
		fmt.Fprintf(&w, "**%s** (load %s → %s)\n\n", s.Name, fmtRel(s, s.LoadStart), fmtRel(s, s.DeployEnd.Add(st.Tail)))
		var lines []string
		for _, p := range s.Phases {
			l := fmt.Sprintf("- %s → %s gantry `%s`", fmtRel(s, p.Start), fmtRel(s, p.End), p.Name)
			if p.Err != "" {
				l += ": ❌ " + oneLine(tail(p.Err, 400))
			}
			lines = append(lines, l)
		}
		lines = append(lines, fmt.Sprintf("- %s deploy command exited", fmtRel(s, s.DeployEnd)))
		for _, e := range s.Events {
			if e.Time.Before(s.DeployStart) {
				continue
			}
			l := fmt.Sprintf("- %s container `%s` %s (%s)", fmtRel(s, e.Time), taskName(e.Name), e.Action, release(e.Image))
			if e.Detail != "" {
				l += ", " + e.Detail
			}
			lines = append(lines, l)
		}
		for _, c := range s.Changes {
			if c.Time.Before(s.DeployStart) {
				continue
			}
			verb := "drops"
			if c.Added {
				verb = "adds"
			}
			lines = append(lines, fmt.Sprintf("- %s stand-in %s container %s (%d backends)", fmtRel(s, c.Time), verb, c.ID[:12], c.Running))
		}
		for _, e := range s.EdgeLog {
			if !e.Time.Before(s.DeployStart) {
				lines = append(lines, fmt.Sprintf("- %s %s", fmtRel(s, e.Time), e.What))
			}
		}
		if !st.FirstNew.IsZero() {
			lines = append(lines, fmt.Sprintf("- %s first request answered by v2", fmtRel(s, st.FirstNew)))
		}
		if !st.LastOld.IsZero() {
			lines = append(lines, fmt.Sprintf("- %s last request answered by v1", fmtRel(s, st.LastOld)))
		}
		for _, b := range bursts(s) {
			l := fmt.Sprintf("- %s → %s **%d failed request%s** (%s)", fmtRel(s, b.from), fmtRel(s, b.to), b.n, plural(b.n), kindList(b.kind))
			if e, ok := nearestKill(s.Events, b.from); ok {
				l += fmt.Sprintf("; the first sent %+d ms from `%s`'s SIGTERM", b.from.Sub(e.Time).Round(time.Millisecond).Milliseconds(), taskName(e.Name))
			}
			if e, ok := benchenv.NearestEdgeChange(s.EdgeLog, b.from, false); ok {
				l += fmt.Sprintf("; the first sent %+d ms from the edge's change at %s", b.from.Sub(e.Time).Round(time.Millisecond).Milliseconds(), fmtRel(s, e.Time))
			}
			lines = append(lines, l)
		}
		sort.SliceStable(lines, func(i, j int) bool { return leadNum(lines[i]) < leadNum(lines[j]) })
		w.WriteString(strings.Join(lines, "\n") + "\n\n")
	}
	w.WriteString("</details>\n\n")
	return w.String()
}

// taskName shortens a task container's name,
// <stack>_<service>.<slot>.<task id>, to <service>.<slot>.<first 6 of the
// task id>.
func taskName(name string) string {
	if i := strings.LastIndex(name, "_"); i >= 0 {
		name = name[i+1:]
	}
	if f := strings.Split(name, "."); len(f) == 3 && len(f[2]) > 6 {
		name = f[0] + "." + f[1] + "." + f[2][:6]
	}
	return name
}

// release names the release of an image reference.
func release(image string) string {
	for _, r := range []string{"v1", "v2", "edge"} {
		if strings.Contains(image, "/"+r+"@") || strings.Contains(image, "/"+r+":") {
			return r
		}
	}
	return image
}

// nearestKill is the SIGTERM (kill event) nearest to t, if within a second
// of it.
func nearestKill(es []benchenv.Event, t time.Time) (benchenv.Event, bool) {
	var best benchenv.Event
	found := false
	for _, e := range es {
		if d := t.Sub(e.Time).Abs(); e.Action == "kill" && d <= time.Second && (!found || d < t.Sub(best.Time).Abs()) {
			best, found = e, true
		}
	}
	return best, found
}

// staleWindows are, for each container that got SIGTERM during the deploy,
// the time until the stand-in stopped sending it connections.
func staleWindows(s *scenario) []time.Duration {
	var ws []time.Duration
	for _, e := range s.Events {
		if e.Action != "kill" || e.Time.Before(s.DeployStart) {
			continue
		}
		for _, c := range s.Changes {
			if !c.Added && c.ID == e.ID && !c.Time.Before(e.Time) {
				ws = append(ws, c.Time.Sub(e.Time))
				break
			}
		}
	}
	return ws
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

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}
