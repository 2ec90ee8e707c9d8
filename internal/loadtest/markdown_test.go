package loadtest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// markdownRun is thresholdRun with thresholds, compared with mixedRun as
// the baseline.
func markdownRun(t *testing.T) (*loadtest.Summary, *loadtest.Summary, []loadtest.Comparison) {
	t.Helper()
	th := map[string][]string{
		"http_req_duration":             {"p(95)<80", "p(99.9)<200", "avg<30", "med<100"},
		"http_req_duration{status:200}": {"p(90)<37.5"},
		"http_req_failed":               {"rate<0.1"},
		"http_reqs":                     {"count>3", "rate>1"},
		"checks":                        {"rate>0.5"},
		"my_counter":                    {"p(95)<1"},
	}
	s, err := loadtest.SummarizeWith(strings.NewReader(thresholdRun), loadtest.Options{Thresholds: th})
	if err != nil {
		t.Fatal(err)
	}
	base, err := loadtest.Summarize(strings.NewReader(mixedRun))
	if err != nil {
		t.Fatal(err)
	}
	limits, err := loadtest.ParseMaxRegression("p95=10%,error-rate=0.5pp,rps=-20%,checks=1pp")
	if err != nil {
		t.Fatal(err)
	}
	return s, base, loadtest.Compare(s, base, limits)
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	s, base, cmp := markdownRun(t)
	md := loadtest.Markdown(s, cmp, loadtest.MarkdownOptions{FailOn: loadtest.FailOn{Thresholds: true, Regression: true}, Baseline: base})
	lines := strings.Split(md, "\n")
	if want := "**❌ Load test failed:** 4 of 10 thresholds failed; regression vs baseline: p95 +233.3% (limit 10%), rps -37.5% (limit -20%) (not failing the run: 1 of 1 check failed (2 of 5 runs))"; lines[0] != want {
		t.Errorf("first line\n%s\nwant\n%s", lines[0], want)
	}
	for _, want := range []string{
		"5 requests in 4.0 s, from 2025-03-01 12:00:00 to 12:00:04 UTC.",
		"| Metric | This run | Thresholds | Baseline |",
		"| Requests | 5 | ✅ `count>3` | 4 ▲ +25.0% |",
		"| Throughput | 1.2/s | ✅ `rate>1` | 2.0/s ▼ -37.5% worse, ❌ beyond limit -20% |",
		"| Error rate | 20.00% | ❌ `rate<0.1` | 50.00% ▼ -30.00pp better, within limit 0.5pp |",
		"| Latency avg | 40.0 ms | ❌ `avg<30` | 16.2 ms ▲ +146.2% worse |",
		"| Latency p95 | 88.0 ms | ❌ `p(95)<80` | 30.0 ms ▲ +233.3% worse, ❌ beyond limit 10% |",
		"| Latency p99.9 | 99.8 ms | ✅ `p(99.9)<200` | – |",
		"| Latency max | 100 ms |  | 30.0 ms ▲ +233.3% worse |",
		"| Checks passed | 60.00% (2 of 5 failed) | ✅ `rate>0.5` | 50.00% ▲ +10.00pp better, within limit 1pp |",
		"| `http_req_duration` | `p(95)<80` | 88.0 ms |",
		"| `my_counter` | `p(95)<1` | error: p(N) does not apply to a counter metric; use count, rate |",
		"| `ok` | 2 of 5 (40.00%) |",
		"| 500 | 1 | 20.00% |",
		"| GET `http://app/` | 500 | 1 | 100 ms | 100 ms | 100 ms |",
		"<details><summary>All 10 thresholds</summary>",
		"| ✅ | `http_req_duration{status:200}` | `p(90)<37.5` | 37.0 ms |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the summary lacks the line\n%s\nin\n%s", want, md)
		}
	}
	order := []string{"**❌", "| Metric |", "**Failing thresholds**", "**Failing checks**", "**Errors by status**", "**Slowest requests**", "<details>"}
	last := -1
	for _, h := range order {
		i := strings.Index(md, h)
		if i <= last {
			t.Errorf("%q is not after %q", h, order[max(0, len(order)-1)])
		}
		last = i
	}
}

func TestMarkdownWithoutBaselineOrThresholds(t *testing.T) {
	t.Parallel()
	s, err := loadtest.Summarize(strings.NewReader(mixedRun))
	if err != nil {
		t.Fatal(err)
	}
	md := loadtest.Markdown(s, nil, loadtest.MarkdownOptions{Title: "Staging *smoke*", FailOn: loadtest.FailOn{Thresholds: true}})
	if first := strings.SplitN(md, "\n", 2)[0]; first != `**✅ Staging \*smoke\* passed (not failing the run: 1 of 1 check failed (2 of 4 runs))**` {
		t.Errorf("first line %q", first)
	}
	for _, unwanted := range []string{"Thresholds |", "Baseline |", "Failing thresholds", "<details>"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("the summary has %q without thresholds or a baseline:\n%s", unwanted, md)
		}
	}
	if !strings.Contains(md, "| 0 (no response) | 1 | 25.00% |") {
		t.Errorf("the summary lacks the requests without a response:\n%s", md)
	}
	// Comparisons without the baseline summary still fill their rows.
	limits, _ := loadtest.ParseMaxRegression("p95=10%")
	cmp := loadtest.Compare(s, s, limits)
	md = loadtest.Markdown(s, cmp, loadtest.MarkdownOptions{})
	if !strings.Contains(md, "| Latency p95 | 30.0 ms | 30.0 ms (same), within limit 10% |") || !strings.Contains(md, "| Latency p50 | 10.0 ms | – |") {
		t.Errorf("the rows with and without a limit are wrong:\n%s", md)
	}
}

