package loadtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
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
	return summarize(r, opt, decodeFast)
}

// decoder is how the accumulator decodes Point lines.
type decoder int

const (
	// decodeFast scans Point lines by hand (scanPoint) and decodes what it
	// does not accept with encoding/json.
	decodeFast decoder = iota
	// decodeJSON decodes every line with encoding/json: the reference the
	// tests hold decodeFast to.
	decodeJSON
)

func summarize(r io.Reader, opt Options, dec decoder) (*Summary, error) {
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
	acc := newAccumulator(dec)
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

// group is http_req_duration for one groupKey.
type group struct {
	key groupKey
	stats
}

// metricKind says which of the metrics the summary looks at beyond its
// statistics a metric is.
type metricKind int

const (
	kindOther metricKind = iota
	kindDuration
	kindRequests
	kindFailed
	kindChecks
	kindVUs
)

// metricState is one metric of the run: its statistics, its kind and the
// threshold sub-metrics on it.
type metricState struct {
	stats
	kind metricKind
	subs []*submetric
}

// accumulator holds the running state of Summarize; it grows with metrics,
// tag groups and seconds (72 bytes each once closed), never with samples.
type accumulator struct {
	decode  decoder
	ln      line
	pt      point
	start   time.Time
	end     time.Time
	metrics map[string]*metricState
	types   map[string]string
	// groups and checks are keyed by their keys' parts, each prefixed
	// with its length (appendKey), so a line is looked up without
	// allocating; keyBuf holds the current key.
	groups map[string]*group
	checks map[string]*CheckStats
	keyBuf []byte
	errors map[string]*float64 // failed requests by status
	series series

	// thresholds are evaluated at the end; subs holds the sub-metrics they
	// select by metric name, subByName by threshold metric as written.
	thresholds []threshold
	subs       map[string][]*submetric
	subByName  map[string]*submetric
	// raw is the current line, extra its tags once decoded (extraDecoded)
	// with encoding/json for a sub-metric, when the line is not scanned.
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

func newAccumulator(dec decoder) *accumulator {
	return &accumulator{
		decode:  dec,
		metrics: map[string]*metricState{},
		types:   map[string]string{},
		groups:  map[string]*group{},
		checks:  map[string]*CheckStats{},
		errors:  map[string]*float64{},
		series:  newSeries(seriesWindow),
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
	if a.decode == decodeFast && scanPoint(b, &a.pt) {
		return a.addPoint(&a.pt)
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
		a.pt.decoded(&a.ln)
		return a.addPoint(&a.pt)
	}
	return nil
}

// decoded sets p to the Point encoding/json decoded into ln.
func (p *point) decoded(ln *line) {
	d := &ln.Data
	*p = point{metric: []byte(ln.Metric), time: d.Time, value: d.Value}
	for i, v := range [numTags]string{
		tagName:             d.Tags.Name,
		tagURL:              d.Tags.URL,
		tagMethod:           d.Tags.Method,
		tagStatus:           d.Tags.Status,
		tagScenario:         d.Tags.Scenario,
		tagCheck:            d.Tags.Check,
		tagGroup:            d.Tags.Group,
		tagExpectedResponse: d.Tags.ExpectedResponse,
	} {
		p.tags[i] = []byte(v)
	}
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
	m := a.metrics[name]
	if m == nil {
		m = a.newMetric(name)
	}
	if typ != TypeTrend {
		m.hist = nil
	}
	return nil
}

// newMetric adds the metric name, recording a histogram unless the metric
// is declared as something other than a trend.
func (a *accumulator) newMetric(name string) *metricState {
	m := &metricState{subs: a.subs[name]}
	if typ, ok := a.types[name]; !ok || typ == TypeTrend {
		m.hist = newHistogram()
	}
	switch name {
	case metricDuration:
		m.kind = kindDuration
	case metricRequests:
		m.kind = kindRequests
	case metricFailed:
		m.kind = kindFailed
	case metricChecks:
		m.kind = kindChecks
	case metricVUs:
		m.kind = kindVUs
	}
	a.metrics[name] = m
	return m
}

func (a *accumulator) addPoint(p *point) error {
	if len(p.metric) == 0 {
		return errors.New("a Point line without a metric name")
	}
	t, v := p.time, p.value
	if t.IsZero() {
		return fmt.Errorf("a Point of %s without a time", p.metric)
	}
	if a.start.IsZero() || t.Before(a.start) {
		a.start = t
	}
	if t.After(a.end) {
		a.end = t
	}
	m := a.metrics[string(p.metric)]
	if m == nil {
		m = a.newMetric(string(p.metric))
	}
	m.add(v, t)
	if len(m.subs) > 0 {
		a.addToSubmetrics(m.subs, p)
	}
	unix := t.Unix()
	a.series.advance(unix)

	switch m.kind {
	case kindDuration:
		name := p.tags[tagName]
		if len(name) == 0 {
			name = p.tags[tagURL]
		}
		k := appendKey(a.keyBuf[:0], name)
		k = appendKey(k, p.tags[tagMethod])
		k = appendKey(k, p.tags[tagStatus])
		k = appendKey(k, p.tags[tagScenario])
		a.keyBuf = k
		g := a.groups[string(k)]
		if g == nil {
			g = &group{
				key:   groupKey{string(name), string(p.tags[tagMethod]), string(p.tags[tagStatus]), string(p.tags[tagScenario])},
				stats: stats{hist: newHistogram()},
			}
			a.groups[string(k)] = g
		}
		g.add(v, t)
		a.series.addLatency(unix, v, t)
	case kindRequests:
		a.series.addRequests(unix, v)
		status := p.tags[tagStatus]
		// The conversion does not allocate: the string does not outlive the call.
		if code, err := strconv.Atoi(string(status)); err == nil && (code == 0 || code >= 400) {
			if n := a.errors[string(status)]; n != nil {
				*n += v
			} else {
				n = new(float64)
				*n = v
				a.errors[string(status)] = n
			}
		}
	case kindFailed:
		a.series.addFailed(unix, v)
	case kindChecks:
		k := appendKey(a.keyBuf[:0], p.tags[tagGroup])
		k = appendKey(k, p.tags[tagCheck])
		a.keyBuf = k
		c := a.checks[string(k)]
		if c == nil {
			c = &CheckStats{Name: string(p.tags[tagCheck]), Group: string(p.tags[tagGroup])}
			a.checks[string(k)] = c
		}
		if v != 0 {
			c.Passes++
		} else {
			c.Fails++
		}
	case kindVUs:
		a.series.addVUs(unix, v)
	}
	return nil
}

// appendKey appends part to a map key, prefixed with its length so that
// different parts never make the same key.
func appendKey(dst, part []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(part)))
	return append(dst, part...)
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

// quantile is quantiles(h, []float64{p}, min, max)[0], without allocating.
func quantile(h *hdrhistogram.PackedHistogram, p, min, max float64) float64 {
	return math.Min(math.Max(float64(h.ValueAtPercentile(p))/histScale, min), max)
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
	}
	runSeconds := a.end.Sub(a.start).Seconds()

	for name, m := range a.metrics {
		s.Metrics[name] = m.metricStats(a.types[name], runSeconds)
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

	for _, g := range a.groups {
		key, st := g.key, &g.stats
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
		s.ErrorsByStatus[status] = int(math.Round(*n))
	}

	s.Series = a.series.finish()

	return s
}
