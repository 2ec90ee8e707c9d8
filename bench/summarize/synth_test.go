//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// recordedLines are lines of a real k6 v1.8.1 --out json file: one request
// with its metric declarations, then a second one a second later.
const recordedLines = `{"type":"Metric","data":{"name":"http_reqs","type":"counter","contains":"default","thresholds":[],"submetrics":null},"metric":"http_reqs"}
{"metric":"http_reqs","type":"Point","data":{"time":"2026-11-30T04:14:20.815661691Z","value":1,"tags":{"expected_response":"true","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"200","url":"http://127.0.0.1:18081/"}}}
{"type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":["p(95)<500"],"submetrics":null},"metric":"http_req_duration"}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:14:20.815661691Z","value":1.405444,"tags":{"expected_response":"true","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"200","url":"http://127.0.0.1:18081/"}}}
{"type":"Metric","data":{"name":"http_req_waiting","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"http_req_waiting"}
{"metric":"http_req_waiting","type":"Point","data":{"time":"2026-11-30T04:14:20.815661691Z","value":1.199978,"tags":{"expected_response":"true","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"200","url":"http://127.0.0.1:18081/"}}}
{"type":"Metric","data":{"name":"iteration_duration","type":"trend","contains":"time","thresholds":[],"submetrics":null},"metric":"iteration_duration"}
{"metric":"iteration_duration","type":"Point","data":{"time":"2026-11-30T04:14:20.815773187Z","value":2.462779,"tags":{"group":"","scenario":"default"}}}
{"metric":"http_reqs","type":"Point","data":{"time":"2026-11-30T04:14:21.816031352Z","value":1,"tags":{"expected_response":"false","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"500","url":"http://127.0.0.1:18081/"}}}
{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-30T04:14:21.816031352Z","value":0.789386,"tags":{"expected_response":"false","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"500","url":"http://127.0.0.1:18081/"}}}
{"metric":"http_req_waiting","type":"Point","data":{"time":"2026-11-30T04:14:21.816031352Z","value":0.5,"tags":{"expected_response":"false","group":"::api","method":"GET","name":"http://127.0.0.1:18081/","proto":"HTTP/1.0","scenario":"default","status":"500","url":"http://127.0.0.1:18081/"}}}
`

func TestSynthKeepsK6FormatAndKnowsItsValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recPath := filepath.Join(dir, "recording.json")
	if err := os.WriteFile(recPath, []byte(recordedLines), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := readRecording(recPath)
	if err != nil {
		t.Fatal(err)
	}
	if rec.requests != 2 || rec.span.Seconds() != 2 {
		t.Fatalf("recording: %d requests over %s; want 2 over 2s", rec.requests, rec.span)
	}
	g := newSynth(rec, 7)
	out := filepath.Join(dir, "k6.json")
	n, err := g.WriteFile(out, 2e6)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2e6 || g.Requests != len(g.Durations) || g.Requests%2 != 0 {
		t.Fatalf("wrote %d bytes, %d requests, %d durations; want at least 2 MB of whole repetitions", n, g.Requests, len(g.Durations))
	}

	// Every line is the recorded one with a later time and maybe another
	// value; the Metric lines come once.
	recorded := bytes.SplitAfter([]byte(recordedLines), []byte("\n"))
	var points [][]byte
	for _, l := range recorded {
		if bytes.Contains(l, []byte(`"Point"`)) {
			points = append(points, l)
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1] // after the last newline
	if int64(len(lines)) != g.Lines || len(lines) != len(recorded)-1+(g.Requests/2-1)*len(points) {
		t.Fatalf("%d lines (the generator counted %d); want the recording, then its %d Points per repetition", len(lines), g.Lines, len(points))
	}
	for i, l := range lines {
		var v map[string]any
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
		if i < len(recorded)-1 {
			if !bytes.Contains(recorded[i], []byte(`"Point"`)) && !bytes.Equal(l, recorded[i]) {
				t.Fatalf("line %d = %s; want the recorded %s", i+1, l, recorded[i])
			}
			continue
		}
		rep, k := (i-(len(recorded)-1))/len(points)+1, (i-(len(recorded)-1))%len(points)
		got, gt, err := splitPoint(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		want, wt, _ := splitPoint(points[k])
		if !bytes.Equal(got.prefix, want.prefix) || !bytes.Equal(got.suffix, want.suffix) || gt.Sub(wt) != time.Duration(rep)*rec.span {
			t.Fatalf("line %d = %s; want %s %d × %s later", i+1, l, points[k], rep, rec.span)
		}
	}

	// The summarizer sees exactly the values the generator says it wrote.
	s, err := loadtest.SummarizeFile(out)
	if err != nil {
		t.Fatal(err)
	}
	e := exactStats(g.Durations)
	d := s.Metrics["http_req_duration"]
	if d.Count != int64(e.Count) || math.Abs(d.Mean-e.Mean) > 1e-9*e.Mean {
		t.Errorf("summary: count %d, mean %g; generator: %d, %g", d.Count, d.Mean, e.Count, e.Mean)
	}
	// A histogram percentile is within its 0.1% resolution of a value at
	// most one rank from k6's.
	for _, p := range []struct{ p, got float64 }{{50, d.P50}, {95, d.P95}, {99, d.P99}} {
		i := int(p.p / 100 * float64(e.Count-1))
		lo, hi := e.Sorted[max(i-1, 0)], e.Sorted[min(i+2, e.Count-1)]
		if p.got < lo*0.999 || p.got > hi*1.001 {
			t.Errorf("p%g = %g; k6 says %g, the ranks around it hold %g to %g", p.p, p.got, k6Percentile(e.Sorted, p.p), lo, hi)
		}
	}
	if len(s.Series) < g.Requests/2 {
		t.Errorf("%d seconds in the series for %d repetitions of 2 s", len(s.Series), g.Requests/2)
	}
}

func TestAppendJSONFloatIsEncodingJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		v := math.Exp(rng.NormFloat64()*12) * float64(1-2*rng.IntN(2))
		if i%10 == 0 {
			v = math.Round(v*1e6) / 1e6
		}
		want, _ := json.Marshal(v)
		if got := appendJSONFloat(nil, v); string(got) != string(want) {
			t.Fatalf("appendJSONFloat(%s) = %s, encoding/json %s", strconv.FormatFloat(v, 'g', -1, 64), got, want)
		}
	}
}

func TestExactStatsAsK6(t *testing.T) {
	t.Parallel()
	var vs []float64
	for i := 100; i >= 1; i-- {
		vs = append(vs, float64(i))
	}
	// k6: i = p × (n-1), interpolated: p50 = 1 + 49.5, p99 = 1 + 98.01.
	e := exactStats(vs)
	if e.Count != 100 || e.Mean != 50.5 || e.P50 != 50.5 || math.Abs(e.P95-95.05) > 1e-9 || math.Abs(e.P99-99.01) > 1e-9 {
		t.Errorf("exactStats(1..100) = %+v", e)
	}
}