// evil is user text that would break or abuse Markdown if written as is.
const evil = "a|b`c``d\ne\r\tf <script>alert(1)</script> @octocat [x](http://evil.example) **bold** \u202eevil\xff"

// hostileRun is a run with thousands of long, hostile names everywhere.
func hostileRun() *loadtest.Summary {
	s := &loadtest.Summary{
		SchemaVersion:  loadtest.SchemaVersion,
		Start:          time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		End:            time.Date(2025, 3, 1, 12, 10, 0, 0, time.UTC),
		Metrics:        map[string]*loadtest.MetricStats{"http_reqs": {Type: "counter", Count: 1e6, Sum: 1e6, Rate: 1666}},
		ErrorsByStatus: map[string]int{},
	}
	pad := strings.Repeat("Ünïcødé ✓ ", 1000)
	for i := range 10_000 {
		url := fmt.Sprintf("http://very-long-host.example.com/%d/", i) + strings.Repeat("segment/", 500) + "end"
		s.Groups = append(s.Groups, loadtest.GroupStats{Name: url, Method: "GET" + evil, Status: "200", Scenario: evil, Count: 100, P95: float64(i), P99: float64(i), Max: float64(i)})
		s.Checks = append(s.Checks, loadtest.CheckStats{Name: evil + pad, Group: "::" + evil, Passes: 1, Fails: int64(i + 1)})
		s.Thresholds = append(s.Thresholds, loadtest.ThresholdResult{Metric: "http_req_duration{name:" + evil + pad + "}", Expression: evil, Value: 1})
		s.ErrorsByStatus[fmt.Sprint(i)+evil] = i
	}
	s.ErrorsByStatus["0"] = 5
	return s
}

func TestMarkdownIsSafeAndBounded(t *testing.T) {
	t.Parallel()
	s := hostileRun()
	md := loadtest.Markdown(s, nil, loadtest.MarkdownOptions{Title: evil, FailOn: loadtest.FailOn{Thresholds: true, Checks: true}})
	if len(md) > 48<<10 {
		t.Errorf("the summary has %d bytes; want at most 48 KiB", len(md))
	}
	if !utf8.ValidString(md) || strings.ContainsAny(md, "\r\t\u202e") {
		t.Error("the summary has invalid UTF-8, a carriage return, a tab or a bidirectional override")
	}
	// Outside code spans, nothing of the user text is live Markdown or HTML.
	prose := stripCodeSpans(md)
	for _, live := range []string{"<script", "@octocat", "[x](", "**bold**"} {
		if strings.Contains(prose, live) {
			t.Errorf("%q is outside a code span", live)
		}
	}
	// Every row of a table has as many cells as its header.
	var cells int
	for i, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			cells = 0
			continue
		}
		n := unescapedPipes(line)
		if cells == 0 {
			cells = n
		} else if n != cells {
			t.Errorf("line %d has %d cell borders; its table %d: %s", i+1, n, cells, line)
		}
	}
	for _, want := range []string{
		"**Slowest requests**", "| GET", "http://very-long-host.example.com/9999/segment", "…", "segment/segment/end",
		"… and 9,980 more failing checks", "… and 9,980 more failing thresholds", "… and 9,991 more statuses", "… and 9,970 more thresholds",
		"10,000 of 10,001 (99.99%)", // the check failing most, first
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	if n := strings.Count(md, "http://very-long-host.example.com/"); n != 5 {
		t.Errorf("the summary shows %d requests; want the 5 slowest", n)
	}
}

// stripCodeSpans removes the inline code spans of Markdown text.
func stripCodeSpans(md string) string {
	var b strings.Builder
	for i := 0; i < len(md); {
		if md[i] == '\\' && i+1 < len(md) { // an escaped character
			b.WriteString(md[i : i+2])
			i += 2
			continue
		}
		if md[i] != '`' {
			b.WriteByte(md[i])
			i++
			continue
		}
		n := 0
		for i+n < len(md) && md[i+n] == '`' {
			n++
		}
		fence := md[i : i+n]
		rest := md[i+n:]
		end := -1
		for j := 0; j+n <= len(rest); j++ {
			if rest[j:j+n] == fence && (j+n == len(rest) || rest[j+n] != '`') && (j == 0 || rest[j-1] != '`') {
				end = j
				break
			}
		}
		if end < 0 {
			b.WriteString(fence)
			i += n
			continue
		}
		i += n + end + n
	}
	return b.String()
}

// unescapedPipes counts the cell borders of a table row.
func unescapedPipes(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}
