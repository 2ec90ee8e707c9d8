package loadtest_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// validationCase is a threshold with whether it is valid; k6Valid differs
// where k6 accepts what gantry rejects.
type validationCase struct {
	metric, expr string
	valid        bool
	k6Valid      bool   // what k6 2.x says (k6V1Accepts: where 1.x differs)
	wantErr      string // part of gantry's error
}

// validationCases are also given to k6 by TestValidateThresholdsAgreesWithK6.
var validationCases = []validationCase{
	{"http_req_duration", "p(95)<300", true, true, ""},
	{"http_req_duration", "p(99.9)<=1000", true, true, ""},
	{"http_req_duration", "  avg  <  200  ", true, true, ""},
	{"http_req_duration", "med>100", true, true, ""},
	{"http_req_duration", "min>=0", true, true, ""},
	{"http_req_duration", "max!=5", true, true, ""},
	{"http_req_duration", "avg===5", true, true, ""},
	{"http_req_duration", "avg==5", true, true, ""},
	{"http_req_duration", "p(0)>=0", true, true, ""},
	{"http_req_duration", "p(100)<=1e4", true, true, ""},
	{"http_req_duration", "avg>-1.5", true, true, ""},
	{"http_req_duration", "avg<Inf", true, true, ""},
	{"http_reqs", "count>10", true, true, ""},
	{"http_reqs", "rate>=1", true, true, ""},
	{"http_req_failed", "rate<0.01", true, true, ""},
	{"checks", "rate>0.9", true, true, ""},
	{"vus", "value>0", true, true, ""},
	{"http_req_duration{status:200}", "p(95)<300", true, true, ""},
	{"http_req_duration{name:login,method:GET}", "avg<200", true, true, ""},
	{"http_req_duration{ name : 'login' }", "avg<200", true, true, ""},
	{"http_req_duration{expected_response:true}", "p(90)<100", true, true, ""},
	{"http_req_duration{my_tag:x}", "avg<200", true, true, ""},

	{"http_req_duration", "p(95)<300ms", false, false, `"300ms" after < is not a number`},
	{"http_req_duration", "p(95)=300", false, false, "no operator"},
	{"http_req_duration", "p95<300", false, false, `unknown method "p95"`},
	{"http_req_duration", "p()<300", false, false, `percentile "p()" is not a number`},
	{"http_req_duration", "p(foo)<300", false, false, "is not a number"},
	{"http_req_duration", "p(99<300", false, false, `unknown method "p(99"`},
	{"http_req_duration", "p( 95 )<300", false, false, "is not a number"},
	{"http_req_duration", "foo>1", false, false, `unknown method "foo"`},
	{"http_req_duration", "avg<", false, false, "no operator"},
	{"http_req_duration", "<5", false, false, `unknown method ""`},
	{"http_req_duration", "avg<>5", false, false, `">5" after < is not a number`},
	{"http_req_duration", "avg!5", false, false, "no operator"},
	{"http_req_duration", "", false, false, "no operator"},
	{"http_reqs", "count>0x10", false, false, "is not a number"},
	{"http_reqs", "p(95)<3", false, false, "p(N) does not apply to a counter metric; use count, rate"},
	{"http_req_failed", "count>1", false, false, "count does not apply to a rate metric; use rate"},
	{"http_req_duration", "rate<1", false, false, "use avg, min, max, med, p(N)"},
	{"vus", "avg<1", false, false, "use value"},
	{"http_req_duration{status}", "avg<1", false, false, `tag "status" has no value`},
	{"http_req_duration{status:}", "avg<1", false, false, `tag "status:" has no value`},
	{"http_req_duration{a:1,}", "avg<1", false, false, `tag "" has no value`},
	{"http_req_duration{status:200", "avg<1", false, false, "unbalanced braces"},
	{"http_req_durationstatus:200}", "avg<1", false, false, "unbalanced braces"},
	{"http_req_duration}status:200{", "avg<1", false, false, "unbalanced braces"},
	{"http_req_duration{status:200}x", "avg<1", false, false, "unbalanced braces"},
	{"http_req_duration {status:200}", "avg<1", false, false, "is not a k6 metric name"},
	{"http_req_duration", "p(150)<300", false, false, "outside 0 to 100"},
}

// k6V1Accepts are the expressions of validationCases that k6 1.x accepts
// though 2.x rejects them: 1.x takes a percentile outside 0 to 100, then
// crashes on the first sample; 2.1 rejects it (k6 #6013), as gantry does.
var k6V1Accepts = map[string]bool{"p(150)<300": true}

