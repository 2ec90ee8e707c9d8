package loadtest

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gantry-dev/gantry/internal/markdown"
)

// maxMarkdownBytes bounds Markdown's output, well under the 65,536
// characters GitHub takes in a comment; a section that would pass it is
// left out with a note.
const maxMarkdownBytes = 48 << 10

// Row limits of the Markdown sections.
const (
	maxFailingRows   = 20 // failing thresholds, failing checks
	maxErrorRows     = 10
	slowestRows      = 5
	maxThresholdRows = 30 // all thresholds
	maxCellThreshold = 3  // thresholds in one key-metric cell
)

// MarkdownOptions tunes Markdown.
type MarkdownOptions struct {
	// Title names the run in the verdict; it defaults to "Load test".
	Title string
	// FailOn selects the findings that fail the run, as in Judge.
	FailOn FailOn
	// Baseline, when set, adds its value of each key metric to the table,
	// with the change; without it, only metrics with a limit show one.
	Baseline *Summary
}

// section is one part of the Markdown summary.
type section struct{ name, text string }

// Markdown renders s, and its comparisons with the baseline (nil without
// one), as a GitHub job summary or PR comment under 48 KiB: the verdict in
// one line, the key metrics with their thresholds and the change from the
// baseline, the failing thresholds and checks, errors by status and the
// slowest requests, with all user text escaped and shortened.
func Markdown(s *Summary, cmp []Comparison, opts MarkdownOptions) string {
	v := Judge(s, cmp, opts.FailOn)
	sections := []section{
		{"verdict", verdictLine(opts.Title, v)},
		{"run", runLine(s)},
		{"key metrics", keyMetrics(s, cmp, opts.Baseline)},
		{"failing thresholds", failingThresholds(s)},
		{"failing checks", failingChecks(s)},
		{"errors by status", errorsByStatus(s)},
		{"slowest requests", slowestRequests(s)},
		{"all thresholds", allThresholds(s)},
	}
	var b strings.Builder
	for _, sec := range sections {
		if sec.text == "" {
			continue
		}
		if b.Len()+len(sec.text) > maxMarkdownBytes-200 {
			sec.text = "_The " + sec.name + " are left out to keep this summary short; summary.json has them._"
		}
		b.WriteString(strings.TrimRight(sec.text, "\n"))
		b.WriteString("\n\n")
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func verdictLine(title string, v Verdict) string {
	if title == "" {
		title = "Load test"
	}
	title = prose(title)
	if v.Passed {
		return "**✅ " + title + " " + v.Headline() + "**"
	}
	head, rest, _ := strings.Cut(v.Headline(), ": ")
	return "**❌ " + title + " " + head + ":** " + rest
}

func runLine(s *Summary) string {
	if s.Start.IsZero() {
		return "_The k6 output has no samples._"
	}
	var requests float64
	if m := s.Metrics[metricRequests]; m != nil {
		requests = m.Sum
	}
	return fmt.Sprintf("%s in %s, from %s to %s UTC.", plural64(int64(requests), "request"),
		formatSeconds(s.End.Sub(s.Start).Seconds()), s.Start.UTC().Format("2006-01-02 15:04:05"), s.End.UTC().Format("15:04:05"))
}

func failingThresholds(s *Summary) string {
	var rows [][]string
	failed := 0
	for _, r := range s.Thresholds {
		if r.OK {
			continue
		}
		failed++
		if len(rows) < maxFailingRows {
			rows = append(rows, []string{code(r.Metric), code(r.Expression), observed(s, r)})
		}
	}
	if failed == 0 {
		return ""
	}
	return "**Failing thresholds**\n\n" + markdown.Table([]string{"Metric", "Threshold", "Observed"}, rows) + andMore(failed-len(rows), "failing threshold")
}

func failingChecks(s *Summary) string {
	var failing []CheckStats
	for _, c := range s.Checks {
		if c.Fails > 0 {
			failing = append(failing, c)
		}
	}
	if len(failing) == 0 {
		return ""
	}
	slices.SortStableFunc(failing, func(a, b CheckStats) int { return cmp.Compare(b.Fails, a.Fails) })
	var rows [][]string
	for _, c := range failing[:min(len(failing), maxFailingRows)] {
		name := code(c.Name)
		if c.Group != "" {
			name += " in group " + code(c.Group)
		}
		runs := c.Passes + c.Fails
		rows = append(rows, []string{name, fmt.Sprintf("%s of %s (%s)", formatCount(float64(c.Fails)), formatCount(float64(runs)), formatPercent(float64(c.Fails)/float64(runs)))})
	}
	return "**Failing checks**\n\n" + markdown.Table([]string{"Check", "Failed"}, rows) + andMore(len(failing)-len(rows), "failing check")
}

func errorsByStatus(s *Summary) string {
	if len(s.ErrorsByStatus) == 0 {
		return ""
	}
	type statusCount struct {
		status string
		n      int
	}
	var all []statusCount
	for st, n := range s.ErrorsByStatus {
		all = append(all, statusCount{st, n})
	}
	slices.SortFunc(all, func(a, b statusCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.status, b.status))
	})
	var requests float64
	if m := s.Metrics[metricRequests]; m != nil {
		requests = m.Sum
	}
	var rows [][]string
	for _, e := range all[:min(len(all), maxErrorRows)] {
		st := status(e.status)
		if e.status == "0" {
			st = "0 (no response)"
		}
		share := "–"
		if requests > 0 {
			share = formatPercent(float64(e.n) / requests)
		}
		rows = append(rows, []string{st, formatCount(float64(e.n)), share})
	}
	return "**Errors by status**\n\n" + markdown.Table([]string{"Status", "Requests", "Share"}, rows) + andMore(len(all)-len(rows), "status")
}

