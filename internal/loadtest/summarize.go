package loadtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Names of the k6 metrics and tags the summary looks at beyond the
// per-metric statistics.
const (
	metricDuration = "http_req_duration"
	metricRequests = "http_reqs"
	metricFailed   = "http_req_failed"
	metricChecks   = "checks"
	metricVUs      = "vus"
)

// maxLineBytes bounds one JSON line; k6 writes a few hundred bytes per line.
const maxLineBytes = 16 << 20

// Histograms record values (milliseconds for k6's durations) as integer
// thousandths, so sub-millisecond latencies keep their precision, with 3
// significant digits (0.1% resolution). Values above histHighest (about 11
// days in milliseconds) are recorded as histHighest.
const (
	histScale   = 1000
	histHighest = 1e12
	histDigits  = 3
)

// percentiles are the ones MetricStats and GroupStats report, in order.
var percentiles = []float64{50, 90, 95, 99}

// SummarizeFile summarizes the k6 JSON output at path, gzipped or not.
func SummarizeFile(path string) (*Summary, error) {
	return SummarizeFileWith(path, Options{})
}

// SummarizeFileWith is SummarizeFile with options.
func SummarizeFileWith(path string, opt Options) (*Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: open k6 output: %w", err)
	}
	defer f.Close()
	s, err := SummarizeWith(f, opt)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return s, nil
}

// Summarize reads k6's JSON lines from r, gunzipping them when r starts with
// the gzip magic, and summarizes them in one pass. Lines of unknown types are
// ignored; a malformed line is an error naming its line number.
func Summarize(r io.Reader) (*Summary, error) {
	return SummarizeWith(r, Options{})
}

// Options adds to what Summarize computes.
type Options struct {
	// Thresholds maps a metric, optionally with a k6 tag selector
	// (http_req_duration{status:200}), to k6 threshold expressions, like a
	// script's options.thresholds; they are evaluated over the whole run
	// into Summary.Thresholds, keeping memory constant (one histogram per
	// distinct tag selector).
	Thresholds map[string][]string
}

// SummarizeWith is Summarize with options; it checks the thresholds before
// reading anything.
func SummarizeWith(r io.Reader, opt Options) (*Summary, error) {
	ts, err := parseThresholds(opt.Thresholds)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("loadtest: read gzip header: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}

	er := &errReader{r: r}
	acc := newAccumulator()
	acc.watch(ts)
	sc := bufio.NewScanner(er)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		if err := acc.add(sc.Bytes()); err != nil {
			if er.err != nil { // the line is cut short by the read error
				return nil, fmt.Errorf("loadtest: read k6 output after line %d: %w", n-1, er.err)
			}
			return nil, fmt.Errorf("loadtest: line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("loadtest: line %d: longer than %d bytes", n+1, maxLineBytes)
		}
		return nil, fmt.Errorf("loadtest: read k6 output after line %d: %w", n, err)
	}
	return acc.summary(), nil
}

// errReader remembers the error that ended its reader, which the Scanner
// only reports after handing out the partial last line.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// line is one k6 JSON line; data holds the fields of both Metric and Point.
type line struct {
	Type   string `json:"type"`
	Metric string `json:"metric"`
	Data   struct {
		Time  time.Time `json:"time"`
		Value float64   `json:"value"`
		Tags  tags      `json:"tags"`
		Name  string    `json:"name"`
		Type  string    `json:"type"`
	} `json:"data"`
}

// tags holds the k6 tags the summary groups by; decoding only these saves
// a map per line.
type tags struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Method   string `json:"method"`
	Status   string `json:"status"`
	Scenario string `json:"scenario"`
	Check    string `json:"check"`
	Group    string `json:"group"`
	// ExpectedResponse is decoded for k6's common sub-metric
	// http_req_duration{expected_response:true}.
	ExpectedResponse string `json:"expected_response"`
}

type groupKey struct{ name, method, status, scenario string }

type checkKey struct{ group, name string }

// accumulator holds the running state of Summarize; it grows with metrics,
// tag groups and seconds, never with samples.
type accumulator struct {
	ln      line
	start   time.Time
	end     time.Time
	metrics map[string]*stats
	types   map[string]string
	groups  map[groupKey]*stats
	checks  map[checkKey]*CheckStats
	errors  map[string]float64
	seconds map[int64]*second

	// thresholds are evaluated at the end; subs holds the sub-metrics they
	// select by metric name, subByName by threshold metric as written.
	thresholds []threshold
	subs       map[string][]*submetric
	subByName  map[string]*submetric
	// raw is the current line, extra its tags beyond the tags struct once
	// decoded (extraDecoded) for a sub-metric.
	raw          []byte
	extra        map[string]string
	extraDecoded bool
}

// stats accumulates the samples of one metric or group. hist is nil when
// the samples are known not to be a trend.
type stats struct {
	count    int64
	sum      float64
	min, max float64
	nonZero  int64
	last     float64
	lastTime time.Time
	hist     *hdrhistogram.PackedHistogram
}

