// Package report renders a load test's summary as report.html: one
// self-contained page (inline CSS, script and SVG charts, nothing loaded from
// the network) with the verdict, the key numbers, charts over time and
// tables, readable in a light and a dark theme.
package report

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// Options adds what the summary does not hold to the report.
type Options struct {
	// Title heads the page; it defaults to "Load test".
	Title string
	// Target is the URL (or any name) of what was tested.
	Target string
	// Verdict is the gate's outcome; nil shows none.
	Verdict *Verdict
	// Thresholds are the run's thresholds and how they came out.
	Thresholds []Threshold
}

// Verdict is the outcome shown at the top of the report.
type Verdict struct {
	// Passed colors the verdict as a success, or else as a failure.
	Passed bool
	// Text is the headline, such as "passed" or "p95 latency regressed".
	Text string
	// Reasons explain the verdict, one line each.
	Reasons []string
}

// Threshold is one threshold of the run: the expression (such as "p(95)<500")
// on a metric, the observed value it tested, and whether it held.
type Threshold struct {
	Metric     string
	Expression string
	Value      float64
	OK         bool
}

// maxRows bounds the rows of the groups and checks tables; a run whose
// request names are unique URLs would otherwise make a huge page.
const maxRows = 500

//go:embed report.html.tmpl
var pageTemplate string

//go:embed theme.js
var themeScript string

var tmpl = template.Must(template.New("report").Parse(pageTemplate))

// contentPolicy forbids every load from the network (and any script but the
// report's own), so the page provably works offline.
var contentPolicy = func() string {
	sum := sha256.Sum256([]byte(themeScript))
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// WriteFile writes the report of s to path.
func WriteFile(path string, s *loadtest.Summary, opt Options) error {
	var buf bytes.Buffer
	if err := Write(&buf, s, opt); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// Write writes the report of s to w as one HTML page.
func Write(w io.Writer, s *loadtest.Summary, opt Options) error {
	if s == nil {
		return errors.New("report: no summary to render")
	}
	v, err := newPage(s, opt)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: render the page: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: write the page: %w", err)
	}
	return nil
}

// page is what the template renders; every string in it is escaped there.
type page struct {
	Title      string
	Target     string
	Verdict    *Verdict
	Start, End stamp
	Duration   string
	Numbers    []number
	Charts     []chartView
	Thresholds []thresholdRow

	Groups       []groupRow
	GroupsHidden int
	ShowScenario bool
	Checks       []checkRow
	ChecksHidden int
	Errors       []errorRow

	CSP    string
	Script template.JS
}

type stamp struct{ Text, ISO string }

type number struct{ Label, Value, Class string }

type thresholdRow struct {
	Metric, Expression, Value string
	OK                        bool
}

type groupRow struct {
	Name, Method, Status, Scenario, Count, P50, P95, P99, Max string
	Failed                                                    bool
}

type checkRow struct {
	Group, Name, Passes, Fails, Rate string
	Failed                           bool
}

type errorRow struct{ Status, Count, Share string }

func newPage(s *loadtest.Summary, opt Options) (*page, error) {
	p := &page{
		Title:   opt.Title,
		Target:  opt.Target,
		Verdict: opt.Verdict,
		Start:   newStamp(s.Start),
		End:     newStamp(s.End),
		CSP:     contentPolicy,
		Script:  template.JS(themeScript),
	}
	if p.Title == "" {
		p.Title = "Load test"
	}
	if !s.Start.IsZero() && !s.End.IsZero() {
		p.Duration = formatDuration(s.End.Sub(s.Start))
	}
	p.Numbers = keyNumbers(s)
	var err error
	if p.Charts, err = charts(s); err != nil {
		return nil, err
	}
	for _, th := range opt.Thresholds {
		p.Thresholds = append(p.Thresholds, thresholdRow{th.Metric, th.Expression, formatValue(th.Value), th.OK})
	}
	p.Groups, p.GroupsHidden, p.ShowScenario = groupRows(s.Groups)
	p.Checks, p.ChecksHidden = checkRows(s.Checks)
	p.Errors = errorRows(s)
	return p, nil
}

func newStamp(t time.Time) stamp {
	if t.IsZero() {
		return stamp{Text: "—"}
	}
	return stamp{Text: t.UTC().Format("2006-01-02 15:04:05 UTC"), ISO: t.UTC().Format(time.RFC3339)}
}

// keyNumbers picks the run's headline numbers from its metrics.
func keyNumbers(s *loadtest.Summary) []number {
	reqs, failed, dur, vus := s.Metrics["http_reqs"], s.Metrics["http_req_failed"], s.Metrics["http_req_duration"], s.Metrics["vus"]
	n := []number{
		{Label: "Requests", Value: "—"},
		{Label: "Requests/s", Value: "—"},
		{Label: "Error rate", Value: "—"},
		{Label: "p50", Value: "—"},
		{Label: "p95", Value: "—"},
		{Label: "p99", Value: "—"},
		{Label: "Max", Value: "—"},
		{Label: "Peak VUs", Value: "—"},
	}
	if reqs != nil {
		n[0].Value = formatCount(reqs.Sum)
		n[1].Value = formatRate(reqs.Rate)
	}
	if failed != nil {
		n[2].Value = formatPercent(failed.Rate)
		if failed.Rate > 0 {
			n[2].Class = "bad"
		}
	}
	if dur != nil {
		n[3].Value, n[4].Value, n[5].Value, n[6].Value = formatMs(dur.P50), formatMs(dur.P95), formatMs(dur.P99), formatMs(dur.Max)
	}
	if vus != nil {
		n[7].Value = formatCount(vus.Max)
	}
	return n
}

// groupRows lists the request groups; beyond maxRows it keeps the busiest
// ones, in the summary's order, and says how many it left out.
func groupRows(groups []loadtest.GroupStats) (rows []groupRow, hidden int, scenario bool) {
	keep := groups
	if len(groups) > maxRows {
		idx := make([]int, len(groups))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(groups[b].Count, groups[a].Count) })
		idx = idx[:maxRows]
		slices.Sort(idx)
		keep = make([]loadtest.GroupStats, 0, maxRows)
		for _, i := range idx {
			keep = append(keep, groups[i])
		}
		hidden = len(groups) - maxRows
	}
	for _, g := range keep {
		scenario = scenario || g.Scenario != ""
		code, _ := strconv.Atoi(g.Status)
		rows = append(rows, groupRow{
			Name: g.Name, Method: g.Method, Status: g.Status, Scenario: g.Scenario,
			Count: formatCount(float64(g.Count)),
			P50:   formatMs(g.P50), P95: formatMs(g.P95), P99: formatMs(g.P99), Max: formatMs(g.Max),
			Failed: g.Status == "0" || code >= 400,
		})
	}
	return rows, hidden, scenario
}

