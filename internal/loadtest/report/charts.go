package report

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"image/color"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// Chart geometry in points; the page scales the SVG to its column.
const (
	chartWidth  = 440
	chartHeight = 190
)

// maxPoints bounds the points of one line, so a report of a long run stays
// small: beyond it, consecutive seconds are merged into buckets.
const maxPoints = 1200

// Charts are drawn in placeholder colors that are then replaced by CSS
// variables, so that the page's light or dark theme colors them.
var (
	inkColor  = color.RGBA{1, 2, 3, 255}
	gridColor = color.RGBA{1, 2, 4, 255}
	seriesInk = []color.RGBA{{1, 2, 5, 255}, {1, 2, 6, 255}, {1, 2, 7, 255}, {1, 2, 8, 255}}
)

// themeColors maps each placeholder, as vgsvg writes it, to its CSS variable.
var themeColors = strings.NewReplacer(
	hexColor(inkColor), "var(--chart-ink)",
	hexColor(gridColor), "var(--chart-grid)",
	hexColor(seriesInk[0]), "var(--chart-1)",
	hexColor(seriesInk[1]), "var(--chart-2)",
	hexColor(seriesInk[2]), "var(--chart-3)",
	hexColor(seriesInk[3]), "var(--chart-4)",
)

// fontFamily matches the font vgsvg names (gonum's Liberation Sans), which
// the page replaces with its own metric-compatible font stack.
var fontFamily = regexp.MustCompile(`font-family:[^;"]*`)

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02X%02X%02X", c.R, c.G, c.B) }

// chartView is one chart of the page: an inline SVG, or a note saying why
// there is none.
type chartView struct {
	ID      string
	Title   string
	Legend  []legendEntry
	SVG     template.HTML
	Note    string
	Caption string
}

type legendEntry struct {
	Label string
	Ink   int // 1-based number of the line's color, as in --chart-1
}

// line is one named line of a chart, drawn in the chart color ink (an index
// of seriesInk); NaN in y marks a missing value.
type line struct {
	label string
	ink   int
	y     []float64
}

// timeline is the run's per-second series as x positions (seconds since the
// first second) and values, merged into buckets of step seconds when long.
type timeline struct {
	x             []float64
	step          float64
	rps, vus      []float64
	p50, p95, p99 []float64
	errorRate     []float64
}

// newTimeline turns the series into chart points, merging seconds into
// buckets when there are more than maxPoints of them: a bucket shows the
// mean rate, the worst latency percentiles, the weighted error rate and the
// peak VUs of its seconds.
func newTimeline(series []loadtest.SecondStats) *timeline {
	tl := &timeline{step: 1}
	if len(series) == 0 {
		return tl
	}
	t0 := series[0].Time
	span := series[len(series)-1].Time.Sub(t0).Seconds() + 1
	if span > maxPoints {
		tl.step = math.Ceil(span / maxPoints)
	}
	type bucket struct {
		x, requests, failed, weighted, p50, p95, p99, vus float64
		latency                                           bool
	}
	var buckets []*bucket
	for _, sec := range series {
		x := sec.Time.Sub(t0).Seconds()
		x -= math.Mod(x, tl.step)
		if len(buckets) == 0 || buckets[len(buckets)-1].x != x {
			buckets = append(buckets, &bucket{x: x, p50: math.NaN(), p95: math.NaN(), p99: math.NaN()})
		}
		b := buckets[len(buckets)-1]
		n := float64(sec.Requests)
		b.requests += n
		if sec.Requests > 0 {
			b.latency = true
			b.p50 = maxFinite(b.p50, sec.P50)
			b.p95 = maxFinite(b.p95, sec.P95)
			b.p99 = maxFinite(b.p99, sec.P99)
			if finite(sec.ErrorRate) {
				b.failed += sec.ErrorRate * n
				b.weighted += n
			}
		}
		b.vus = math.Max(b.vus, float64(sec.VUs))
	}
	for _, b := range buckets {
		tl.x = append(tl.x, b.x)
		tl.rps = append(tl.rps, b.requests/tl.step)
		tl.vus = append(tl.vus, b.vus)
		if !b.latency {
			b.p50, b.p95, b.p99 = math.NaN(), math.NaN(), math.NaN()
		}
		tl.p50 = append(tl.p50, b.p50)
		tl.p95 = append(tl.p95, b.p95)
		tl.p99 = append(tl.p99, b.p99)
		rate := math.NaN()
		if b.weighted > 0 {
			rate = 100 * b.failed / b.weighted
		}
		tl.errorRate = append(tl.errorRate, rate)
	}
	return tl
}

