package loadtest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
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

// t0 is the time of the first synthetic sample; it is not on a second
// boundary, like a real run.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 250_000_000, time.UTC)

const durationMetric = `{"type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"http_req_duration"}` + "\n"

// appendPoint appends one k6 Point line; tags is a JSON object.
func appendPoint(dst []byte, metric string, t time.Time, v float64, tags string) []byte {
	dst = append(dst, `{"type":"Point","metric":"`...)
	dst = append(dst, metric...)
	dst = append(dst, `","data":{"time":"`...)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","value":`...)
	dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	dst = append(dst, `,"tags":`...)
	dst = append(dst, tags...)
	return append(dst, "}}\n"...)
}

// lineReader generates k6 output line by line, so a test can feed millions
// of samples without holding them; atEOF runs once, before the first EOF.
type lineReader struct {
	n, i    int
	line    func(dst []byte, i int) []byte
	buf     []byte
	pending []byte
	atEOF   func()
}

func (r *lineReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.i == r.n {
			if r.atEOF != nil {
				r.atEOF()
				r.atEOF = nil
			}
			return 0, io.EOF
		}
		r.buf = r.line(r.buf[:0], r.i)
		r.pending = r.buf
		r.i++
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// durationStream returns k6 output with n http_req_duration samples,
// perSecond of them per second from t0; sample i is value(i).
func durationStream(n, perSecond int, value func(i int) float64) *lineReader {
	const tags = `{"method":"GET","name":"http://app/","scenario":"default","status":"200"}`
	step := time.Second / time.Duration(perSecond)
	return &lineReader{
		n: n + 1,
		line: func(dst []byte, i int) []byte {
			if i == 0 {
				return append(dst, durationMetric...)
			}
			return appendPoint(dst, "http_req_duration", t0.Add(time.Duration(i-1)*step), value(i-1), tags)
		},
	}
}

// exactPercentile is the nearest-rank percentile of sorted values, with the
// rank rounded as HdrHistogram rounds it.
func exactPercentile(sorted []float64, p float64) float64 {
	rank := int(p/100*float64(len(sorted)) + 0.5)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func relErr(got, want float64) float64 {
	return math.Abs(got-want) / math.Abs(want)
}

func TestSummarizePercentilesWithinOnePercent(t *testing.T) {
	t.Parallel()
	const samples, perSecond, tolerance = 200_000, 1000, 0.01
	tests := []struct {
		name string
		ms   func(r *rand.Rand) float64
	}{
		{"lognormal around 100ms", func(r *rand.Rand) float64 { return math.Exp(math.Log(100) + 0.5*r.NormFloat64()) }},
		{"lognormal below a millisecond", func(r *rand.Rand) float64 { return math.Exp(math.Log(0.4) + 0.8*r.NormFloat64()) }},
		{"uniform 1ms to 5s", func(r *rand.Rand) float64 { return 1 + 4999*r.Float64() }},
		{"bimodal 20ms and 800ms", func(r *rand.Rand) float64 {
			if r.Float64() < 0.9 {
				return math.Abs(20 + 5*r.NormFloat64())
			}
			return math.Abs(800 + 100*r.NormFloat64())
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(42, uint64(i)))
			values := make([]float64, samples)
			for j := range values {
				values[j] = tt.ms(r)
			}
			s, err := loadtest.Summarize(durationStream(samples, perSecond, func(i int) float64 { return values[i] }))
			if err != nil {
				t.Fatal(err)
			}

			sorted := slices.Sorted(slices.Values(values))
			m := s.Metrics["http_req_duration"]
			if m == nil || m.Type != loadtest.TypeTrend || m.Count != samples {
				t.Fatalf("http_req_duration = %+v; want a trend of %d samples", m, samples)
			}
			var sum float64
			for _, v := range values {
				sum += v
			}
			if m.Min != sorted[0] || m.Max != sorted[samples-1] || relErr(m.Mean, sum/samples) > 1e-9 {
				t.Errorf("min/max/mean = %v/%v/%v; want %v/%v/%v", m.Min, m.Max, m.Mean, sorted[0], sorted[samples-1], sum/samples)
			}
			for _, p := range []struct {
				p   float64
				got float64
			}{{50, m.P50}, {90, m.P90}, {95, m.P95}, {99, m.P99}} {
				if want := exactPercentile(sorted, p.p); relErr(p.got, want) > tolerance {
					t.Errorf("p%v = %v; exact %v (%.3f%% off)", p.p, p.got, want, 100*relErr(p.got, want))
				}
			}
			if len(s.Groups) != 1 || s.Groups[0].Count != samples || s.Groups[0].P99 != m.P99 {
				t.Errorf("groups = %+v; want one group equal to the metric", s.Groups)
			}

			// Sample i falls in second (i+250)/1000 of the series, as t0 is 250ms into its second.
			offset := perSecond / 4
			if want := (samples + offset + perSecond - 1) / perSecond; len(s.Series) != want {
				t.Fatalf("series has %d seconds; want %d", len(s.Series), want)
			}
			for k, sec := range s.Series {
				from, to := max(0, k*perSecond-offset), min(samples, (k+1)*perSecond-offset)
				exact := slices.Sorted(slices.Values(values[from:to]))
				for _, p := range []struct {
					p   float64
					got float64
				}{{50, sec.P50}, {95, sec.P95}, {99, sec.P99}} {
					if want := exactPercentile(exact, p.p); relErr(p.got, want) > tolerance {
						t.Errorf("second %d: p%v = %v; exact %v", k, p.p, p.got, want)
					}
				}
			}
		})
	}
}

// mixedRun is a small run with every kind of metric the summary looks at:
// in its first second two requests (a 200 and a 500), in its second a 200
// and one that got no answer, one check per request.
const mixedRun = `{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
{"type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":["p(95)<500"],"submetrics":null},"metric":"http_req_duration"}
{"type":"Metric","data":{"name":"http_req_failed","type":"rate","contains":"default","thresholds":[],"submetrics":null},"metric":"http_req_failed"}
{"type":"Metric","data":{"name":"checks","type":"rate","contains":"default","thresholds":[],"submetrics":null},"metric":"checks"}
{"type":"Metric","data":{"name":"vus","type":"gauge","contains":"default","thresholds":[],"submetrics":null},"metric":"vus"}
{"type":"Metric","data":{"name":"data_received","type":"counter","contains":"data","thresholds":[],"submetrics":null},"metric":"data_received"}
{"type":"Point","data":{"time":"2025-03-01T12:00:00.25Z","value":2,"tags":null},"metric":"vus"}
{"type":"Point","data":{"time":"2025-03-01T12:00:00.3Z","value":1,"tags":{"method":"GET","name":"http://app/a","scenario":"default","status":"200"}},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-03-01T12:00:00.3Z","value":10,"tags":{"method":"GET","name":"http://app/a","scenario":"default","status":"200"}},"metric":"http_req_duration"}
{"type":"Point","data":{"time":"2025-03-01T12:00:00.3Z","value":0,"tags":{"method":"GET","name":"http://app/a","scenario":"default","status":"200"}},"metric":"http_req_failed"}
{"type":"Point","data":{"time":"2025-03-01T12:00:00.3Z","value":1000,"tags":{"scenario":"default"}},"metric":"data_received"}
{"type":"Point","data":{"time":"2025-03-01T12:00:00.3Z","value":1,"tags":{"check":"status is 200","group":"","scenario":"default"}},"metric":"checks"}
{"type":"Annotation","data":["ignored","by","the","summary"]}
{"type":"Point","data":{"time":"2025-03-01T14:00:00.5+02:00","value":1,"tags":{"method":"POST","name":"http://app/b","scenario":"default","status":"500"}},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-03-01T14:00:00.5+02:00","value":30,"tags":{"method":"POST","name":"http://app/b","scenario":"default","status":"500"}},"metric":"http_req_duration"}
{"type":"Point","data":{"time":"2025-03-01T14:00:00.5+02:00","value":1,"tags":{"method":"POST","name":"http://app/b","scenario":"default","status":"500"}},"metric":"http_req_failed"}
{"type":"Point","data":{"time":"2025-03-01T14:00:00.5+02:00","value":0,"tags":{"check":"status is 200","group":"","scenario":"default"}},"metric":"checks"}

{"type":"Point","data":{"time":"2025-03-01T12:00:01.25Z","value":3,"tags":null},"metric":"vus"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.3Z","value":1,"tags":{"method":"GET","name":"http://app/a","scenario":"default","status":"200"}},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.3Z","value":20,"tags":{"method":"GET","name":"http://app/a","scenario":"default","status":"200"}},"metric":"http_req_duration"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.3Z","value":0,"tags":{"method":"GET","name":"http://app/a","scenario":"default","status":"200"}},"metric":"http_req_failed"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.3Z","value":1,"tags":{"check":"status is 200","group":"","scenario":"default"}},"metric":"checks"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.75Z","value":1,"tags":{"error_code":"1211","method":"GET","name":"http://app/a","scenario":"default","status":"0"}},"metric":"http_reqs"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.75Z","value":5,"tags":{"error_code":"1211","method":"GET","name":"http://app/a","scenario":"default","status":"0"}},"metric":"http_req_duration"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.75Z","value":1,"tags":{"error_code":"1211","method":"GET","name":"http://app/a","scenario":"default","status":"0"}},"metric":"http_req_failed"}
{"type":"Point","data":{"time":"2025-03-01T12:00:01.75Z","value":0,"tags":{"check":"status is 200","group":"","scenario":"default"}},"metric":"checks"}
{"type":"Point","data":{"time":"2025-03-01T12:00:02.25Z","value":1,"tags":null},"metric":"vus"}
`

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, s); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSummarizeGzipAndPlainAgree(t *testing.T) {
	t.Parallel()
	plain, err := loadtest.Summarize(strings.NewReader(mixedRun))
	if err != nil {
		t.Fatal(err)
	}
	zipped, err := loadtest.Summarize(bytes.NewReader(gzipped(t, mixedRun)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain, zipped) {
		t.Errorf("gzipped input gives\n%+v\nplain input gives\n%+v", zipped, plain)
	}
	if _, err := json.Marshal(plain); err != nil {
		t.Errorf("the summary does not encode as JSON: %v", err)
	}
}

func TestSummarizeMixedRun(t *testing.T) {
	t.Parallel()
	s, err := loadtest.Summarize(strings.NewReader(mixedRun))
	if err != nil {
		t.Fatal(err)
	}
	sec := func(n int) time.Time { return time.Date(2025, 3, 1, 12, 0, n, 0, time.UTC) }
	// Percentiles are the upper edges of 0.1%-wide histogram buckets: compare
	// them to 3 significant digits.
	metric := func(name string) loadtest.MetricStats {
		m := *s.Metrics[name]
		m.P50, m.P90, m.P95, m.P99 = sig3(m.P50), sig3(m.P90), sig3(m.P95), sig3(m.P99)
		return m
	}
	groups := slices.Clone(s.Groups)
	for i := range groups {
		g := &groups[i]
		g.P50, g.P90, g.P95, g.P99 = sig3(g.P50), sig3(g.P90), sig3(g.P95), sig3(g.P99)
	}
	series := slices.Clone(s.Series)
	for i := range series {
		x := &series[i]
		x.P50, x.P95, x.P99 = sig3(x.P50), sig3(x.P95), sig3(x.P99)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"schema version", s.SchemaVersion, 1},
		{"start", s.Start, sec(0).Add(250 * time.Millisecond)},
		{"end", s.End, sec(2).Add(250 * time.Millisecond)},
		{"metric count", len(s.Metrics), 6},
		{"http_reqs", metric("http_reqs"), loadtest.MetricStats{Type: "counter", Count: 4, Sum: 4, Min: 1, Max: 1, Mean: 1, Rate: 2}},
		{"http_req_duration", metric("http_req_duration"), loadtest.MetricStats{Type: "trend", Count: 4, Sum: 65, Min: 5, Max: 30, Mean: 16.25, P50: 10, P90: 30, P95: 30, P99: 30}},
		{"http_req_failed", metric("http_req_failed"), loadtest.MetricStats{Type: "rate", Count: 4, Sum: 2, Min: 0, Max: 1, Mean: 0.5, Rate: 0.5}},
		{"vus", metric("vus"), loadtest.MetricStats{Type: "gauge", Count: 3, Sum: 6, Min: 1, Max: 3, Mean: 2, Value: 1}},
		{"data_received", metric("data_received"), loadtest.MetricStats{Type: "counter", Count: 1, Sum: 1000, Min: 1000, Max: 1000, Mean: 1000, Rate: 500}},
		{"errors by status", s.ErrorsByStatus, map[string]int{"0": 1, "500": 1}},
		{"checks", s.Checks, []loadtest.CheckStats{{Name: "status is 200", Passes: 2, Fails: 2}}},
		{"groups", groups, []loadtest.GroupStats{
			{Name: "http://app/a", Method: "GET", Status: "0", Scenario: "default", Count: 1, Min: 5, Max: 5, Mean: 5, P50: 5, P90: 5, P95: 5, P99: 5},
			{Name: "http://app/a", Method: "GET", Status: "200", Scenario: "default", Count: 2, Min: 10, Max: 20, Mean: 15, P50: 10, P90: 20, P95: 20, P99: 20},
			{Name: "http://app/b", Method: "POST", Status: "500", Scenario: "default", Count: 1, Min: 30, Max: 30, Mean: 30, P50: 30, P90: 30, P95: 30, P99: 30},
		}},
		{"series", series, []loadtest.SecondStats{
			{Time: sec(0), Requests: 2, P50: 10, P95: 30, P99: 30, ErrorRate: 0.5, VUs: 2},
			{Time: sec(1), Requests: 2, P50: 5, P95: 20, P99: 20, ErrorRate: 0.5, VUs: 3},
			{Time: sec(2), VUs: 1},
		}},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %+v; want %+v", tt.name, tt.got, tt.want)
		}
	}
}