// second accumulates the samples of one second of the run.
type second struct {
	requests    float64
	failed      int64
	failedTotal int64
	vus         float64
	latency     *stats // http_req_duration; nil until the first one
}

func newAccumulator() *accumulator {
	return &accumulator{
		metrics: map[string]*stats{},
		types:   map[string]string{},
		groups:  map[groupKey]*stats{},
		checks:  map[checkKey]*CheckStats{},
		errors:  map[string]float64{},
		seconds: map[int64]*second{},
		subs:    map[string][]*submetric{},
	}
}

func newHistogram() *hdrhistogram.PackedHistogram {
	return hdrhistogram.NewPacked(1, histHighest, histDigits)
}

// add takes one line of k6 output.
func (a *accumulator) add(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	a.ln = line{}
	a.raw, a.extra, a.extraDecoded = b, nil, false
	if err := json.Unmarshal(b, &a.ln); err != nil {
		// A line of a type this package does not know may carry any data.
		var typ struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &typ) == nil && typ.Type != "Metric" && typ.Type != "Point" {
			return nil
		}
		return fmt.Errorf("not a k6 JSON line: %w", err)
	}
	switch a.ln.Type {
	case "Metric":
		return a.addMetric()
	case "Point":
		return a.addPoint()
	}
	return nil
}

func (a *accumulator) addMetric() error {
	name := a.ln.Data.Name
	if name == "" {
		name = a.ln.Metric
	}
	if name == "" {
		return errors.New("a Metric line without a metric name")
	}
	typ := a.ln.Data.Type
	a.types[name] = typ
	st := a.metric(name)
	if typ != TypeTrend {
		st.hist = nil
	}
	return nil
}

// metric returns the stats of name, recording a histogram unless the metric
// is declared as something other than a trend.
func (a *accumulator) metric(name string) *stats {
	st := a.metrics[name]
	if st == nil {
		st = &stats{}
		if typ, ok := a.types[name]; !ok || typ == TypeTrend {
			st.hist = newHistogram()
		}
		a.metrics[name] = st
	}
	return st
}

func (a *accumulator) addPoint() error {
	name, d := a.ln.Metric, &a.ln.Data
	if name == "" {
		return errors.New("a Point line without a metric name")
	}
	if d.Time.IsZero() {
		return fmt.Errorf("a Point of %s without a time", name)
	}
	if a.start.IsZero() || d.Time.Before(a.start) {
		a.start = d.Time
	}
	if d.Time.After(a.end) {
		a.end = d.Time
	}
	a.metric(name).add(d.Value, d.Time)
	if subs := a.subs[name]; len(subs) > 0 {
		a.addToSubmetrics(subs)
	}

	switch name {
	case metricDuration:
		key := groupKey{d.Tags.Name, d.Tags.Method, d.Tags.Status, d.Tags.Scenario}
		if key.name == "" {
			key.name = d.Tags.URL
		}
		g := a.groups[key]
		if g == nil {
			g = &stats{hist: newHistogram()}
			a.groups[key] = g
		}
		g.add(d.Value, d.Time)
		sec := a.second(d.Time)
		if sec.latency == nil {
			sec.latency = &stats{hist: newHistogram()}
		}
		sec.latency.add(d.Value, d.Time)
	case metricRequests:
		a.second(d.Time).requests += d.Value
		if code, err := strconv.Atoi(d.Tags.Status); err == nil && (code == 0 || code >= 400) {
			a.errors[d.Tags.Status] += d.Value
		}
	case metricFailed:
		sec := a.second(d.Time)
		sec.failedTotal++
		if d.Value != 0 {
			sec.failed++
		}
	case metricChecks:
		key := checkKey{d.Tags.Group, d.Tags.Check}
		c := a.checks[key]
		if c == nil {
			c = &CheckStats{Name: key.name, Group: key.group}
			a.checks[key] = c
		}
		if d.Value != 0 {
			c.Passes++
		} else {
			c.Fails++
		}
	case metricVUs:
		sec := a.second(d.Time)
		sec.vus = math.Max(sec.vus, d.Value)
	}
	return nil
}

func (a *accumulator) second(t time.Time) *second {
	s := a.seconds[t.Unix()]
	if s == nil {
		s = &second{}
		a.seconds[t.Unix()] = s
	}
	return s
}

func (st *stats) add(v float64, t time.Time) {
	if st.count == 0 || v < st.min {
		st.min = v
	}
	if st.count == 0 || v > st.max {
		st.max = v
	}
	st.count++
	st.sum += v
	if v != 0 {
		st.nonZero++
	}
	if !t.Before(st.lastTime) {
		st.last, st.lastTime = v, t
	}
	if st.hist != nil {
		record(st.hist, v)
	}
}