// maxFinite returns the larger of a and b, ignoring either when it is NaN or
// infinite.
func maxFinite(a, b float64) float64 {
	switch {
	case !finite(b):
		return a
	case !finite(a):
		return b
	}
	return math.Max(a, b)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// charts draws the four charts of the report.
func charts(s *loadtest.Summary) ([]chartView, error) {
	tl := newTimeline(s.Series)
	caption := ""
	if tl.step > 1 {
		caption = fmt.Sprintf("Each point covers %s of the run.", time.Duration(tl.step)*time.Second)
	}
	specs := []chartSpec{
		{"latency", "Latency percentiles", "ms", false, []line{{"p50", 0, tl.p50}, {"p95", 1, tl.p95}, {"p99", 2, tl.p99}},
			"No request completed, so there are no latencies to chart."},
		{"requests", "Requests per second", "req/s", false, []line{{"requests/s", 0, tl.rps}},
			"No per-second data: the run recorded no samples."},
		{"errors", "Error rate", "%", false, []line{{"failed requests", 2, tl.errorRate}},
			"No request completed, so there is no error rate to chart."},
		{"vus", "Virtual users", "VUs", true, []line{{"active VUs", 3, tl.vus}},
			"No per-second data: the run recorded no samples."},
	}
	out := make([]chartView, 0, len(specs))
	for _, sp := range specs {
		cv := chartView{ID: sp.id, Title: sp.title, Caption: caption}
		if len(sp.lines) > 1 {
			for _, l := range sp.lines {
				cv.Legend = append(cv.Legend, legendEntry{Label: l.label, Ink: l.ink + 1})
			}
		}
		svg, ok, err := drawChart(tl.x, tl.step, sp)
		switch {
		case err != nil:
			return nil, fmt.Errorf("report: draw the %s chart: %w", strings.ToLower(sp.title), err)
		case !ok:
			cv.Note = sp.empty
		default:
			cv.SVG = svg
		}
		out = append(out, cv)
	}
	return out, nil
}

// chartSpec describes one chart: its lines, the unit of its values (whole
// numbers when whole), and the note shown when it has nothing to draw.
type chartSpec struct {
	id, title, unit string
	whole           bool
	lines           []line
	empty           string
}

// drawChart draws the spec's lines over x as an inline SVG element, breaking
// each line where a value is missing or a second has no samples; ok is false
// when no line has a finite value.
func drawChart(x []float64, step float64, spec chartSpec) (svg template.HTML, ok bool, err error) {
	p := plot.New()
	p.BackgroundColor = nil // the page's background shows through
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Color = inkColor
		ax.Tick.Color = inkColor
		ax.Tick.Label.Color = inkColor
		ax.Label.TextStyle.Color = inkColor
		ax.Label.TextStyle.Font.Size = vg.Points(10)
		ax.Tick.Label.Font.Size = vg.Points(9.5)
	}
	p.X.Label.Text = "elapsed (m:ss)"
	p.Y.Label.Text = spec.unit

	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal.Color = gridColor
	grid.Horizontal.Width = vg.Points(0.5)
	p.Add(grid)

	ymax := 0.0
	for _, l := range spec.lines {
		for _, seg := range segments(x, l.y, step) {
			if len(seg) == 1 {
				sc, err := plotter.NewScatter(seg)
				if err != nil {
					return "", false, err
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: seriesInk[l.ink], Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
				p.Add(sc)
			} else {
				ln, err := plotter.NewLine(seg)
				if err != nil {
					return "", false, err
				}
				ln.Color = seriesInk[l.ink]
				ln.Width = vg.Points(1.25)
				p.Add(ln)
			}
			for _, pt := range seg {
				ymax = math.Max(ymax, pt.Y)
			}
			ok = true
		}
	}
	if !ok {
		return "", false, nil
	}
	last := x[len(x)-1]
	p.X.Min, p.X.Max = 0, math.Max(last, 1)
	p.X.Tick.Marker = plot.TickerFunc(elapsedTicks)
	top, yticks := valueTicks(ymax, spec.whole)
	p.Y.Min, p.Y.Max = 0, top
	p.Y.Tick.Marker = plot.ConstantTicks(yticks)

	c := vgsvg.New(chartWidth, chartHeight)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", false, err
	}
	return inlineSVG(buf.String(), spec.title), true, nil
}

