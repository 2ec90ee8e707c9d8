package report

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// render writes the report of s and parses it as a browser would.
func render(t *testing.T, s *loadtest.Summary, opt Options) (string, *html.Node) {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, s, opt); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("the report does not parse as HTML: %v", err)
	}
	return buf.String(), doc
}

// elements returns every element of the tree under n.
func elements(n *html.Node) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode {
			out = append(out, d)
		}
	}
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func byID(doc *html.Node, id string) *html.Node {
	for _, e := range elements(doc) {
		if v, _ := attr(e, "id"); v == id {
			return e
		}
	}
	return nil
}

// text returns the text under n, as textContent does.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// cells returns the text of each cell of each body row of the table with id.
func cells(t *testing.T, doc *html.Node, id string) [][]string {
	t.Helper()
	table := byID(doc, id)
	if table == nil {
		t.Fatalf("no table #%s", id)
	}
	var rows [][]string
	for _, tr := range elements(table) {
		if tr.DataAtom.String() != "tr" || tr.Parent.DataAtom.String() != "tbody" {
			continue
		}
		var row []string
		for td := tr.FirstChild; td != nil; td = td.NextSibling {
			if td.Type == html.ElementNode {
				row = append(row, text(td))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// urlRef finds url(...) in CSS, whatever it points to.
var urlRef = regexp.MustCompile(`(?i)url\s*\(`)

// checkSelfContained fails when the page could load anything: an element
// that fetches (img, link, iframe, ...), an attribute naming a resource, or
// a url(...) in its CSS.
func checkSelfContained(t *testing.T, doc *html.Node) {
	t.Helper()
	scripts, styles := 0, 0
	for _, e := range elements(doc) {
		switch e.Data {
		case "script":
			scripts++
		case "style":
			styles++
			if urlRef.MatchString(text(e)) {
				t.Errorf("a <style> uses url(...)")
			}
		case "img", "link", "iframe", "frame", "object", "embed", "video", "audio", "source", "track", "image", "use", "feimage", "base", "form", "a":
			t.Errorf("the page has a <%s> element %v", e.Data, e.Attr)
		}
		for _, a := range e.Attr {
			switch strings.ToLower(a.Key) {
			case "src", "href", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href", "ping":
				t.Errorf("<%s> has %s=%q", e.Data, a.Key, a.Val)
			case "style":
				if urlRef.MatchString(a.Val) {
					t.Errorf("<%s> style uses url(...): %q", e.Data, a.Val)
				}
			}
			if strings.HasPrefix(strings.ToLower(a.Key), "on") {
				t.Errorf("<%s> has an event handler %s=%q", e.Data, a.Key, a.Val)
			}
		}
	}
	if scripts != 1 || styles != 1 {
		t.Errorf("the page has %d <script> and %d <style> elements; want its own one of each", scripts, styles)
	}
}

func emptySummary() *loadtest.Summary {
	return &loadtest.Summary{SchemaVersion: loadtest.SchemaVersion, Metrics: map[string]*loadtest.MetricStats{}, ErrorsByStatus: map[string]int{}}
}

// nonFinite is a run whose numbers went wrong: NaN and infinite values in
// its series, metrics and thresholds.
func nonFinite() *loadtest.Summary {
	s := synthetic(60)
	nan, inf := math.NaN(), math.Inf(1)
	for i := range s.Series {
		switch i % 7 {
		case 1:
			s.Series[i].P50, s.Series[i].P99 = nan, inf
		case 3:
			s.Series[i].ErrorRate = math.Inf(-1)
		}
	}
	s.Series[10].P95 = nan
	d := s.Metrics["http_req_duration"]
	d.P95, d.Max = nan, inf
	s.Metrics["http_req_failed"].Rate = nan
	s.Metrics["http_reqs"].Rate = inf
	return s
}

// singleSecond is a run that lasted less than a second.
func singleSecond() *loadtest.Summary {
	s := synthetic(1)
	s.Series[0] = loadtest.SecondStats{Time: s.Series[0].Time, Requests: 42, P50: 12, P95: 20, P99: 31, ErrorRate: 0.05, VUs: 5}
	s.Metrics["http_reqs"] = &loadtest.MetricStats{Type: loadtest.TypeCounter, Count: 42, Sum: 42, Rate: 84}
	s.Metrics["http_req_failed"] = &loadtest.MetricStats{Type: loadtest.TypeRate, Count: 42, Rate: 0.05}
	s.Metrics["http_req_duration"] = &loadtest.MetricStats{Type: loadtest.TypeTrend, Count: 42, Min: 4, Max: 35, Mean: 14, P50: 12, P90: 18, P95: 20, P99: 31}
	s.Metrics["vus"] = &loadtest.MetricStats{Type: loadtest.TypeGauge, Max: 5, Value: 5}
	return s
}

// withGaps is a run with seconds missing from its series (k6 wrote no
// samples in them).
func withGaps() *loadtest.Summary {
	s := synthetic(120)
	s.Series = append(s.Series[:30:30], s.Series[45:]...)
	return s
}

func TestWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		s      *loadtest.Summary
		opt    Options
		charts int      // charts drawn; the others say why not
		want   []string // text on the page
	}{
		{"five minutes", synthetic(300), syntheticOptions(), 4,
			[]string{"failed: 1 threshold crossed", "p(99)<100", "✗ crossed", "0 (no response)", "5m0s"}},
		{"empty", emptySummary(), Options{}, 0,
			[]string{"Load test", "No request completed", "No HTTP requests were recorded.", "The script made no checks.", "No request failed."}},
		{"single second", singleSecond(), Options{Verdict: &Verdict{Passed: true}}, 4,
			[]string{"✓ passed"}},
		{"NaN and Inf", nonFinite(), Options{Thresholds: []Threshold{{Metric: "m", Expression: "avg<1", Value: math.NaN()}}}, 4,
			[]string{"NaN"}},
		{"gaps", withGaps(), Options{}, 4, nil},
		{"no requests, only VUs", func() *loadtest.Summary {
			s := synthetic(30)
			for i := range s.Series {
				s.Series[i].Requests = 0
			}
			return s
		}(), Options{}, 2, []string{"No request completed, so there are no latencies to chart."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, doc := render(t, tt.s, tt.opt)
			checkSelfContained(t, doc)
			page := text(doc)
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("the page does not say %q", w)
				}
			}
			if strings.Contains(out, "ZgotmplZ") {
				t.Errorf("html/template rejected a value (ZgotmplZ in the page)")
			}
			drawn, notes := 0, 0
			for _, id := range []string{"latency", "requests", "errors", "vus"} {
				fig := byID(doc, "chart-"+id)
				if fig == nil {
					t.Fatalf("no chart-%s figure", id)
				}
				for _, e := range elements(fig) {
					switch {
					case e.Data == "svg":
						drawn++
					case e.Data == "p" && strings.Contains(text(e), "No "):
						notes++
					}
				}
			}
			if drawn != tt.charts || notes != 4-tt.charts {
				t.Errorf("%d charts and %d notes; want %d charts and notes for the others", drawn, notes, tt.charts)
			}
		})
	}
}