// emptyTagName passes k6 v1.8.1's checks, but k6 then overflows its stack
// (1 GB) instead of running, so k6 is not asked about it.
var emptyTagName = validationCase{"http_req_duration{:x}", "avg<1", false, false, "has no name"}

func TestValidateThresholds(t *testing.T) {
	t.Parallel()
	for _, tt := range append(validationCases, emptyTagName) {
		err := loadtest.ValidateThresholds(map[string][]string{tt.metric: {tt.expr}})
		switch {
		case tt.valid && err != nil:
			t.Errorf("%s: %q: %v; want it valid", tt.metric, tt.expr, err)
		case !tt.valid && err == nil:
			t.Errorf("%s: %q is valid; want an error containing %q", tt.metric, tt.expr, tt.wantErr)
		case !tt.valid && (!strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.metric) || strings.Contains(err.Error(), "\n")):
			t.Errorf("%s: %q: error %q; want one line naming the metric and containing %q", tt.metric, tt.expr, err, tt.wantErr)
		}
	}
}

// thresholdRun has, over 4 seconds: five requests with durations 10, 20,
// 30 and 40 ms (status 200, team a) and 100 ms (status 500, team b), one
// failed; three passed and two failed checks; a vus gauge ending at 3; a
// custom counter and a custom trend.
var thresholdRun = func() string {
	var b []byte
	b = append(b, `{"type":"Metric","data":{"name":"http_reqs","type":"counter"},"metric":"http_reqs"}`+"\n"...)
	b = append(b, durationMetric...)
	b = append(b, `{"type":"Metric","data":{"name":"http_req_failed","type":"rate"},"metric":"http_req_failed"}`+"\n"...)
	b = append(b, `{"type":"Metric","data":{"name":"checks","type":"rate"},"metric":"checks"}`+"\n"...)
	b = append(b, `{"type":"Metric","data":{"name":"vus","type":"gauge"},"metric":"vus"}`+"\n"...)
	b = append(b, `{"type":"Metric","data":{"name":"my_counter","type":"counter"},"metric":"my_counter"}`+"\n"...)
	for i, ms := range []float64{10, 20, 30, 40, 100} {
		status, team, failed := "200", "a", 0.0
		if ms == 100 {
			status, team, failed = "500", "b", 1
		}
		tags := `{"method":"GET","name":"http://app/","scenario":"default","status":"` + status + `","team":"` + team + `","group":""}`
		at := t0.Add(time.Duration(i) * time.Second)
		b = appendPoint(b, "http_reqs", at, 1, tags)
		b = appendPoint(b, "http_req_duration", at, ms, tags)
		b = appendPoint(b, "http_req_failed", at, failed, tags)
		b = appendPoint(b, "checks", at, float64((i+1)%2), `{"check":"ok","group":""}`)
		b = appendPoint(b, "vus", at, []float64{1, 2, 4, 1, 3}[i], `{}`)
		b = appendPoint(b, "my_counter", at, 2, `{}`)
		b = appendPoint(b, "my_trend", at, ms/10, `{"team":"`+team+`"}`)
	}
	return string(b)
}()

// k6Percentile is k6's TrendSink.P: linear interpolation between ranks.
func k6Percentile(sorted []float64, p float64) float64 {
	switch len(sorted) {
	case 0:
		return 0
	case 1:
		return sorted[0]
	}
	i := p / 100 * float64(len(sorted)-1)
	lo, hi := sorted[int(math.Floor(i))], sorted[int(math.Ceil(i))]
	return lo + (hi-lo)*(i-math.Floor(i))
}

