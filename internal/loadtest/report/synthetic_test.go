package report

import (
	"math"
	"strconv"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// Names that try to break out of the page's HTML, CSS and script, and names
// that a plain ASCII page would garble.
const (
	hostileGroup = `</td></tr></table><script>alert("group")</script><img src=x onerror=alert(1)>`
	hostileCheck = `"><style>body{background:url(//evil.example/x.png)}</style>`
	unicodeGroup = "Grüße 🚀 — 日本語 & <café>"
	longURL      = "/search?q=" + "averyveryverylongqueryparameterwithoutanybreaks" + "&page=12345678901234567890&sort=relevance&filter=category:books,electronics,garden&session=0123456789abcdef0123456789abcdef"
)

// synthetic returns the summary of a run of the given seconds that ramps
// its VUs up and down, with a latency and error spike at 60 % of the run.
func synthetic(seconds int) *loadtest.Summary {
	start := time.Date(2026, 3, 1, 12, 0, 0, 250e6, time.UTC)
	s := &loadtest.Summary{
		SchemaVersion:  loadtest.SchemaVersion,
		Start:          start,
		End:            start.Add(time.Duration(seconds)*time.Second - 500*time.Millisecond),
		Metrics:        map[string]*loadtest.MetricStats{},
		ErrorsByStatus: map[string]int{},
	}
	var total, failed float64
	maxP99, peakVUs := 0.0, 0
	for i := range seconds {
		f := float64(i) / float64(max(seconds-1, 1))
		vus := 50.0
		switch {
		case f < 0.2:
			vus = 50 * f / 0.2
		case f > 0.9:
			vus = 50 * (1 - f) / 0.1
		}
		spike := math.Exp(-math.Pow((f-0.6)*25, 2))
		p50 := 18 + 4*math.Sin(float64(i)/7) + 30*spike
		sec := loadtest.SecondStats{
			Time:      start.Truncate(time.Second).Add(time.Duration(i) * time.Second),
			Requests:  int64(math.Round(vus*9 + 6*math.Sin(float64(i)/3))),
			P50:       p50,
			P95:       p50*2.1 + 3*math.Sin(float64(i)/5),
			P99:       p50*3.2 + 10*math.Abs(math.Sin(float64(i)/11)) + 250*spike,
			ErrorRate: 0.004 + 0.08*spike,
			VUs:       int(math.Round(vus)),
		}
		if sec.Requests <= 0 {
			sec.Requests, sec.P50, sec.P95, sec.P99, sec.ErrorRate = 0, 0, 0, 0, 0
		}
		total += float64(sec.Requests)
		failed += sec.ErrorRate * float64(sec.Requests)
		maxP99 = math.Max(maxP99, sec.P99)
		peakVUs = max(peakVUs, sec.VUs)
		s.Series = append(s.Series, sec)
	}
	dur := s.End.Sub(s.Start).Seconds()
	s.Metrics["http_reqs"] = &loadtest.MetricStats{Type: loadtest.TypeCounter, Count: int64(total), Sum: total, Rate: total / dur}
	s.Metrics["http_req_failed"] = &loadtest.MetricStats{Type: loadtest.TypeRate, Count: int64(total), Rate: failed / total}
	s.Metrics["http_req_duration"] = &loadtest.MetricStats{Type: loadtest.TypeTrend, Count: int64(total), Min: 3.2, Max: maxP99 * 1.4, Mean: 24, P50: 19.4, P90: 38, P95: 44.7, P99: 121.3}
	s.Metrics["vus"] = &loadtest.MetricStats{Type: loadtest.TypeGauge, Max: float64(peakVUs), Value: 0}
	fail := int(math.Round(failed))
	s.ErrorsByStatus["500"] = fail * 7 / 10
	s.ErrorsByStatus["0"] = fail / 10
	s.ErrorsByStatus["503"] = fail - fail*7/10 - fail/10
	n := int64(total)
	s.Groups = []loadtest.GroupStats{
		{Name: "http://127.0.0.1:8080/api/items", Method: "GET", Status: "200", Scenario: "browse", Count: n / 2, P50: 17.2, P95: 40.1, P99: 98.5, Max: 310},
		{Name: "http://127.0.0.1:8080/api/items", Method: "GET", Status: "500", Scenario: "browse", Count: int64(s.ErrorsByStatus["500"]), P50: 2.1, P95: 5.4, P99: 9.9, Max: 14},
		{Name: "http://127.0.0.1:8080" + longURL, Method: "GET", Status: "200", Scenario: "search", Count: n / 4, P50: 25.3, P95: 61.2, P99: 140.7, Max: 512.5},
		{Name: hostileGroup, Method: "POST", Status: "201", Scenario: "checkout", Count: n / 8, P50: 31, P95: 70, P99: 155, Max: 1320},
		{Name: unicodeGroup, Method: "PUT", Status: "503", Scenario: "checkout", Count: int64(s.ErrorsByStatus["503"]), P50: 1.2, P95: 2.2, P99: 4.8, Max: 12000},
	}
	s.Checks = []loadtest.CheckStats{
		{Name: "status is 200", Passes: n - int64(fail), Fails: int64(fail)},
		{Name: "body has items", Group: "::browse", Passes: n / 2},
		{Name: hostileCheck, Group: "::" + unicodeGroup, Passes: 10, Fails: 1},
	}
	return s
}

// syntheticOptions are report options with a failed verdict and thresholds.
func syntheticOptions() Options {
	return Options{
		Title:  "Load test · checkout & search",
		Target: "http://127.0.0.1:8080" + longURL,
		Verdict: &Verdict{
			Text:    "failed: 1 threshold crossed",
			Reasons: []string{"http_req_duration p(99)<100 crossed: 121.3", "error rate " + strconv.Quote("<1%") + " held"},
		},
		Thresholds: []Threshold{
			{Metric: "http_req_duration", Expression: "p(95)<200", Value: 44.7, OK: true},
			{Metric: "http_req_duration", Expression: "p(99)<100", Value: 121.3, OK: false},
			{Metric: "http_req_failed", Expression: "rate<0.05", Value: 0.0123, OK: true},
		},
	}
}
