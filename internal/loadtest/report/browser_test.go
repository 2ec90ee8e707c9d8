package report

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gantry-dev/gantry/internal/loadtest"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// TestReportInBrowser opens reports in headless Chromium and checks what a
// reader sees: no console error, no request beyond the file itself, charts
// with lines, and legible text in the light and the dark theme, switched by
// the system preference and by the page's button. Full-page screenshots go
// to the test's temporary directory, and the 5-minute and k6 ones also to
// os.TempDir() as gantry-report[-k6]-{light,dark}.png for a person to look at.
func TestReportInBrowser(t *testing.T) {
	t.Parallel()
	browser := startBrowser(t)

	tests := []struct {
		name string
		run  func(t *testing.T) (*loadtest.Summary, Options)
		// minPoints is the least number of points of each chart's longest
		// line; 0 means the charts show notes instead.
		minPoints int
		shots     string // screenshot name in os.TempDir(), "" for none
	}{
		{"five minutes", func(*testing.T) (*loadtest.Summary, Options) { return synthetic(300), syntheticOptions() }, 250, "gantry-report"},
		{"real k6 run", runK6, 3, "gantry-report-k6"},
		{"single second", func(*testing.T) (*loadtest.Summary, Options) { return singleSecond(), Options{} }, 1, ""},
		{"empty", func(*testing.T) (*loadtest.Summary, Options) { return emptySummary(), Options{} }, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, opt := tt.run(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "report.html")
			if err := WriteFile(path, s, opt); err != nil {
				t.Fatal(err)
			}
			pageURL := "file://" + path

			// A browser context of its own gives the tab its own storage, so
			// the theme another tab picked does not carry over.
			// A minute bounds the tab, so an element that never shows up
			// fails the test instead of hanging it.
			limited, cancelLimit := context.WithTimeout(browser, time.Minute)
			defer cancelLimit()
			var pl pageLog
			tab, cancel := chromedp.NewContext(limited, chromedp.WithNewBrowserContext(), chromedp.WithListener(pl.listen))
			defer cancel()
			// What the page reported is checked last, also when a step fails.
			defer func() {
				for _, p := range pl.problemsSeen() {
					t.Errorf("the page reported: %s", p)
				}
				for _, u := range pl.requestsSeen() {
					if u != pageURL {
						t.Errorf("the page requested %s; want nothing but itself", u)
					}
				}
			}()
			if err := chromedp.Do(tab, emulateScheme("light"), chromedp.Navigate(pageURL)); err != nil {
				t.Fatalf("open %s: %v", pageURL, err)
			}

			checkCharts(t, tab, tt.minPoints)
			for _, scheme := range []string{"light", "dark"} {
				if err := chromedp.Do(tab, emulateScheme(scheme)); err != nil {
					t.Fatal(err)
				}
				checkTheme(t, tab, scheme, "auto", scheme)
				shot, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatalf("screenshot (%s): %v", scheme, err)
				}
				saveShot(t, filepath.Join(dir, scheme+".png"), shot)
				if tt.shots != "" {
					saveShot(t, filepath.Join(os.TempDir(), tt.shots+"-"+scheme+".png"), shot)
				}
			}

			// The button overrides the system's dark preference, then the
			// light one: auto, light, dark.
			if err := chromedp.Do(tab, chromedp.Click(chromedp.ID("theme"))); err != nil {
				t.Fatalf("click the theme button: %v", err)
			}
			checkTheme(t, tab, "dark", "light", "light")
			if err := chromedp.Do(tab, emulateScheme("light"), chromedp.Click(chromedp.ID("theme"))); err != nil {
				t.Fatalf("click the theme button: %v", err)
			}
			checkTheme(t, tab, "light", "dark", "dark")

		})
	}
}

// startBrowser starts headless Chromium for the test's tabs.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := testenv.Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		// Chromium leaves its singleton socket's directory in TMPDIR.
		chromedp.Env("TMPDIR=" + t.TempDir()),
	}
	for _, f := range testenv.ChromiumFlags() {
		opts = append(opts, chromedp.Flag(f, true))
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	return browser
}

// emulateScheme makes the tab prefer the light or the dark color scheme.
func emulateScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		if err != nil {
			return fmt.Errorf("emulate prefers-color-scheme: %s: %w", scheme, err)
		}
		return nil
	})
}

// pageLog collects, from the tab's event loop, what went wrong on the page
// and every request it made.
type pageLog struct {
	mu       sync.Mutex
	problems []string
	requests []string
}

