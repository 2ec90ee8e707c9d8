package loadtest_test

import (
	"bytes"
	"math"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// sample is one Point of a synthetic run.
type sample struct {
	metric string
	at     time.Time
	value  float64
	tags   string
}

// seriesDeclarations declare the metrics of request's samples.
const seriesDeclarations = `{"type":"Metric","data":{"name":"http_reqs","type":"counter"},"metric":"http_reqs"}
{"type":"Metric","data":{"name":"http_req_duration","type":"trend"},"metric":"http_req_duration"}
{"type":"Metric","data":{"name":"http_req_failed","type":"rate"},"metric":"http_req_failed"}
{"type":"Metric","data":{"name":"checks","type":"rate"},"metric":"checks"}
{"type":"Metric","data":{"name":"vus","type":"gauge"},"metric":"vus"}
`

func render(samples []sample) []byte {
	b := []byte(seriesDeclarations)
	for _, s := range samples {
		b = appendPoint(b, s.metric, s.at, s.value, s.tags)
	}
	return b
}

// requestSamples is the samples k6 writes for one request at sec seconds (and a
// quarter) into the run.
func requestSamples(sec int, ms float64, status string) []sample {
	at := t0.Add(time.Duration(sec)*time.Second + 250*time.Millisecond)
	tags := `{"method":"GET","name":"http://app/","scenario":"default","status":"` + status + `"}`
	failed := 0.0
	if status != "200" {
		failed = 1
	}
	return []sample{
		{"http_reqs", at, 1, tags},
		{"http_req_duration", at, ms, tags},
		{"http_req_failed", at, failed, tags},
		{"checks", at, 1 - failed, `{"check":"ok","group":"","scenario":"default"}`},
		{"vus", at, float64(2 + sec%3), "null"},
	}
}

func summarizeSamples(t *testing.T, samples []sample) *loadtest.Summary {
	t.Helper()
	s, err := loadtest.SummarizeWith(bytes.NewReader(render(samples)), loadtest.Options{Thresholds: map[string][]string{
		"http_req_duration":             {"p(95)<300"},
		"http_req_duration{status:503}": {"max<500"},
		"http_reqs":                     {"count>10"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSummarizeLateSamples: samples up to the series window late count as
// if they had come in order; later ones still count exactly in every
// whole-run statistic and in their second's requests, error rate and VUs,
// but not in its percentiles, unless the second had no latency yet.
func TestSummarizeLateSamples(t *testing.T) {
	t.Parallel()
	// 400 seconds of run, one request a second (two in the even ones), none
	// in second 20.
	var inOrder []sample
	for sec := range 400 {
		if sec == 20 {
			continue
		}
		inOrder = append(inOrder, requestSamples(sec, float64(10+sec%7), "200")...)
		if sec%2 == 0 {
			inOrder = append(inOrder, requestSamples(sec, float64(20+sec%5), "200")...)
		}
	}
	// At the end (second 399), seconds before 279 are closed.
	lateClosed := requestSamples(10, 999, "503") // second 10 has latencies
	lateEmpty := requestSamples(20, 7, "200")    // second 20 has none
	lateOpen := requestSamples(300, 800, "503")  // second 300 is still open
	lateOpen = append(lateOpen, requestSamples(290, 5, "503")...)
	late := slices.Concat(lateClosed, lateEmpty, lateOpen)

	sorted := slices.Concat(inOrder, late)
	slices.SortStableFunc(sorted, func(a, b sample) int { return a.at.Compare(b.at) })
	want := summarizeSamples(t, sorted)
	got := summarizeSamples(t, slices.Concat(inOrder, late))
	without := summarizeSamples(t, slices.Concat(inOrder, lateEmpty, lateOpen))

	// Every whole-run statistic is exact.
	g, w := *got, *want
	g.Series, w.Series = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("late samples change the whole-run statistics:\ngot  %+v\nwant %+v", g, w)
	}
	if len(got.Series) != 400 || len(want.Series) != 400 {
		t.Fatalf("%d seconds; want 400", len(got.Series))
	}
	for i, sec := range got.Series {
		exact := want.Series[i]
		counts := func(s loadtest.SecondStats) loadtest.SecondStats {
			s.P50, s.P95, s.P99 = 0, 0, 0
			return s
		}
		if counts(sec) != counts(exact) {
			t.Errorf("second %d: %+v; want the counts of %+v", i, sec, exact)
		}
		switch i {
		case 10:
			// The late latency is left out of the closed second's percentiles.
			if p := without.Series[10]; sec.P50 != p.P50 || sec.P95 != p.P95 || sec.P99 != p.P99 {
				t.Errorf("second 10: %+v; want the percentiles without the late sample, %+v", sec, p)
			}
			if sec.P99 == exact.P99 {
				t.Errorf("second 10: p99 %v takes the late 999 ms in; the test expects a closed second", sec.P99)
			}
		case 20:
			if sec.P50 != 7 || sec.P95 != 7 || sec.P99 != 7 {
				t.Errorf("second 20: %+v; want the late sample's 7 ms as its percentiles", sec)
			}
		default:
			if sec != exact {
				t.Errorf("second %d: %+v; want %+v", i, sec, exact)
			}
		}
	}
}

// TestSummarizeOutOfOrderWithinTheWindow: samples less than the window
// late, as k6 writes those of a slow request, give exactly the summary of
// the same samples in time order.
func TestSummarizeOutOfOrderWithinTheWindow(t *testing.T) {
	t.Parallel()
	// Three requests a second; every 7th one ends (and is written) 10 to
	// 109 s after its samples' time.
	type written struct {
		at      time.Time
		samples []sample
	}
	var inOrder []sample
	var requests []written
	for sec := range 300 {
		for i := range 3 {
			req := requestSamples(sec, float64(5+(sec+i*40)%111), []string{"200", "200", "503"}[(sec+i)%3])
			inOrder = append(inOrder, req...)
			at := req[0].at
			if n := len(requests); n%7 == 0 {
				at = at.Add(time.Duration(10+n%100) * time.Second)
			}
			requests = append(requests, written{at, req})
		}
	}
	slices.SortStableFunc(requests, func(a, b written) int { return a.at.Compare(b.at) })
	var outOfOrder []sample
	for _, r := range requests {
		outOfOrder = append(outOfOrder, r.samples...)
	}
	got, want := summarizeSamples(t, outOfOrder), summarizeSamples(t, inOrder)
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got.Series), len(want.Series)) {
			if got.Series[i] != want.Series[i] {
				t.Errorf("second %d: %+v; in order %+v", i, got.Series[i], want.Series[i])
			}
		}
		t.Fatalf("the summary differs from the one of the samples in order")
	}
}

// TestSummarizeMemoryIsBoundedInTime summarizes a 24-hour run and measures
// the live heap when the input ends: the closed seconds cost their 72 bytes,
// only the open ones a histogram. It does not run in parallel, so other
// tests do not disturb the heap.
func TestSummarizeMemoryIsBoundedInTime(t *testing.T) {
	const seconds, perSecond = 24 * 3600, 3
	const limit = 4<<20 + 100*seconds
	tags := `{"method":"GET","name":"http://app/","scenario":"default","status":"200"}`
	stream := &lineReader{
		n: seconds*perSecond + 1,
		line: func(dst []byte, i int) []byte {
			if i == 0 {
				return append(dst, durationMetric...)
			}
			i--
			at := t0.Add(time.Duration(i) * time.Second / perSecond)
			if i%perSecond == 0 {
				return appendPoint(dst, "vus", at, 5, "null")
			}
			return appendPoint(dst, "http_req_duration", at, 20+math.Mod(float64(i)*7.3, 400), tags)
		},
	}
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
	if len(s.Series) != seconds {
		t.Fatalf("%d seconds in the series; want %d", len(s.Series), seconds)
	}
	growth := int64(atEnd.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("the heap grew by %d bytes over %d seconds of run", growth, seconds)
	if growth > limit {
		t.Errorf("the heap grew by %d bytes over %d seconds of run; want at most %d", growth, seconds, limit)
	}
}