func TestWriteEscapes(t *testing.T) {
	t.Parallel()
	s := synthetic(10)
	evil := `<script>alert("title")</script>`
	opt := Options{
		Title:   evil,
		Target:  `javascript:alert(1)//"><img src=x>`,
		Verdict: &Verdict{Text: `</strong><b>bold</b>`, Reasons: []string{`<iframe src="https://evil.example"></iframe>`}},
		Thresholds: []Threshold{
			{Metric: `<svg onload=alert(1)>`, Expression: `p(95)<200 && "quoted" 'single'`, Value: 1},
		},
	}
	out, doc := render(t, s, opt)
	checkSelfContained(t, doc)
	for _, raw := range []string{`<script>alert`, `<img src=x`, `<iframe`, `<b>bold`, `<svg onload`, `<style>body{background:url(`} {
		if strings.Contains(out, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	if got := text(byID(doc, "verdict")); !strings.Contains(got, opt.Verdict.Text) || !strings.Contains(got, opt.Verdict.Reasons[0]) {
		t.Errorf("verdict text = %q; want the verdict and its reason as text", got)
	}
	var names []string
	for _, row := range cells(t, doc, "groups") {
		names = append(names, row[0])
	}
	for _, want := range []string{hostileGroup, unicodeGroup, "http://127.0.0.1:8080" + longURL} {
		if !strings.Contains(strings.Join(names, "\n"), want) {
			t.Errorf("request names %q; want %q as text", names, want)
		}
	}
	checks := cells(t, doc, "checks")
	if len(checks) != 3 || checks[2][0] != "::"+unicodeGroup || checks[2][1] != hostileCheck {
		t.Errorf("checks table = %q; want the hostile check by its unicode group", checks)
	}
	if th := cells(t, doc, "thresholds"); len(th) != 1 || th[0][0] != opt.Thresholds[0].Metric || th[0][1] != opt.Thresholds[0].Expression {
		t.Errorf("thresholds table = %q; want the metric and expression as text", th)
	}
	var title string
	for _, e := range elements(doc) {
		if e.Data == "title" {
			title = text(e)
		}
	}
	if !strings.HasPrefix(title, evil) {
		t.Errorf("<title> = %q; want it to start with %q", title, evil)
	}
}

// TestWriteOffline checks the raw page of a run with no URL in it: no
// http:// or https:// anywhere (the SVG namespaces included), and a
// content security policy that would block any load.
func TestWriteOffline(t *testing.T) {
	t.Parallel()
	s := synthetic(120)
	for i := range s.Groups {
		s.Groups[i].Name = strings.TrimPrefix(s.Groups[i].Name, "http://127.0.0.1:8080")
	}
	s.Checks = s.Checks[:2] // not the hostile one, which names a URL
	out, doc := render(t, s, Options{Title: "offline"})
	for _, scheme := range []string{"http://", "https://", "//evil", "data:font", "@import", "@font-face"} {
		if strings.Contains(out, scheme) {
			i := strings.Index(out, scheme)
			t.Errorf("the page holds %q: …%s…", scheme, out[max(0, i-60):min(len(out), i+60)])
		}
	}
	var csp string
	for _, e := range elements(doc) {
		if v, _ := attr(e, "http-equiv"); strings.EqualFold(v, "Content-Security-Policy") {
			csp, _ = attr(e, "content")
		}
	}
	if !strings.HasPrefix(csp, "default-src 'none';") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("content security policy = %q; want default-src 'none' and the script's hash", csp)
	}
}

// fixedColor finds a color written as #RRGGBB in the charts, which would not
// follow the theme.
var fixedColor = regexp.MustCompile(`#[0-9A-Fa-f]{6}\b`)

func TestChartsFollowTheTheme(t *testing.T) {
	t.Parallel()
	cs, err := charts(synthetic(300))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		svg := string(c.SVG)
		if m := fixedColor.FindString(svg); m != "" {
			t.Errorf("%s chart has the fixed color %s", c.ID, m)
		}
		if strings.Contains(svg, "Liberation") {
			t.Errorf("%s chart names gonum's font instead of the page's", c.ID)
		}
		if !strings.Contains(svg, "var(--chart-ink)") || !strings.Contains(svg, "var(--chart-grid)") {
			t.Errorf("%s chart does not draw its axes and grid in the theme's colors", c.ID)
		}
		if !strings.HasPrefix(svg, `<svg class="chart" viewBox=`) || strings.Contains(svg, "<?xml") {
			t.Errorf("%s chart is not an inline <svg>: %.80s", c.ID, svg)
		}
	}
}

