//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"
)

// recLine is one line of the recording: a Point split around its time and
// value, or any other line kept whole.
type recLine struct {
	raw    []byte // a Metric (or unknown) line, newline included; nil for a Point
	metric string
	at     time.Duration // after the recording's first sample
	value  float64
	// prefix ends with `"time":"`, mid is `","value":`, suffix the rest
	// (the tags), newline included.
	prefix, mid, suffix []byte
	// factor scales the latencies of the request's endpoint and status.
	factor float64
}

// recording is a real k6 JSON output, parsed for synthesis.
type recording struct {
	lines    []recLine
	start    time.Time
	loc      *time.Location
	span     time.Duration // one repetition: the recording's length, whole seconds
	bytes    int64
	requests int
}

var (
	timeKey  = []byte(`"time":"`)
	valueKey = []byte(`","value":`)
)

// readRecording parses the k6 JSON output at path.
func readRecording(path string) (*recording, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rec := &recording{bytes: int64(len(data))}
	var first, last time.Time
	for n, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !bytes.Contains(line, []byte(`"type":"Point"`)) {
			rec.lines = append(rec.lines, recLine{raw: line})
			continue
		}
		l, t, err := splitPoint(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n+1, err)
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
		l.at = time.Duration(t.UnixNano()) // made relative below
		if l.metric == "http_reqs" {
			rec.requests++
		}
		rec.lines = append(rec.lines, l)
	}
	if rec.requests == 0 {
		return nil, fmt.Errorf("%s holds no http_reqs sample; did k6 reach the server?", path)
	}
	for i := range rec.lines {
		if rec.lines[i].raw == nil {
			rec.lines[i].at -= time.Duration(first.UnixNano())
		}
	}
	rec.start, rec.loc = first, first.Location()
	rec.span = (last.Sub(first) + time.Second - 1).Truncate(time.Second)
	return rec, nil
}

// splitPoint splits a Point line around its time and value.
func splitPoint(line []byte) (recLine, time.Time, error) {
	ti := bytes.Index(line, timeKey)
	if ti < 0 {
		return recLine{}, time.Time{}, errors.New(`a Point without "time"`)
	}
	ti += len(timeKey)
	vi := bytes.Index(line[ti:], valueKey)
	if vi < 0 {
		return recLine{}, time.Time{}, errors.New(`a Point without "value" after its time`)
	}
	vi += ti
	t, err := time.Parse(time.RFC3339Nano, string(line[ti:vi]))
	if err != nil {
		return recLine{}, time.Time{}, err
	}
	vs := vi + len(valueKey)
	ve := vs + bytes.IndexAny(line[vs:], ",}")
	if ve < vs {
		return recLine{}, time.Time{}, errors.New("a Point whose value does not end")
	}
	v, err := strconv.ParseFloat(string(line[vs:ve]), 64)
	if err != nil {
		return recLine{}, time.Time{}, err
	}
	mk := []byte(`"metric":"`)
	mi := bytes.Index(line, mk)
	if mi < 0 {
		return recLine{}, time.Time{}, errors.New(`a Point without "metric"`)
	}
	mi += len(mk)
	me := mi + bytes.IndexByte(line[mi:], '"')
	l := recLine{
		metric: string(line[mi:me]),
		value:  v,
		prefix: line[:ti],
		mid:    valueKey,
		suffix: line[ve:],
	}
	l.factor = latencyFactor(l.suffix)
	return l, t, nil
}

// latencyFactor gives each combination of tags (endpoint, method, status)
// its own typical latency, between 0.4 and 2.4 times the base.
func latencyFactor(tags []byte) float64 {
	h := fnv.New32a()
	_, _ = h.Write(tags)
	return 0.4 + float64(h.Sum32()%1000)/500
}

// Latency model of the synthesized http_req_duration, in milliseconds: a
// log-normal body and a slow tail, scaled per endpoint and by a slow wave
// of load over the run.
const (
	bodyMedian = 40.0
	bodySigma  = 0.45
	tailShare  = 0.03
	tailMedian = 350.0
	tailSigma  = 0.6
	waveDepth  = 0.35
	wavePeriod = 10 * time.Minute
)

