package loadtest

import (
	"encoding/json"
	"math"
	"slices"
)

// submetric accumulates the samples of a metric that match a tag selector,
// like k6's sub-metrics; there is one per distinct selector in the thresholds.
type submetric struct {
	names    []string // the threshold metrics that select it, as written
	base     string
	selector []tagMatch
	st       *stats
}

// watch prepares the accumulator to evaluate ts at the end of the stream,
// with one sub-metric per distinct tag selector.
func (a *accumulator) watch(ts []threshold) {
	a.thresholds = ts
	byKey := map[string]*submetric{}
	for _, t := range ts {
		if t.selector == nil {
			continue
		}
		key := selectorKey(t.base, t.selector)
		sm := byKey[key]
		if sm == nil {
			sm = &submetric{base: t.base, selector: t.selector}
			byKey[key] = sm
			a.subs[t.base] = append(a.subs[t.base], sm)
		}
		if len(sm.names) == 0 || sm.names[len(sm.names)-1] != t.metric {
			sm.names = append(sm.names, t.metric)
		}
	}
	a.subByName = map[string]*submetric{}
	for _, sm := range byKey {
		for _, name := range sm.names {
			a.subByName[name] = sm
		}
	}
}

// addToSubmetrics adds p, the current Point, to the sub-metrics it matches.
func (a *accumulator) addToSubmetrics(subs []*submetric, p *point) {
	for _, sm := range subs {
		if !a.matches(p, sm.selector) {
			continue
		}
		if sm.st == nil {
			sm.st = &stats{}
			if typ, ok := a.types[sm.base]; !ok || typ == TypeTrend {
				sm.st.hist = newHistogram()
			}
		}
		sm.st.add(p.value, p.time)
	}
}

// matches reports whether p has every tag of sel.
func (a *accumulator) matches(p *point, sel []tagMatch) bool {
	for _, m := range sel {
		if !a.hasTag(p, m.key, m.value) {
			return false
		}
	}
	return true
}

// hasTag reports whether p, the current Point, has tag key with value. The
// tags the summary decodes anyway count as present even when empty; others
// are looked up on demand.
func (a *accumulator) hasTag(p *point, key, value string) bool {
	for i, k := range tagKeys {
		if k == key {
			return string(p.tags[i]) == value
		}
	}
	if p.scanned {
		v, ok := lookupTag(p.rawTags, key)
		return ok && string(v) == value
	}
	if !a.extraDecoded {
		a.extraDecoded = true
		var l struct {
			Data struct {
				Tags map[string]string `json:"tags"`
			} `json:"data"`
		}
		// The line already decoded once; a tag that is not a string does
		// not match.
		_ = json.Unmarshal(a.raw, &l)
		a.extra = l.Data.Tags
	}
	v, ok := a.extra[key]
	return ok && v == value
}

// evaluate evaluates the thresholds the accumulator watches, as k6 does at
// the end of a run over the whole run; runSeconds stands in for k6's test
// duration in a counter's rate.
func (a *accumulator) evaluate(runSeconds float64) []ThresholdResult {
	out := make([]ThresholdResult, 0, len(a.thresholds))
	for i := range a.thresholds {
		t := &a.thresholds[i]
		r := ThresholdResult{Metric: t.metric, Expression: t.expr}
		var st *stats
		if m := a.metrics[t.base]; m != nil {
			st = &m.stats
		}
		if t.selector != nil {
			st = a.subByName[t.metric].st
		}
		if st != nil {
			r.Samples = st.count
		}
		typ := a.metricType(t.base, t.method)
		if !slices.Contains(methodsByType[typ], t.method) {
			r.Error = wrongMethod(t.method, typ)
			out = append(out, r)
			continue
		}
		v, ok := thresholdValue(st, typ, t, runSeconds)
		r.Value = finite(v)
		// k6 has no value for a rate without samples and passes its thresholds.
		r.OK = !ok || t.holds(v)
		out = append(out, r)
	}
	return out
}

// declaredType is the type of metric name as the stream declares it, or as
// k6 defines its built-in metrics; "" when neither knows it.
func (a *accumulator) declaredType(name string) string {
	if typ := a.types[name]; typ != "" {
		return typ
	}
	return builtinTypes[name]
}

// metricType is the type of metric name: as declared in the stream, as k6
// defines its built-in metrics, or else the one the method implies.
func (a *accumulator) metricType(name, method string) string {
	if typ := a.declaredType(name); typ != "" {
		return typ
	}
	switch method {
	case methodCount:
		return TypeCounter
	case methodValue:
		return TypeGauge
	case methodRate:
		return TypeRate
	}
	return TypeTrend
}

// thresholdValue computes the aggregate t's method asks for over st (nil
// when there were no samples), as k6's sinks do; ok is false when k6 has no
// value.
func thresholdValue(st *stats, typ string, t *threshold, runSeconds float64) (v float64, ok bool) {
	if st == nil {
		st = &stats{}
	}
	switch t.method {
	case methodCount:
		return st.sum, true
	case methodRate:
		if typ == TypeCounter {
			if runSeconds <= 0 {
				return 0, true
			}
			return st.sum / runSeconds, true
		}
		if st.count == 0 {
			return 0, false
		}
		return float64(st.nonZero) / float64(st.count), true
	case methodValue:
		return st.last, true
	case methodAvg:
		return st.mean(), true
	case methodMin:
		return st.min, true
	case methodMax:
		return st.max, true
	case methodMed:
		return st.interpolated(50), true
	case methodPercentile:
		return st.interpolated(t.pct), true
	}
	return 0, false
}

// interpolated returns percentile p (0 to 100) the way k6 computes it for a
// threshold: interpolating linearly between the two nearest ranks, whose
// values come from the histogram (the extremes exactly).
func (st *stats) interpolated(p float64) float64 {
	switch st.count {
	case 0:
		return 0
	case 1:
		return st.min
	}
	i := p / 100 * float64(st.count-1)
	lo := math.Floor(i)
	vlo := st.valueAtRank(int64(lo) + 1)
	if i == lo {
		return vlo
	}
	vhi := st.valueAtRank(int64(lo) + 2)
	return vlo + (vhi-vlo)*(i-lo)
}

// valueAtRank returns the r-th smallest sample (r from 1 to count).
func (st *stats) valueAtRank(r int64) float64 {
	switch {
	case r <= 1:
		return st.min
	case r >= st.count || st.hist == nil:
		return st.max
	}
	// HdrHistogram turns a percentile into the rank int(p/100*count + 0.5).
	v := float64(st.hist.ValueAtPercentile(100*float64(r)/float64(st.count))) / histScale
	return math.Min(math.Max(v, st.min), st.max)
}
