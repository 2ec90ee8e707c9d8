package loadtest

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// seriesWindow is how many seconds a second of the run stays open for
// samples after the newest sample seen. k6 writes samples roughly in time
// order, but those of a request when it ends, so a sample can be as late as
// the longest request: k6's default request timeout is 60 s, and 120 s
// covers that twice. Only the open seconds keep a latency histogram, so the
// memory for Summary.Series is this many histograms plus 72 bytes per second
// of the run, however long the run. A later sample still counts in every
// whole-run statistic (metrics, groups, checks, errors, thresholds); what it
// changes in its own second closedSecond says.
const seriesWindow = 120

// second accumulates the samples of one open second of the run.
type second struct {
	unix        int64
	requests    float64
	failed      int64
	failedTotal int64
	vus         float64
	// latency is http_req_duration; its histogram is allocated with the
	// first sample and kept when the second is recycled.
	latency stats
}

// closedSecond is a second that no longer takes samples on time: its
// percentiles are computed and its histogram recycled. It keeps its counts,
// so a late sample still counts exactly in its requests, error rate and
// VUs; a late latency does not move its percentiles (one more sample moves
// each by at most one rank), except that the first one of a second that had
// none becomes its p50, p95 and p99.
type closedSecond struct {
	unix          int64
	requests      float64
	failed        int64
	failedTotal   int64
	vus           float64
	latencies     int64
	p50, p95, p99 float64
}

// closedChunk is how many closed seconds share an allocation: they grow
// chunk by chunk, not as one slice that copies itself as it grows.
const closedChunk = 1024

// series accumulates Summary.Series: the seconds within window of the
// newest sample are open, in a ring indexed by Unix second; older ones are
// closed.
type series struct {
	window  int64
	open    []*second // by unix mod len(open); len(open) = window + 1
	newest  int64     // the newest second seen, once started
	started bool
	// closed holds the closed seconds, all before newest - window, by unix
	// in chunks (a late second inserted into a chunk grows it).
	closed  [][]closedSecond
	nClosed int
	free    []*second // closed seconds' structures for reuse
}

func newSeries(window int64) series {
	return series{window: window, open: make([]*second, window+1)}
}

func (s *series) slot(unix int64) int {
	n := int64(len(s.open))
	return int(((unix % n) + n) % n)
}

// advance takes the second of a sample of any metric: a newer second closes
// the seconds that fall out of the window.
func (s *series) advance(unix int64) {
	if !s.started {
		s.started, s.newest = true, unix
		return
	}
	if unix <= s.newest {
		return
	}
	// Open seconds are in [newest-window, newest]; those before
	// unix-window close, oldest first, so s.closed stays sorted.
	from := s.newest - s.window
	to := min(unix-s.window, from+int64(len(s.open)))
	for u := from; u < to; u++ {
		i := s.slot(u)
		if sec := s.open[i]; sec != nil {
			s.close(sec)
			s.open[i] = nil
		}
	}
	s.newest = unix
}

// at returns the open second unix, creating it, or nil if it is closed;
// advance(unix) must have been called.
func (s *series) at(unix int64) *second {
	if unix < s.newest-s.window {
		return nil
	}
	i := s.slot(unix)
	sec := s.open[i]
	if sec == nil {
		if n := len(s.free); n > 0 {
			sec, s.free = s.free[n-1], s.free[:n-1]
		} else {
			sec = &second{}
		}
		sec.unix = unix
		s.open[i] = sec
	}
	return sec
}

// late returns the closed second unix, adding it if the run had no sample
// in it before.
func (s *series) late(unix int64) *closedSecond {
	// The first chunk that ends at or after unix holds it or gets it.
	i, _ := slices.BinarySearchFunc(s.closed, unix, func(chunk []closedSecond, u int64) int {
		return cmp.Compare(chunk[len(chunk)-1].unix, u)
	})
	if i == len(s.closed) {
		s.appendClosed(closedSecond{unix: unix})
		last := s.closed[len(s.closed)-1]
		return &last[len(last)-1]
	}
	chunk := s.closed[i]
	j, found := slices.BinarySearchFunc(chunk, unix, func(c closedSecond, u int64) int {
		return cmp.Compare(c.unix, u)
	})
	if !found {
		chunk = slices.Insert(chunk, j, closedSecond{unix: unix})
		s.closed[i] = chunk
		s.nClosed++
	}
	return &chunk[j]
}