// synth writes k6 JSON output: the recording over and over, each repetition
// shifted by its span, with fresh latencies. Durations holds every
// http_req_duration value it wrote, in order.
type synth struct {
	rec *recording
	rng *rand.Rand
	// Stretch slows the run down: the same lines and values, Stretch times
	// further apart.
	Stretch   int
	Durations []float64
	Requests  int
	Lines     int64
}

func newSynth(rec *recording, seed uint64) *synth {
	return &synth{rec: rec, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), Stretch: 1}
}

func (g *synth) latency(at time.Duration, factor float64) float64 {
	var d float64
	if g.rng.Float64() < tailShare {
		d = tailMedian * math.Exp(tailSigma*g.rng.NormFloat64())
	} else {
		d = bodyMedian * math.Exp(bodySigma*g.rng.NormFloat64())
	}
	d *= factor * (1 + waveDepth*math.Sin(2*math.Pi*at.Seconds()/wavePeriod.Seconds()))
	return math.Round(d*1e6) / 1e6 // k6's resolution: nanoseconds, in ms
}

// WriteFile writes at least size bytes of whole repetitions to path.
func (g *synth) WriteFile(path string, size int64) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	n, err := g.write(bw, size)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (g *synth) write(w io.Writer, size int64) (int64, error) {
	var written int64
	buf := make([]byte, 0, 1024)
	rec := g.rec
	for rep := 0; written < size; rep++ {
		shift := time.Duration(rep) * rec.span
		// The request whose lines follow: its recorded and new duration.
		var reqAt time.Duration
		var recDur, newDur float64
		for i := range rec.lines {
			l := &rec.lines[i]
			if l.raw != nil {
				if rep == 0 {
					n, err := w.Write(l.raw)
					written += int64(n)
					if err != nil {
						return written, err
					}
					g.Lines++
				}
				continue
			}
			at := shift + l.at
			v := l.value
			switch l.metric {
			case "http_req_duration":
				reqAt, recDur = l.at, l.value
				newDur = g.latency(at, l.factor)
				v = newDur
				g.Durations = append(g.Durations, v)
			case "http_req_sending", "http_req_waiting", "http_req_receiving":
				// The parts of the request keep their shares of its duration.
				if l.at == reqAt && recDur > 0 {
					v = math.Round(v*newDur/recDur*1e6) / 1e6
				}
			case "group_duration", "iteration_duration":
				v = math.Round((v+newDur-recDur)*1e6) / 1e6
			case "http_reqs":
				g.Requests++
			}
			buf = append(buf[:0], l.prefix...)
			buf = rec.start.Add(at*time.Duration(g.Stretch)).In(rec.loc).AppendFormat(buf, time.RFC3339Nano)
			buf = append(buf, l.mid...)
			buf = appendJSONFloat(buf, v)
			buf = append(buf, l.suffix...)
			n, err := w.Write(buf)
			written += int64(n)
			if err != nil {
				return written, err
			}
			g.Lines++
		}
	}
	return written, nil
}

// appendJSONFloat formats v as encoding/json does (k6 writes its JSON output
// with encoding/json's rules).
func appendJSONFloat(dst []byte, v float64) []byte {
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		dst = strconv.AppendFloat(dst, v, 'e', -1, 64)
		// 1e-07 → 1e-7, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

// exact is http_req_duration computed from every value.
type exact struct {
	Count         int
	Mean          float64
	P50, P95, P99 float64
	// Sorted holds the values in order.
	Sorted []float64
}

// exactStats computes exact statistics of values; the percentiles are k6's
// (its end-of-test summary interpolates linearly between the two nearest
// ranks).
func exactStats(values []float64) exact {
	if len(values) == 0 {
		return exact{}
	}
	var sum float64
	for _, v := range values {
		sum += v
	}
	s := slices.Clone(values)
	slices.Sort(s)
	return exact{Count: len(s), Mean: sum / float64(len(s)), P50: k6Percentile(s, 50), P95: k6Percentile(s, 95), P99: k6Percentile(s, 99), Sorted: s}
}

// k6Percentile is percentile p of sorted as k6's trend sink computes it.
func k6Percentile(sorted []float64, p float64) float64 {
	i := p / 100 * float64(len(sorted)-1)
	lo, hi := sorted[int(math.Floor(i))], sorted[int(math.Ceil(i))]
	return lo + (hi-lo)*(i-math.Floor(i))
}