// sig3 rounds x to 3 significant digits.
func sig3(x float64) float64 {
	if x == 0 {
		return 0
	}
	scale := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*scale) / scale
}

func TestSummarizeRejectsMalformedLines(t *testing.T) {
	t.Parallel()
	const header = durationMetric + "\n" // the bad line is line 3
	tests := []struct {
		name    string
		input   string
		wantErr string // "" when the input is fine
	}{
		{"not JSON", header + "hello\n", "line 3: not a k6 JSON line"},
		{"truncated", header + `{"type":"Point","metric":"http_req_duration"` + "\n", "line 3: not a k6 JSON line"},
		{"value not a number", header + `{"type":"Point","metric":"http_req_duration","data":{"time":"2025-03-01T12:00:00Z","value":"fast"}}`, "line 3: not a k6 JSON line"},
		{"time not RFC 3339", header + `{"type":"Point","metric":"http_req_duration","data":{"time":"yesterday","value":1}}`, "line 3: not a k6 JSON line"},
		{"point without metric", header + `{"type":"Point","data":{"time":"2025-03-01T12:00:00Z","value":1}}`, "line 3: a Point line without a metric name"},
		{"point without time", header + `{"type":"Point","metric":"vus","data":{"value":1}}`, "line 3: a Point of vus without a time"},
		{"metric without name", header + `{"type":"Metric","data":{"type":"trend"}}`, "line 3: a Metric line without a metric name"},
		{"unknown types", header + `{"type":"Flush","data":"anything"}` + "\n" + `{"type":"Future","data":{"time":12}}` + "\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := loadtest.Summarize(strings.NewReader(tt.input))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Summarize: %v", err)
			case tt.wantErr == "" && len(s.Series) != 0:
				t.Errorf("series = %+v; want none", s.Series)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Summarize error = %v; want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSummarizeRejectsCorruptGzip(t *testing.T) {
	t.Parallel()
	data := gzipped(t, mixedRun)
	data = data[:len(data)/2]
	if _, err := loadtest.Summarize(bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "read k6 output after line") {
		t.Errorf("Summarize of a truncated gzip stream: error = %v; want a read error", err)
	}
}

// TestSummarizeMemoryIsConstant summarizes a million samples and measures
// the live heap when the input ends, while Summarize still holds its state.
// It does not run in parallel, so other tests do not disturb the heap.
func TestSummarizeMemoryIsConstant(t *testing.T) {
	const samples, perSecond, limit = 1_000_000, 10_000, 4 << 20
	r := rand.New(rand.NewPCG(7, 7))
	stream := durationStream(samples, perSecond, func(int) float64 { return math.Exp(math.Log(50) + 0.7*r.NormFloat64()) })
	var before, atEnd runtime.MemStats
	stream.atEOF = func() {
		runtime.GC()
		runtime.ReadMemStats(&atEnd)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := loadtest.Summarize(stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Metrics["http_req_duration"].Count; got != samples {
		t.Fatalf("count = %d; want %d", got, samples)
	}
	if growth := int64(atEnd.HeapAlloc) - int64(before.HeapAlloc); growth > limit {
		t.Errorf("the heap grew by %d bytes while summarizing %d samples; want at most %d", growth, samples, limit)
	}
}

// TestSummarizeOddInputs: a metric declared without any point, and request
// names with Unicode and a 64 KiB URL, come through intact and encodable.
func TestSummarizeOddInputs(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("ä/€/🚀/", 64<<10/13)
	names := []string{"Grüße — ログイン", long}
	var b []byte
	b = append(b, durationMetric...)
	b = append(b, `{"type":"Metric","data":{"name":"never_sampled","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"never_sampled"}`+"\n"...)
	for i, n := range names {
		tags, _ := json.Marshal(map[string]string{"name": n, "method": "GET", "status": "200", "scenario": "default"})
		b = appendPoint(b, "http_req_duration", t0.Add(time.Duration(i)*time.Second), float64(10*(i+1)), string(tags))
	}
	s, err := loadtest.Summarize(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Metrics["never_sampled"]; m == nil || m.Count != 0 || m.Min != 0 || m.Max != 0 || m.Mean != 0 || m.P95 != 0 {
		t.Errorf("a metric without points: %+v", m)
	}
	var got []string
	for _, g := range s.Groups {
		got = append(got, g.Name)
	}
	slices.Sort(got)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("group names changed: got %d names, first %q", len(got), got[0])
	}
	if _, err := json.Marshal(s); err != nil {
		t.Errorf("summary.json does not encode: %v", err)
	}
}