func (l *pageLog) listen(ev any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			l.problems = append(l.problems, fmt.Sprintf("console.%s(%s)", ev.Type, strings.Join(args, ", ")))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		l.problems = append(l.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
	case *cdplog.EventEntryAdded:
		if e := ev.Entry; e.Level == cdplog.EntryLevelError || e.Level == cdplog.EntryLevelWarning {
			l.problems = append(l.problems, fmt.Sprintf("%s %s: %s %s", e.Source, e.Level, e.Text, e.URL))
		}
	case *network.EventRequestWillBeSent:
		l.requests = append(l.requests, ev.Request.URL)
	}
}

func (l *pageLog) problemsSeen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.problems...)
}

func (l *pageLog) requestsSeen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requests...)
}

// renderedChart is what the page shows in one chart's figure.
type renderedChart struct {
	ID     string  `json:"id"`
	Lines  int     `json:"lines"`  // paths drawn in a series color
	Points int     `json:"points"` // points of the longest of them
	Width  float64 `json:"width"`  // of the SVG, in CSS pixels
	Height float64 `json:"height"`
	Labels int     `json:"labels"` // tick and axis labels with a size
	Note   string  `json:"note"`
}

const chartsJS = `[...document.querySelectorAll("figure")].map(f => {
  const svg = f.querySelector("svg.chart");
  const series = svg ? [...svg.querySelectorAll("path")].filter(p => /var\(--chart-[1-4]\)/.test(p.getAttribute("style") || "")) : [];
  const points = series.map(p => (p.getAttribute("d").match(/[ML]/g) || []).length);
  const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  const labels = svg ? [...svg.querySelectorAll("text")].filter(t => t.getBBox().width > 0 && t.textContent.trim() !== "") : [];
  const note = f.querySelector(".note");
  return {id: f.id, lines: series.length, points: Math.max(0, ...points), width: box.width, height: box.height,
    labels: labels.length, note: note ? note.textContent : ""};
})`

// checkCharts checks that each chart is drawn at a readable size with lines
// of at least minPoints points and labelled axes, or, for minPoints 0, that
// it says why it has no chart.
func checkCharts(t *testing.T, tab context.Context, minPoints int) {
	t.Helper()
	charts, err := chromedp.Run(tab, chromedp.Evaluate[[]renderedChart](chartsJS))
	if err != nil {
		t.Fatalf("read the charts: %v", err)
	}
	if len(charts) != 4 {
		t.Fatalf("the page shows %d charts; want 4: %+v", len(charts), charts)
	}
	for _, c := range charts {
		switch {
		case minPoints == 0 && (c.Lines > 0 || c.Note == ""):
			t.Errorf("%s: %+v; want a note and no chart", c.ID, c)
		case minPoints > 0 && (c.Lines == 0 || c.Points < minPoints):
			t.Errorf("%s: %d lines, the longest of %d points; want a line of at least %d", c.ID, c.Lines, c.Points, minPoints)
		case minPoints > 0 && (c.Width < 300 || c.Height < 100 || c.Labels < 6):
			t.Errorf("%s: drawn %.0f×%.0f px with %d visible labels; want a readable chart with labelled axes", c.ID, c.Width, c.Height, c.Labels)
		}
	}
}

// pageColors are computed colors of the page in its current theme.
type pageColors struct {
	Dark       bool   `json:"dark"`  // the system preference the page sees
	Theme      string `json:"theme"` // the page's data-theme, "" for auto
	Button     string `json:"button"`
	Background string `json:"background"`
	Text       string `json:"text"`
	Muted      string `json:"muted"`
	Panel      string `json:"panel"`
	Tick       string `json:"tick"`
	Line       string `json:"line"`
}

const themeJS = `(() => {
  const color = (sel, prop) => { const e = document.querySelector(sel); return e ? getComputedStyle(e).getPropertyValue(prop) : ""; };
  return {
    dark: matchMedia("(prefers-color-scheme: dark)").matches,
    theme: document.documentElement.getAttribute("data-theme") || "",
    button: ((b) => b.hidden ? "(hidden)" : b.textContent)(document.getElementById("theme")),
    background: color("body", "background-color"),
    text: color("body", "color"),
    muted: color("dl.meta dt", "color"),
    panel: color("figure", "background-color"),
    tick: color("svg.chart text", "fill"),
    // A line is stroked; a lone second is a filled dot.
    line: [color("svg.chart path[style*='--chart-1']", "stroke"), color("svg.chart path[style*='--chart-1']", "fill")].find(c => c !== "none") || "",
  };
})()`