func slowestRequests(s *Summary) string {
	if len(s.Groups) == 0 {
		return ""
	}
	groups := slices.Clone(s.Groups)
	slices.SortStableFunc(groups, func(a, b GroupStats) int { return cmp.Compare(b.P95, a.P95) })
	groups = groups[:min(len(groups), slowestRows)]
	scenarios := map[string]bool{}
	for _, g := range s.Groups {
		scenarios[g.Scenario] = true
	}
	header := []string{"Request", "Status", "Requests", "p95", "p99", "Max"}
	var rows [][]string
	for _, g := range groups {
		req := code(g.Name)
		if g.Method != "" {
			req = prose(clip(g.Method, 16)) + " " + req
		}
		if len(scenarios) > 1 {
			req += " in " + code(g.Scenario)
		}
		rows = append(rows, []string{req, status(g.Status), formatCount(float64(g.Count)), formatMs(g.P95), formatMs(g.P99), formatMs(g.Max)})
	}
	return "**Slowest requests** (by p95)\n\n" + markdown.Table(header, rows)
}

func allThresholds(s *Summary) string {
	if len(s.Thresholds) == 0 {
		return ""
	}
	var rows [][]string
	for _, r := range s.Thresholds[:min(len(s.Thresholds), maxThresholdRows)] {
		rows = append(rows, []string{mark(r.OK), code(r.Metric), code(r.Expression), observed(s, r)})
	}
	return fmt.Sprintf("<details><summary>All %s</summary>\n\n", plural(len(s.Thresholds), "threshold")) +
		markdown.Table([]string{"", "Metric", "Threshold", "Observed"}, rows) + andMore(len(s.Thresholds)-len(rows), "threshold") + "\n</details>"
}

// observed formats a threshold's observed value in its metric's unit.
func observed(s *Summary, r ThresholdResult) string {
	if r.Error != "" {
		return "error: " + markdown.Escape(r.Error)
	}
	t, err := parseExpression(r.Expression)
	if err != nil {
		return strconv.FormatFloat(r.Value, 'g', 4, 64)
	}
	base, _, _ := strings.Cut(r.Metric, "{")
	typ := builtinTypes[base]
	if m := s.Metrics[base]; m != nil && m.Type != "" {
		typ = m.Type
	}
	switch {
	case t.method == methodCount:
		return formatCount(r.Value)
	case t.method == methodRate && typ == TypeCounter:
		return formatRPS(r.Value)
	case t.method == methodRate:
		return formatPercent(r.Value)
	case t.method != methodValue && builtinTypes[base] == TypeTrend: // k6's built-in trends are times
		return formatMs(r.Value)
	}
	return strconv.FormatFloat(r.Value, 'g', 4, 64)
}

// status shows an HTTP status as it is when it is a number, else as code.
func status(s string) string {
	if _, err := strconv.Atoi(s); err == nil && len(s) <= 3 {
		return s
	}
	return code(s)
}

func mark(ok bool) string {
	if ok {
		return "✅"
	}
	return "❌"
}

func andMore(n int, noun string) string {
	if n <= 0 {
		return ""
	}
	if n > 1 {
		noun = plural(n, noun)[len(formatCount(float64(n)))+1:]
	}
	return fmt.Sprintf("\n… and %s more %s (summary.json has them all)", formatCount(float64(n)), noun)
}
