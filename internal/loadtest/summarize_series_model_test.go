package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestSeriesMatchesAModel feeds series samples of thousands of seconds,
// some of them minutes late, and compares every second with a model that
// keeps all seconds in a map: the counts must be exact, the percentiles
// those of the samples that came in time (or the first late latency of a
// second that had none).
func TestSeriesMatchesAModel(t *testing.T) {
	t.Parallel()
	type modelSecond struct {
		requests            float64
		failed, failedTotal int64
		vus                 float64
		onTime              stats
		firstLate           float64
		late                bool
	}
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 7))
		s := newSeries(seriesWindow)
		model := map[int64]*modelSecond{}
		var newest int64 = math.MinInt64
		base := int64(1_800_000_000)
		for i := range 60_000 {
			// Mostly in order over 5000 seconds, some late by up to 10 minutes,
			// a few from before the first second.
			unix := base + int64(i/12)
			switch r.IntN(20) {
			case 0:
				unix -= r.Int64N(600)
			case 1:
				unix -= r.Int64N(150)
			}
			if unix%97 == 0 && r.IntN(2) == 0 {
				continue // seconds with no sample until a late one, if any
			}
			newest = max(newest, unix)
			late := unix < newest-seriesWindow
			m := model[unix]
			if m == nil {
				m = &modelSecond{onTime: stats{hist: newHistogram()}}
				model[unix] = m
			}
			v := math.Round(r.ExpFloat64()*50*1000) / 1000
			at := time.Unix(unix, 0)
			s.advance(unix)
			switch r.IntN(4) {
			case 0:
				s.addLatency(unix, v, at)
				switch {
				case !late:
					m.onTime.add(v, at)
				case m.onTime.count == 0 && !m.late:
					m.firstLate, m.late = v, true
				}
			case 1:
				s.addRequests(unix, v)
				m.requests += v
			case 2:
				s.addFailed(unix, float64(i%3))
				m.failedTotal++
				if i%3 != 0 {
					m.failed++
				}
			case 3:
				s.addVUs(unix, v)
				m.vus = math.Max(m.vus, v)
			}
		}
		got := s.finish()
		var want []SecondStats
		for _, unix := range slices.Sorted(func(yield func(int64) bool) {
			for u := range model {
				if !yield(u) {
					return
				}
			}
		}) {
			m := model[unix]
			c := closedSecond{unix: unix, requests: m.requests, failed: m.failed, failedTotal: m.failedTotal, vus: m.vus}
			switch {
			case m.onTime.count > 0:
				q := quantiles(m.onTime.hist, []float64{50, 95, 99}, m.onTime.min, m.onTime.max)
				c.p50, c.p95, c.p99 = q[0], q[1], q[2]
			case m.late:
				c.p50, c.p95, c.p99 = m.firstLate, m.firstLate, m.firstLate
			}
			want = append(want, c.secondStats())
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d seconds; the model has %d", seed, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("seed %d: second %d: %+v; the model says %+v", seed, i, got[i], want[i])
			}
		}
	}
}