func TestSummarizeWithThresholds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		metric, expr string
		value        float64
		ok           bool
		samples      int64
		err          string
	}{
		{"http_req_duration", "p(95)<80", k6Percentile([]float64{10, 20, 30, 40, 100}, 95), false, 5, ""},
		{"http_req_duration", "p(95)<90", 88, true, 5, ""},
		{"http_req_duration", "p(0)==10", 10, true, 5, ""},
		{"http_req_duration", "p(100)==100", 100, true, 5, ""},
		{"http_req_duration", "med==30", 30, false, 5, ""}, // 30 up to the histogram's 0.1%
		{"http_req_duration", "med<30.1", 30, true, 5, ""},
		{"http_req_duration", "avg==40", 40, true, 5, ""},
		{"http_req_duration", "min>10", 10, false, 5, ""},
		{"http_req_duration", "max<=100", 100, true, 5, ""},
		{"http_req_duration{status:200}", "p(90)<37.5", 37, true, 4, ""},
		{"http_req_duration{status:200}", "avg>25", 25, false, 4, ""},
		{"http_req_duration{ status : '500' }", "p(50)>=100", 100, true, 1, ""},
		{"http_req_duration{status:404}", "p(95)<1", 0, true, 0, ""},
		{"http_req_duration{status:404}", "avg>5", 0, false, 0, ""},
		{"http_req_duration{team:b,status:500}", "max==100", 100, true, 1, ""},
		{"http_req_duration{team:b,status:200}", "max<1", 0, true, 0, ""},
		{"http_reqs", "count==5", 5, true, 5, ""},
		{"http_reqs", "rate==1.25", 1.25, true, 5, ""}, // 5 over the 4 seconds from first to last sample
		{"http_reqs{status:500}", "count<1", 1, false, 1, ""},
		{"http_req_failed", "rate<0.1", 0.2, false, 5, ""},
		{"http_req_failed", "rate<=0.2", 0.2, true, 5, ""},
		{"checks", "rate>0.5", 0.6, true, 5, ""},
		{"checks{check:ok}", "rate>0.6", 0.6, false, 5, ""},
		{"vus", "value==3", 3, true, 5, ""},
		{"vus", "value===3", 3, true, 5, ""},
		{"vus", "value!=3", 3, false, 5, ""},
		{"vus", "value>=3", 3, true, 5, ""},
		{"vus", "value>3", 3, false, 5, ""},
		{"vus", "value<=-1", 3, false, 5, ""},
		{"vus", "value < 3.5", 3, true, 5, ""},
		{"my_counter", "count>=10", 10, true, 5, ""},
		{"my_counter", "p(95)<1", 0, false, 5, "p(N) does not apply to a counter metric"},
		{"my_trend{team:a}", "max==4", 4, true, 4, ""}, // an undeclared metric and a tag the summary does not decode
		{"my_rate", "rate<0.1", 0, true, 0, ""},        // no samples: k6 has no rate and passes
		{"my_other_trend", "p(99)<1", 0, true, 0, ""},
	}
	th := map[string][]string{}
	for _, tt := range tests {
		th[tt.metric] = append(th[tt.metric], tt.expr)
	}
	s, err := loadtest.SummarizeWith(strings.NewReader(thresholdRun), loadtest.Options{Thresholds: th})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Thresholds) != len(tests) {
		t.Fatalf("got %d threshold results; want %d: %+v", len(s.Thresholds), len(tests), s.Thresholds)
	}
	got := map[[2]string]loadtest.ThresholdResult{}
	for i, r := range s.Thresholds {
		got[[2]string{r.Metric, r.Expression}] = r
		if i > 0 && s.Thresholds[i-1].Metric > r.Metric {
			t.Errorf("results not sorted by metric: %s after %s", r.Metric, s.Thresholds[i-1].Metric)
		}
	}
	for _, tt := range tests {
		r, ok := got[[2]string{tt.metric, tt.expr}]
		switch {
		case !ok:
			t.Errorf("%s %s: no result", tt.metric, tt.expr)
		case r.OK != tt.ok || r.Samples != tt.samples || math.Abs(r.Value-tt.value) > 0.001*math.Abs(tt.value) || !strings.Contains(r.Error, tt.err) || (tt.err == "") != (r.Error == ""):
			t.Errorf("%s %s = %+v; want value %v, ok %v, %d samples, error %q", tt.metric, tt.expr, r, tt.value, tt.ok, tt.samples, tt.err)
		}
	}
	// Sub-metrics appear in the metrics, as in k6's summary.
	if m := s.Metrics["http_req_duration{status:200}"]; m == nil || m.Type != loadtest.TypeTrend || m.Count != 4 || m.Max != 40 {
		t.Errorf("metric http_req_duration{status:200} = %+v; want a trend of the 4 samples up to 40", m)
	}
	if m := s.Metrics["http_req_duration{status:404}"]; m == nil || m.Count != 0 {
		t.Errorf("metric http_req_duration{status:404} = %+v; want an empty trend", m)
	}
}