// checkTheme checks that the page, with the system preferring scheme and its
// button on mode, shows the look (light or dark) with legible text (WCAG AA:
// 4.5:1) and chart lines (3:1).
func checkTheme(t *testing.T, tab context.Context, scheme, mode, look string) {
	t.Helper()
	c, err := chromedp.Run(tab, chromedp.Evaluate[pageColors](themeJS))
	if err != nil {
		t.Fatalf("read the theme's colors: %v", err)
	}
	if c.Dark != (scheme == "dark") || c.Button != "Theme: "+mode || (c.Theme == "") != (mode == "auto") {
		t.Fatalf("the page sees dark=%v, theme %q, button %q; want the %s preference and mode %s", c.Dark, c.Theme, c.Button, scheme, mode)
	}
	bg := parseColor(t, c.Background)
	if l := luminance(bg); (look == "dark") != (l < 0.2) {
		t.Errorf("%s preference, mode %s: background %s (luminance %.2f); want a %s page", scheme, mode, c.Background, l, look)
	}
	type pair struct {
		what     string
		fg, bg   string
		minRatio float64
	}
	pairs := []pair{
		{"text", c.Text, c.Background, 4.5},
		{"muted text", c.Muted, c.Background, 4.5},
		{"muted text on a panel", c.Muted, c.Panel, 4.5},
	}
	if c.Tick != "" {
		pairs = append(pairs, pair{"chart labels", c.Tick, c.Panel, 4.5}, pair{"chart line", c.Line, c.Panel, 3})
	}
	for _, p := range pairs {
		if r := contrast(parseColor(t, p.fg), parseColor(t, p.bg)); r < p.minRatio {
			t.Errorf("%s look: %s %s on %s has contrast %.2f; want at least %.1f", look, p.what, p.fg, p.bg, r, p.minRatio)
		}
	}
}

var rgbColor = regexp.MustCompile(`^rgba?\((\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?)(?:,\s*([\d.]+))?\)$`)

// parseColor reads a computed rgb() or opaque rgba() color.
func parseColor(t *testing.T, s string) [3]float64 {
	t.Helper()
	m := rgbColor.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || (m[4] != "" && m[4] != "1") {
		t.Fatalf("computed color %q is not an opaque rgb()", s)
	}
	var c [3]float64
	for i := range c {
		c[i], _ = strconv.ParseFloat(m[i+1], 64)
	}
	return c
}

// luminance is the relative luminance of an sRGB color, as WCAG defines it.
func luminance(c [3]float64) float64 {
	var lin [3]float64
	for i, v := range c {
		v /= 255
		if v <= 0.04045 {
			lin[i] = v / 12.92
		} else {
			lin[i] = math.Pow((v+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*lin[0] + 0.7152*lin[1] + 0.0722*lin[2]
}

// contrast is the WCAG contrast ratio of two colors, from 1 to 21.
func contrast(a, b [3]float64) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func saveShot(t *testing.T, path string, png []byte) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("the screenshot for %s is not a PNG", path)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// k6Script ramps from 1 to 10 VUs and back over 6 seconds, each VU pausing
// 50 ms between iterations, and names one request with HTML and Unicode.
const k6Script = `
import http from 'k6/http';
import { check, sleep } from 'k6';

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 1,
      gracefulRampDown: '0s',
      stages: [
        { target: 10, duration: '3s' },
        { target: 10, duration: '1s' },
        { target: 1, duration: '2s' },
      ],
    },
  },
};

export default function () {
  const res = http.get(__ENV.TARGET + '/items');
  check(res, { 'status is 200': (r) => r.status === 200 });
  http.post(__ENV.TARGET + '/cart', '{}', { tags: { name: '<b>cart</b> & "checkout" — Grüße' } });
  sleep(0.05);
}
`

// runK6 runs k6 against a local server that fails every tenth request and
// summarizes the run.
func runK6(t *testing.T) (*loadtest.Summary, Options) {
	t.Helper()
	k6 := testenv.K6(t)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if served.Add(1)%10 == 0 {
			http.Error(w, "injected failure", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()

	dir := t.TempDir()
	script := filepath.Join(dir, "script.js")
	if err := os.WriteFile(script, []byte(k6Script), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.json.gz")
	cmd := exec.CommandContext(t.Context(), k6, "run", "--quiet", "--out", "json="+out, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true", "TARGET="+srv.URL)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("k6 run: %v\n%s", err, output)
	}
	s, err := loadtest.SummarizeFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Series) < 6 || len(s.ErrorsByStatus) == 0 {
		t.Fatalf("k6's summary has %d seconds and errors %v; want at least 6 seconds and some 503s", len(s.Series), s.ErrorsByStatus)
	}
	return s, Options{Title: "k6 against a local server", Target: srv.URL}
}