// seriesPaths counts the points of each path of an SVG that draws a series.
func seriesPaths(svg string) []int {
	var n []int
	for _, m := range regexp.MustCompile(`<path d="([^"]*)"\s*style="[^"]*stroke:var\(--chart-[1-4]\)`).FindAllStringSubmatch(svg, -1) {
		n = append(n, strings.Count(m[1], "M")+strings.Count(m[1], "L"))
	}
	return n
}

func TestChartSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		seconds   int
		maxBytes  int
		maxPoints int
	}{
		{"10 minutes", 600, 200 << 10, 600},
		{"24 hours", 24 * 3600, 300 << 10, maxPoints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := Write(&buf, synthetic(tt.seconds), syntheticOptions()); err != nil {
				t.Fatal(err)
			}
			if buf.Len() > tt.maxBytes {
				t.Errorf("report of %d s is %d bytes; want at most %d", tt.seconds, buf.Len(), tt.maxBytes)
			}
			cs, err := charts(synthetic(tt.seconds))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				paths := seriesPaths(string(c.SVG))
				if len(paths) == 0 {
					t.Errorf("%s chart draws no series", c.ID)
				}
				for _, n := range paths {
					if n < tt.maxPoints/2 || n > tt.maxPoints {
						t.Errorf("%s chart has a line of %d points; want %d to %d", c.ID, n, tt.maxPoints/2, tt.maxPoints)
					}
				}
			}
		})
	}
}