func TestSummarizeKeepsWorkingWithoutThresholds(t *testing.T) {
	t.Parallel()
	plain, err := loadtest.Summarize(strings.NewReader(thresholdRun))
	if err != nil {
		t.Fatal(err)
	}
	with, err := loadtest.SummarizeWith(strings.NewReader(thresholdRun), loadtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain, with) || plain.Thresholds == nil || len(plain.Thresholds) != 0 {
		t.Errorf("Summarize and SummarizeWith without thresholds differ, or report thresholds: %+v", plain.Thresholds)
	}
}

func TestSummarizeWithRejectsBadThresholdsBeforeReading(t *testing.T) {
	t.Parallel()
	r := &lineReader{n: 1, line: func(dst []byte, _ int) []byte { panic("read the stream") }}
	_, err := loadtest.SummarizeWith(r, loadtest.Options{Thresholds: map[string][]string{"http_req_duration": {"p95<300"}}})
	if err == nil || !strings.Contains(err.Error(), `threshold "p95<300" on http_req_duration`) {
		t.Errorf("error = %v; want one naming the bad threshold", err)
	}
}

// TestThresholdPercentilesMatchK6 compares percentile thresholds over many
// samples with k6's own interpolation over the exact values.
func TestThresholdPercentilesMatchK6(t *testing.T) {
	t.Parallel()
	const samples = 100_000
	r := rand.New(rand.NewPCG(3, 9))
	values := make([]float64, samples)
	for i := range values {
		values[i] = math.Exp(math.Log(80) + 0.6*r.NormFloat64())
	}
	ps := []float64{0, 1, 50, 90, 95, 99, 99.9, 99.99, 100}
	var exprs []string
	for _, p := range ps {
		exprs = append(exprs, "p("+strconv.FormatFloat(p, 'g', -1, 64)+")<1e9")
	}
	exprs = append(exprs, "med<1e9")
	s, err := loadtest.SummarizeWith(durationStream(samples, 1000, func(i int) float64 { return values[i] }),
		loadtest.Options{Thresholds: map[string][]string{"http_req_duration": exprs}})
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Sorted(slices.Values(values))
	for i, p := range append(ps, 50) {
		got := s.Thresholds[i]
		if want := k6Percentile(sorted, p); relErr(got.Value, want) > 0.001 || !got.OK {
			t.Errorf("%s = %v; k6 computes %v (%.4f%% off)", got.Expression, got.Value, want, 100*relErr(got.Value, want))
		}
	}
}

func TestParseThresholdFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		want    map[string][]string
		wantErr string
	}{
		{"one", "http_req_duration:p(95)<300", map[string][]string{"http_req_duration": {"p(95)<300"}}, ""},
		{"lines, comments, spaces and repeats", "\n# latency\n http_req_duration : p(95)<300 \nhttp_req_duration:p(99) < 1000, p(95)<300\n\nhttp_req_failed:rate<0.01\n",
			map[string][]string{"http_req_duration": {"p(95)<300", "p(99) < 1000"}, "http_req_failed": {"rate<0.01"}}, ""},
		{"selector with colons and commas", "http_req_duration{status:200,method:GET}:p(99)<1000",
			map[string][]string{"http_req_duration{status:200,method:GET}": {"p(99)<1000"}}, ""},
		{"empty", " \n# nothing\n", map[string][]string{}, ""},
		{"no colon", "http_req_duration p(95)<300", nil, `threshold line 1 "http_req_duration p(95)<300": want METRIC:EXPRESSION`},
		{"no metric", ":p(95)<300", nil, "want METRIC:EXPRESSION"},
		{"no expression", "http_req_duration:", nil, "want METRIC:EXPRESSION"},
		{"bad expression", "http_req_duration:p(95)<300\nhttp_req_duration:p(95)<3s", nil, `threshold "p(95)<3s" on http_req_duration: "3s" after < is not a number`},
		{"empty expression", "http_req_duration:p(95)<300,", nil, "no operator"},
		{"wrong method", "http_reqs:p(95)<3", nil, "p(N) does not apply to a counter metric"},
		{"bad selector", "http_req_duration{status}:p(95)<3", nil, `tag "status" has no value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadtest.ParseThresholdFlag(tt.text)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ParseThresholdFlag: %v", err)
			case tt.wantErr == "" && !reflect.DeepEqual(got, tt.want):
				t.Errorf("ParseThresholdFlag = %q; want %q", got, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n")):
				t.Errorf("ParseThresholdFlag error = %v; want one line containing %q", err, tt.wantErr)
			}
		})
	}
}

// inspectOutput is what k6 v1.8.1's inspect prints (trimmed) for thresholds
// in both forms: an object with abortOnFail true stays an object, with
// abortOnFail false it becomes a string.
const inspectOutput = `{
  "paused": null,
  "vus": 1,
  "iterations": 3,
  "thresholds": {
    "checks": [
      "rate\u003e0.9"
    ],
    "http_req_duration": [
      "p(95)\u003c300",
      {
        "threshold": "p(99.9)\u003c=1000",
        "abortOnFail": true,
        "delayAbortEval": "10s"
      }
    ],
    "http_req_duration{name:login}": [
      "avg\u003c200"
    ],
    "http_req_failed": [
      "rate\u003c0.01"
    ]
  },
  "blacklistIPs": null
}`

func TestThresholdsFromInspect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		json    string
		want    map[string][]string
		wantErr string
	}{
		{"both forms", inspectOutput, map[string][]string{
			"checks":                        {"rate>0.9"},
			"http_req_duration":             {"p(95)<300", "p(99.9)<=1000"},
			"http_req_duration{name:login}": {"avg<200"},
			"http_req_failed":               {"rate<0.01"},
		}, ""},
		{"no thresholds", `{"vus": 1, "thresholds": null}`, map[string][]string{}, ""},
		{"not JSON", `Error: could not load script`, nil, "read the output of k6 inspect"},
		{"object without threshold", `{"thresholds": {"checks": [{"abortOnFail": true}]}}`, nil, `threshold {"abortOnFail": true} on checks is neither a string nor an object with a threshold field`},
		{"number", `{"thresholds": {"checks": [5]}}`, nil, "threshold 5 on checks is neither"},
		{"invalid expression", `{"thresholds": {"checks": ["rate>>1"]}}`, nil, `threshold "rate>>1" on checks`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadtest.ThresholdsFromInspect([]byte(tt.json))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ThresholdsFromInspect: %v", err)
			case tt.wantErr == "" && !reflect.DeepEqual(got, tt.want):
				t.Errorf("ThresholdsFromInspect = %q; want %q", got, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("ThresholdsFromInspect error = %v; want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMergeThresholds(t *testing.T) {
	t.Parallel()
	script := map[string][]string{"http_req_duration": {"p(95)<300", "avg<100"}, "checks": {"rate>0.9"}}
	extra := map[string][]string{"http_req_duration": {"p(99)<1000", "p(95)<300"}, "http_req_failed": {"rate<0.01"}}
	want := map[string][]string{
		"http_req_duration": {"p(95)<300", "avg<100", "p(99)<1000"},
		"checks":            {"rate>0.9"},
		"http_req_failed":   {"rate<0.01"},
	}
	if got := loadtest.MergeThresholds(script, nil, extra); !reflect.DeepEqual(got, want) {
		t.Errorf("MergeThresholds = %q; want %q", got, want)
	}
	if got := script["http_req_duration"]; len(got) != 2 {
		t.Errorf("MergeThresholds changed its input: %q", got)
	}
}

// TestSummarizeWithThresholdsMemoryIsConstant is
// TestSummarizeMemoryIsConstant with thresholds on sub-metrics that every
// sample matches, one of them on a tag decoded per sample.
func TestSummarizeWithThresholdsMemoryIsConstant(t *testing.T) {
	const samples, perSecond, limit = 1_000_000, 10_000, 4 << 20
	r := rand.New(rand.NewPCG(7, 7))
	stream := durationStream(samples, perSecond, func(int) float64 { return math.Exp(math.Log(50) + 0.7*r.NormFloat64()) })
	var before, atEnd runtime.MemStats
	stream.atEOF = func() {
		runtime.GC()
		runtime.ReadMemStats(&atEnd)
	}
	th := map[string][]string{
		"http_req_duration":                              {"p(99.9)<1000", "med<100"},
		"http_req_duration{status:200}":                  {"p(95)<1000"},
		"http_req_duration{name:http://app/}":            {"p(99)<1000"},
		"http_req_duration{method:GET,scenario:default}": {"avg<1000"},
		"http_req_duration{proto:HTTP/1.1}":              {"p(90)<1000"},
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := loadtest.SummarizeWith(stream, loadtest.Options{Thresholds: th})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Metrics["http_req_duration{status:200}"].Count; got != samples {
		t.Fatalf("count of http_req_duration{status:200} = %d; want %d", got, samples)
	}
	if growth := int64(atEnd.HeapAlloc) - int64(before.HeapAlloc); growth > limit {
		t.Errorf("the heap grew by %d bytes while summarizing %d samples; want at most %d", growth, samples, limit)
	}
}