// segments splits a line into runs of finite points with no gap of more
// than step between neighbours.
func segments(x, y []float64, step float64) []plotter.XYs {
	var segs []plotter.XYs
	var cur plotter.XYs
	for i := range x {
		if !finite(y[i]) || !finite(x[i]) {
			if len(cur) > 0 {
				segs = append(segs, cur)
			}
			cur = nil
			continue
		}
		if len(cur) > 0 && x[i]-cur[len(cur)-1].X > step {
			segs = append(segs, cur)
			cur = nil
		}
		cur = append(cur, plotter.XY{X: x[i], Y: y[i]})
	}
	if len(cur) > 0 {
		segs = append(segs, cur)
	}
	return segs
}

// inlineSVG turns vgsvg's standalone document into an element for an HTML
// page: no XML prolog, a viewBox the page scales, and colors and fonts from
// the page's CSS variables.
func inlineSVG(doc, title string) template.HTML {
	start := strings.Index(doc, "<svg")
	end := start + strings.IndexByte(doc[start:], '>')
	body := doc[end+1:]
	body = themeColors.Replace(body)
	body = fontFamily.ReplaceAllString(body, "font-family:var(--chart-font)")
	open := fmt.Sprintf(`<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		chartWidth, chartHeight, html.EscapeString(title))
	// The SVG comes from gonum's writer, which escapes its text (tick labels
	// and axis labels, all set here), with colors and fonts replaced above.
	return template.HTML(open + body)
}

// elapsedTicks marks elapsed time at a round step, about six ticks in all.
func elapsedTicks(min, max float64) []plot.Tick {
	steps := []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if (max-min)/s <= 7 {
			step = s
			break
		}
	}
	for (max-min)/step > 7 {
		step *= 2
	}
	var ticks []plot.Tick
	for v := math.Ceil(min/step) * step; v <= max; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: formatElapsed(v)})
	}
	return ticks
}

// formatElapsed formats seconds as m:ss, or h:mm:ss from an hour on.
func formatElapsed(sec float64) string {
	s := int64(math.Round(sec))
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// valueTicks returns the top of a value axis from 0 that holds max, and its
// ticks at a round step (1, 2, 2.5 or 5 times a power of ten), about four of
// them; whole values get a step of at least 1.
func valueTicks(max float64, whole bool) (top float64, ticks []plot.Tick) {
	if !(max > 0) {
		max = 1
	}
	raw := max / 4
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * pow
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	if whole {
		switch {
		case step < 1:
			step = 1
		case step == 2.5:
			step = 5
		}
	}
	n := math.Ceil(max/step - 1e-9)
	top = n * step
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step)))
		if m := step / math.Pow(10, -float64(decimals)); math.Abs(m-math.Round(m)) > 1e-9 {
			decimals++ // 0.25 needs two decimals
		}
	} else if step != math.Trunc(step) {
		decimals = 1 // 2.5
	}
	for i := 0.0; i <= n; i++ {
		v := i * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return top, ticks
}