// checkRows lists the checks, failing ones first when there are too many.
func checkRows(checks []loadtest.CheckStats) (rows []checkRow, hidden int) {
	keep := checks
	if len(checks) > maxRows {
		keep = slices.Clone(checks)
		slices.SortStableFunc(keep, func(a, b loadtest.CheckStats) int { return cmp.Compare(b.Fails, a.Fails) })
		keep = keep[:maxRows]
		hidden = len(checks) - maxRows
	}
	for _, c := range keep {
		rate := "—"
		if total := c.Passes + c.Fails; total > 0 {
			rate = formatPercent(float64(c.Passes) / float64(total))
		}
		rows = append(rows, checkRow{
			Group: c.Group, Name: c.Name,
			Passes: formatCount(float64(c.Passes)), Fails: formatCount(float64(c.Fails)),
			Rate: rate, Failed: c.Fails > 0,
		})
	}
	return rows, hidden
}

// errorRows lists failed requests by status, in numeric order, with their
// share of all requests.
func errorRows(s *loadtest.Summary) []errorRow {
	statuses := make([]string, 0, len(s.ErrorsByStatus))
	for st := range s.ErrorsByStatus {
		statuses = append(statuses, st)
	}
	slices.SortFunc(statuses, func(a, b string) int {
		x, errA := strconv.Atoi(a)
		y, errB := strconv.Atoi(b)
		if errA == nil && errB == nil && x != y {
			return x - y
		}
		return strings.Compare(a, b)
	})
	total := 0.0
	if r := s.Metrics["http_reqs"]; r != nil {
		total = r.Sum
	}
	rows := make([]errorRow, 0, len(statuses))
	for _, st := range statuses {
		n := s.ErrorsByStatus[st]
		label := st
		if st == "0" {
			label = "0 (no response)"
		}
		share := "—"
		if total > 0 {
			share = formatPercent(float64(n) / total)
		}
		rows = append(rows, errorRow{Status: label, Count: formatCount(float64(n)), Share: share})
	}
	return rows
}

// formatMs formats a latency in milliseconds with three significant digits,
// in seconds from 10 s on.
func formatMs(ms float64) string {
	switch {
	case !finite(ms):
		return "—"
	case ms >= 10000:
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + " s"
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
}

// formatCount formats a whole number with thin-space thousands separators.
func formatCount(v float64) string {
	if !finite(v) {
		return "—"
	}
	digits := strconv.FormatFloat(math.Abs(math.Round(v)), 'f', 0, 64)
	var b strings.Builder
	if v < 0 && digits != "0" {
		b.WriteByte('-')
	}
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(d)
	}
	return b.String()
}

func formatRate(perSecond float64) string {
	if !finite(perSecond) {
		return "—"
	}
	if perSecond >= 100 {
		return formatCount(perSecond)
	}
	return strconv.FormatFloat(perSecond, 'f', 1, 64)
}

// formatPercent formats a share (0 to 1) as a percentage, never rounding a
// non-zero share to 0.
func formatPercent(share float64) string {
	switch {
	case !finite(share):
		return "—"
	case share > 0 && share < 0.0001:
		return "<0.01 %"
	}
	return strconv.FormatFloat(100*share, 'f', 2, 64) + " %"
}

func formatValue(v float64) string {
	if !finite(v) {
		return strconv.FormatFloat(v, 'g', -1, 64) // NaN, +Inf, -Inf say what they are
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// formatDuration rounds a run's duration to what a reader needs.
func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