func TestTablesKeepTheirSize(t *testing.T) {
	t.Parallel()
	var groups []loadtest.GroupStats
	var checks []loadtest.CheckStats
	for i := range maxRows + 100 {
		groups = append(groups, loadtest.GroupStats{Name: fmt.Sprintf("/item/%04d", i), Method: "GET", Status: "200", Count: int64(i)})
		checks = append(checks, loadtest.CheckStats{Name: fmt.Sprintf("check %04d", i), Passes: 1, Fails: int64(i % 3)})
	}
	rows, hidden, _ := groupRows(groups)
	if len(rows) != maxRows || hidden != 100 || rows[0].Name != "/item/0100" || rows[maxRows-1].Name != fmt.Sprintf("/item/%04d", maxRows+99) {
		t.Errorf("groups: %d rows from %s to %s, %d hidden; want the %d busiest in name order, 100 hidden", len(rows), rows[0].Name, rows[len(rows)-1].Name, hidden, maxRows)
	}
	crows, chidden := checkRows(checks)
	failing := 0
	for _, c := range crows {
		if c.Failed {
			failing++
		}
	}
	if len(crows) != maxRows || chidden != 100 || failing != 400 {
		t.Errorf("checks: %d rows (%d failing), %d hidden; want %d rows with all 400 failing checks, 100 hidden", len(crows), failing, chidden, maxRows)
	}
}

func TestNewTimeline(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(i int, reqs int64, p99, errRate float64, vus int) loadtest.SecondStats {
		return loadtest.SecondStats{Time: t0.Add(time.Duration(i) * time.Second), Requests: reqs, P50: p99 / 4, P95: p99 / 2, P99: p99, ErrorRate: errRate, VUs: vus}
	}
	t.Run("a second with no requests has no latency", func(t *testing.T) {
		tl := newTimeline([]loadtest.SecondStats{sec(0, 10, 40, 0.1, 2), sec(1, 0, 0, 0, 3), sec(3, 5, 80, 0, 1)})
		if tl.step != 1 || len(tl.x) != 3 || tl.x[2] != 3 {
			t.Fatalf("x = %v step %v; want seconds 0, 1 and 3", tl.x, tl.step)
		}
		if !math.IsNaN(tl.p99[1]) || !math.IsNaN(tl.errorRate[1]) || tl.rps[1] != 0 || tl.vus[1] != 3 {
			t.Errorf("second 1: p99 %v, error rate %v, rps %v, vus %v; want no latency or error rate, 0 req/s, 3 VUs", tl.p99[1], tl.errorRate[1], tl.rps[1], tl.vus[1])
		}
		if tl.errorRate[0] != 10 {
			t.Errorf("error rate of second 0 = %v %%; want 10", tl.errorRate[0])
		}
	})
	t.Run("long runs merge seconds", func(t *testing.T) {
		var series []loadtest.SecondStats
		for i := range 3 * maxPoints {
			p99, errRate := 10.0, 0.0
			if i == 4 {
				p99, errRate = 500, 0.5
			}
			series = append(series, sec(i, 100, p99, errRate, i%7))
		}
		tl := newTimeline(series)
		if tl.step != 3 || len(tl.x) != maxPoints {
			t.Fatalf("step %v, %d points; want buckets of 3 s, %d of them", tl.step, len(tl.x), maxPoints)
		}
		if tl.p99[1] != 500 || tl.rps[1] != 100 || tl.vus[1] != 5 || math.Abs(tl.errorRate[1]-100.0/6) > 1e-9 {
			t.Errorf("bucket 1: p99 %v, rps %v, vus %v, error rate %v; want the worst p99 500, 100 req/s, peak 5 VUs, 16.7 %%", tl.p99[1], tl.rps[1], tl.vus[1], tl.errorRate[1])
		}
	})
}