// record adds v to h as integer thousandths, clamped to the histogram's range.
func record(h *hdrhistogram.PackedHistogram, v float64) {
	scaled := math.Round(v * histScale)
	switch {
	case !(scaled >= 0): // negative or NaN
		scaled = 0
	case scaled > histHighest:
		scaled = histHighest
	}
	// The value is in range, so RecordValue cannot fail.
	_ = h.RecordValue(int64(scaled))
}

// quantiles returns the percentiles ps of h in the recorded unit, clamped to
// the exact extremes [min, max] that the histogram rounds.
func quantiles(h *hdrhistogram.PackedHistogram, ps []float64, min, max float64) []float64 {
	out := make([]float64, len(ps))
	if h == nil || h.TotalCount() == 0 {
		return out
	}
	for i, v := range h.ValueAtPercentilesSlice(ps) {
		out[i] = math.Min(math.Max(float64(v)/histScale, min), max)
	}
	return out
}

func (st *stats) mean() float64 {
	if st.count == 0 {
		return 0
	}
	return st.sum / float64(st.count)
}

// metricStats summarizes st as a metric of type typ.
func (st *stats) metricStats(typ string, runSeconds float64) *MetricStats {
	m := &MetricStats{Type: typ, Count: st.count, Sum: st.sum, Min: st.min, Max: st.max, Mean: st.mean()}
	switch m.Type {
	case TypeTrend:
		q := quantiles(st.hist, percentiles, st.min, st.max)
		m.P50, m.P90, m.P95, m.P99 = q[0], q[1], q[2], q[3]
	case TypeRate:
		if st.count > 0 {
			m.Rate = float64(st.nonZero) / float64(st.count)
		}
	case TypeCounter:
		if runSeconds > 0 {
			m.Rate = st.sum / runSeconds
		}
	case TypeGauge:
		m.Value = st.last
	}
	return m
}

func (a *accumulator) summary() *Summary {
	s := &Summary{
		SchemaVersion:  SchemaVersion,
		Start:          a.start.UTC(),
		End:            a.end.UTC(),
		Metrics:        make(map[string]*MetricStats, len(a.metrics)),
		Groups:         make([]GroupStats, 0, len(a.groups)),
		Checks:         make([]CheckStats, 0, len(a.checks)),
		ErrorsByStatus: make(map[string]int, len(a.errors)),
		Series:         make([]SecondStats, 0, len(a.seconds)),
	}
	runSeconds := a.end.Sub(a.start).Seconds()

	for name, st := range a.metrics {
		s.Metrics[name] = st.metricStats(a.types[name], runSeconds)
	}
	for _, subs := range a.subs {
		for _, sm := range subs {
			st := sm.st
			if st == nil {
				st = &stats{}
			}
			for _, name := range sm.names {
				s.Metrics[name] = st.metricStats(a.declaredType(sm.base), runSeconds)
			}
		}
	}
	s.Thresholds = a.evaluate(runSeconds)

	for key, st := range a.groups {
		q := quantiles(st.hist, percentiles, st.min, st.max)
		s.Groups = append(s.Groups, GroupStats{
			Name: key.name, Method: key.method, Status: key.status, Scenario: key.scenario,
			Count: st.count, Min: st.min, Max: st.max, Mean: st.mean(),
			P50: q[0], P90: q[1], P95: q[2], P99: q[3],
		})
	}
	sort.Slice(s.Groups, func(i, j int) bool {
		x, y := s.Groups[i], s.Groups[j]
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		if x.Method != y.Method {
			return x.Method < y.Method
		}
		if x.Status != y.Status {
			return x.Status < y.Status
		}
		return x.Scenario < y.Scenario
	})

	for _, c := range a.checks {
		s.Checks = append(s.Checks, *c)
	}
	sort.Slice(s.Checks, func(i, j int) bool {
		x, y := s.Checks[i], s.Checks[j]
		if x.Group != y.Group {
			return x.Group < y.Group
		}
		return x.Name < y.Name
	})

	for status, n := range a.errors {
		s.ErrorsByStatus[status] = int(math.Round(n))
	}

	for unix, sec := range a.seconds {
		ss := SecondStats{
			Time:     time.Unix(unix, 0).UTC(),
			Requests: int64(math.Round(sec.requests)),
			VUs:      int(math.Round(sec.vus)),
		}
		if sec.latency != nil {
			q := quantiles(sec.latency.hist, []float64{50, 95, 99}, sec.latency.min, sec.latency.max)
			ss.P50, ss.P95, ss.P99 = q[0], q[1], q[2]
		}
		if sec.failedTotal > 0 {
			ss.ErrorRate = float64(sec.failed) / float64(sec.failedTotal)
		}
		s.Series = append(s.Series, ss)
	}
	sort.Slice(s.Series, func(i, j int) bool { return s.Series[i].Time.Before(s.Series[j].Time) })
	return s
}