// appendClosed adds c after every closed second.
func (s *series) appendClosed(c closedSecond) {
	n := len(s.closed)
	if n == 0 || len(s.closed[n-1]) == cap(s.closed[n-1]) {
		s.closed = append(s.closed, make([]closedSecond, 0, closedChunk))
		n++
	}
	s.closed[n-1] = append(s.closed[n-1], c)
	s.nClosed++
}

// close computes the statistics of sec, appends them to s.closed and
// recycles sec with its histogram.
func (s *series) close(sec *second) {
	c := closedSecond{
		unix:        sec.unix,
		requests:    sec.requests,
		failed:      sec.failed,
		failedTotal: sec.failedTotal,
		vus:         sec.vus,
		latencies:   sec.latency.count,
	}
	h := sec.latency.hist
	if l := &sec.latency; l.count > 0 {
		// One percentile at a time, as quantiles would give them, without
		// allocating for each of the run's seconds.
		c.p50 = quantile(h, 50, l.min, l.max)
		c.p95 = quantile(h, 95, l.min, l.max)
		c.p99 = quantile(h, 99, l.min, l.max)
	}
	s.appendClosed(c)
	if h != nil {
		h.Reset()
	}
	*sec = second{latency: stats{hist: h}}
	s.free = append(s.free, sec)
}

// addLatency adds an http_req_duration sample of second unix.
func (s *series) addLatency(unix int64, v float64, t time.Time) {
	if sec := s.at(unix); sec != nil {
		if sec.latency.hist == nil {
			sec.latency.hist = newHistogram()
		}
		sec.latency.add(v, t)
		return
	}
	if c := s.late(unix); c.latencies == 0 {
		// What quantiles gives for a single sample: its exact value.
		c.p50, c.p95, c.p99 = v, v, v
		c.latencies = 1
	} else {
		c.latencies++
	}
}

// addRequests adds an http_reqs sample of second unix.
func (s *series) addRequests(unix int64, v float64) {
	if sec := s.at(unix); sec != nil {
		sec.requests += v
	} else {
		s.late(unix).requests += v
	}
}

// addFailed adds an http_req_failed sample of second unix.
func (s *series) addFailed(unix int64, v float64) {
	failed := int64(0)
	if v != 0 {
		failed = 1
	}
	if sec := s.at(unix); sec != nil {
		sec.failedTotal++
		sec.failed += failed
	} else {
		c := s.late(unix)
		c.failedTotal++
		c.failed += failed
	}
}

// addVUs adds a vus sample of second unix.
func (s *series) addVUs(unix int64, v float64) {
	if sec := s.at(unix); sec != nil {
		sec.vus = math.Max(sec.vus, v)
	} else {
		c := s.late(unix)
		c.vus = math.Max(c.vus, v)
	}
}

// finish closes every open second and returns the series in time order.
func (s *series) finish() []SecondStats {
	if s.started {
		for u := s.newest - s.window; u <= s.newest; u++ {
			i := s.slot(u)
			if sec := s.open[i]; sec != nil {
				s.close(sec)
				s.open[i] = nil
			}
		}
	}
	out := make([]SecondStats, 0, s.nClosed)
	for i, chunk := range s.closed {
		s.closed[i] = nil // for the garbage collector, as the series grows
		for _, c := range chunk {
			out = append(out, c.secondStats())
		}
	}
	s.closed, s.nClosed, s.free = nil, 0, nil
	return out
}

// secondStats is c as Summary.Series reports it.
func (c *closedSecond) secondStats() SecondStats {
	ss := SecondStats{
		Time:     time.Unix(c.unix, 0).UTC(),
		Requests: int64(math.Round(c.requests)),
		P50:      c.p50,
		P95:      c.p95,
		P99:      c.p99,
		VUs:      int(math.Round(c.vus)),
	}
	if c.failedTotal > 0 {
		ss.ErrorRate = float64(c.failed) / float64(c.failedTotal)
	}
	return ss
}