func TestSegments(t *testing.T) {
	t.Parallel()
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		x, y []float64
		want []int // points per segment
	}{
		{"whole", []float64{0, 1, 2}, []float64{1, 2, 3}, []int{3}},
		{"single", []float64{0}, []float64{5}, []int{1}},
		{"NaN splits", []float64{0, 1, 2, 3}, []float64{1, nan, 3, 4}, []int{1, 2}},
		{"Inf splits", []float64{0, 1, 2}, []float64{inf, 2, -inf}, []int{1}},
		{"gap splits", []float64{0, 1, 5, 6}, []float64{1, 1, 1, 1}, []int{2, 2}},
		{"nothing", []float64{0, 1}, []float64{nan, nan}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []int
			for _, s := range segments(tt.x, tt.y, 1) {
				got = append(got, len(s))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("segments = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestValueTicks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		max    float64
		whole  bool
		top    float64
		labels string
	}{
		{0, false, 1, "0.00 0.25 0.50 0.75 1.00"},
		{math.NaN(), false, 1, "0.00 0.25 0.50 0.75 1.00"},
		{1, false, 1, "0.00 0.25 0.50 0.75 1.00"},
		{7.3, false, 8, "0 2 4 6 8"},
		{10, false, 10, "0.0 2.5 5.0 7.5 10.0"},
		{420, false, 600, "0 200 400 600"},
		{0.004, false, 0.004, "0.000 0.001 0.002 0.003 0.004"},
		{123456, false, 150000, "0 50000 100000 150000"},
		{0, true, 1, "0 1"},
		{3, true, 3, "0 1 2 3"},
		{10, true, 10, "0 5 10"},
		{50, true, 60, "0 20 40 60"},
	}
	for _, tt := range tests {
		top, ticks := valueTicks(tt.max, tt.whole)
		var labels []string
		for _, tk := range ticks {
			labels = append(labels, tk.Label)
		}
		if top != tt.top || strings.Join(labels, " ") != tt.labels {
			t.Errorf("valueTicks(%v, %v) = %v, %q; want %v, %q", tt.max, tt.whole, top, labels, tt.top, tt.labels)
		}
	}
}

func TestElapsedTicks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		max    float64
		labels string
	}{
		{1, "0:00 0:01"},
		{4, "0:00 0:01 0:02 0:03 0:04"},
		{299, "0:00 1:00 2:00 3:00 4:00"},
		{3 * 3600, "0:00 30:00 1:00:00 1:30:00 2:00:00 2:30:00 3:00:00"},
		{30 * 86400, "0:00 192:00:00 384:00:00 576:00:00"},
	}
	for _, tt := range tests {
		var labels []string
		for _, tk := range elapsedTicks(0, tt.max) {
			labels = append(labels, tk.Label)
		}
		if got := strings.Join(labels, " "); got != tt.labels {
			t.Errorf("elapsedTicks(0, %v) = %q; want %q", tt.max, got, tt.labels)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{formatMs(0.4321), "0.43 ms"},
		{formatMs(42.26), "42.3 ms"},
		{formatMs(420.6), "421 ms"},
		{formatMs(12345), "12.3 s"},
		{formatMs(math.NaN()), "—"},
		{formatCount(1234567), "1\u202f234\u202f567"},
		{formatCount(999), "999"},
		{formatCount(math.Inf(1)), "—"},
		{formatPercent(0.0123), "1.23 %"},
		{formatPercent(0.00001), "<0.01 %"},
		{formatPercent(0), "0.00 %"},
		{formatRate(382.4), "382"},
		{formatRate(2.25), "2.2"},
		{formatDuration(4500 * time.Millisecond), "4.5s"},
		{formatDuration(10*time.Minute + 400*time.Millisecond), "10m0s"},
		{formatValue(0.0123), "0.0123"},
		{formatValue(math.Inf(-1)), "-Inf"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q; want %q", i, tt.got, tt.want)
		}
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "report.html")
	if err := WriteFile(path, synthetic(5), Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("<!DOCTYPE html>")) {
		t.Errorf("read %s: %v, %.40q; want an HTML page", path, err, b)
	}
	err = WriteFile(filepath.Join(t.TempDir(), "missing", "report.html"), synthetic(5), Options{})
	if err == nil || !strings.Contains(err.Error(), "report: write") {
		t.Errorf("WriteFile into a missing directory: %v; want a write error", err)
	}
	if err := Write(&bytes.Buffer{}, nil, Options{}); err == nil {
		t.Error("Write(nil summary) succeeded; want an error")
	}
}
