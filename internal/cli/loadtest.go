package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/actionyml"
	"github.com/gantry-dev/gantry/internal/githubapi"
	"github.com/gantry-dev/gantry/internal/loadtest"
	"github.com/gantry-dev/gantry/internal/loadtest/k6run"
	"github.com/gantry-dev/gantry/internal/loadtest/report"
	"github.com/gantry-dev/gantry/internal/prcomment"
)

// uploadArtifact is the pinned actions/upload-artifact the loadtest action
// uploads its results with.
const uploadArtifact = actionyml.UploadArtifact

func loadtestSpec() *action.Spec {
	return &action.Spec{
		Name:        "loadtest",
		Description: "Run a k6 load test (a script, or a built-in smoke test of one URL) and gate the build on it: k6's raw output summarized in one streaming pass, thresholds evaluated, a comparison with a baseline run, a job summary with the verdict first, a self-contained HTML report and summary.json uploaded as an artifact, and one pull request comment kept up to date.",
		Summary:     "Run a k6 load test and gate the build on it: thresholds, baseline comparison, job summary, HTML report, one PR comment.",
		Inputs: []action.Input{
			{Name: "script", Description: "k6 script in the repository; its options (scenarios, thresholds) apply. Either script or url."},
			{Name: "url", Description: "URL for the built-in smoke test: constant-arrival-rate GET (or method) requests checked for a 2xx/3xx answer (or expect-status). Either script or url."},
			{Name: "rate", Description: "Smoke test: requests per second.", Kind: action.Int, Default: "10"},
			{Name: "vus", Description: "Smoke test: most virtual users busy at once (with rate), default rate; with rate 0, VUs that loop as fast as they can.", Kind: action.Int},
			{Name: "duration", Description: "Smoke test: how long the load lasts.", Kind: action.Duration, Default: "30s"},
			{Name: "method", Description: "Smoke test: HTTP method.", Default: "GET"},
			{Name: "expect-status", Description: "Smoke test: the status every answer must have; default any 2xx or 3xx.", Kind: action.Int},
			{Name: "env", Description: "Values for the script's __ENV, NAME=value one a line (a value may hold commas and =); passed through k6's environment, never its command line; values of secret-looking names and URL passwords are masked (see README)."},
			{Name: "thresholds", Description: "Thresholds besides the script's, metric:expression one a line in k6's syntax, e.g. http_req_duration:p(95)<300 or http_req_failed:rate<0.01.", Kind: action.List},
			{Name: "baseline", Description: "summary.json of an earlier run (e.g. downloaded from the previous run's artifact) to compare with; a missing file is a warning (a first run), a malformed one an error."},
			{Name: "max-regression", Description: "Largest change from the baseline that passes, e.g. p95=10%,error-rate=0.5pp,rps=-20% (metrics p50, p90, p95, p99, avg, max, error-rate, rps, checks).", Default: "p95=10%,error-rate=0.5pp"},
			{Name: "fail-on", Description: "What fails the step: a comma-separated list of thresholds, checks (a check that failed even once) and regression, or none.", Default: "thresholds,checks,regression"},
			{Name: "title", Description: "Name of the test in the summary, the report and the pull request comment.", Default: "Load test"},
			{Name: "output-dir", Description: "Directory for raw.json.gz, summary.json, report.html and the script; default gantry-loadtest under RUNNER_TEMP (or the current directory)."},
			{Name: "k6-version", Description: "k6 release to run, 2.x or 1.x (such as 1.8.1): one on PATH of that version, else the release archive, checksum-verified, into the tool cache.", Default: k6run.DefaultVersion},
			{Name: "mode", Description: "run (the test, then its verdict), start (k6 in the background, e.g. during a deploy step; the step ends once k6 runs) or stop (ends a started test, then its verdict).", Default: "run"},
			{Name: "window-from", Description: "Start of a time window (RFC 3339, e.g. from `date -u +%FT%TZ` before a deploy) whose requests are counted apart: window-failed of window-requests."},
			{Name: "window-to", Description: "End of that window; default the end of the run."},
			{Name: "artifact-name", Description: "Name of the workflow artifact with the results; empty uploads none (the action only).", Default: "loadtest-report"},
			{Name: "comment", Description: "On a pull request, post the summary as one comment, updated by later runs.", Kind: action.Bool, Default: "true"},
			{Name: "github-token", Description: "Token for the pull request comment (needs pull-requests: write).", Secret: true, ActionDefault: "${{ github.token }}"},
		},
		Outputs: []action.Output{
			{Name: "verdict", Description: "pass or fail."},
			{Name: "p95", Description: "95th percentile of http_req_duration, in milliseconds."},
			{Name: "error-rate", Description: "Share of failed requests (http_req_failed), 0 to 1."},
			{Name: "rps", Description: "Requests per second over the run."},
			{Name: "summary-path", Description: "summary.json (schema_version 1)."},
			{Name: "report-path", Description: "report.html, one self-contained file."},
			{Name: "output-dir", Description: "Directory with every result file."},
			{Name: "window-failed", Description: "Failed requests within window-from..window-to."},
			{Name: "window-requests", Description: "Requests within window-from..window-to."},
		},
		After: `    - if: always() && inputs.artifact-name != '' && steps.run.outputs.output-dir != ''
      uses: ` + uploadArtifact + `
      with:
        name: ${{ inputs.artifact-name }}
        path: ${{ steps.run.outputs.output-dir }}
        if-no-files-found: ignore
`,
	}
}

func loadtestCommand() *Command { return &Command{Spec: loadtestSpec(), Run: runLoadtest} }

// loadtestRun is one load test's settings, read from the inputs.
type loadtestRun struct {
	script     string // path of the script k6 runs
	target     string // what is tested, for the report
	smoke      *k6run.SmokeOptions
	scriptEnv  map[string]string // the smoke script's __ENV values
	userEnv    []string          // KEY=VALUE for the script's __ENV, through k6's environment
	extra      map[string][]string
	baseline   *loadtest.Summary
	limits     []loadtest.Limit
	failOn     loadtest.FailOn
	title, dir string
}

// backgroundEnv marks the gantry process that start mode leaves running: it
// runs the test and keeps its outputs and summary in the output directory.
const backgroundEnv = "GANTRY_LOADTEST_BACKGROUND"

func runLoadtest(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	r := loadtestRun{title: in.String("title")}
	mode := in.String("mode")
	if a.Getenv(backgroundEnv) != "" {
		mode = "run"
	}
	if !slices.Contains([]string{"run", "start", "stop"}, mode) {
		in.Fail("mode", "%q is not run, start or stop", mode)
	}
	var win [2]time.Time
	for i, name := range []string{"window-from", "window-to"} {
		if v := in.String(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				in.Fail(name, "%q is not an RFC 3339 time such as 2026-11-30T10:00:00Z (date -u +%%FT%%TZ)", v)
			}
			win[i] = t
		}
	}
	if mode == "stop" {
		if err := in.Err(); err != nil {
			return err
		}
		return stopBackground(ctx, a, loadtestDir(a, in), r.title, win)
	}
	script, url := in.String("script"), in.String("url")
	switch {
	case script != "" && url != "":
		in.Fail("url", "give either script or url, not both")
	case script == "" && url == "":
		in.Fail("script", "is required: a k6 script in the repository, or url for the built-in smoke test")
	case script != "":
		if st, err := os.Stat(script); err != nil || st.IsDir() {
			in.Fail("script", "%s is not a file in the working directory %s", script, mustGetwd())
		}
		r.script, r.target = script, script
	default:
		r.smoke = &k6run.SmokeOptions{URL: url, Rate: in.Int("rate"), VUs: in.Int("vus"), Duration: in.Duration("duration"), Method: in.String("method"), ExpectStatus: in.Int("expect-status")}
		if sc, err := k6run.SmokeScript(*r.smoke); err != nil {
			in.FailWith("url", err)
		} else {
			r.scriptEnv = sc.Env
			r.target = redactURL(url)
			r.script = sc.Source // written to the output directory below
		}
	}
	for _, e := range in.Env("env") {
		a.MaskEnv(e.Name, e.Value)
		r.userEnv = append(r.userEnv, e.Name+"="+e.Value)
	}
	r.extra = map[string][]string{}
	for _, line := range in.List("thresholds") {
		m, err := loadtest.ParseThresholdFlag(line)
		if err != nil {
			in.Fail("thresholds", "%v", err)
			continue
		}
		r.extra = loadtest.MergeThresholds(r.extra, m)
	}
	if err := loadtest.ValidateThresholds(r.extra); err != nil {
		in.Fail("thresholds", "%v", err)
	}
	var err error
	if r.limits, err = loadtest.ParseMaxRegression(in.String("max-regression")); err != nil {
		in.Fail("max-regression", "%v", err)
	}
	if r.failOn, err = loadtest.ParseFailOn(in.String("fail-on")); err != nil {
		in.Fail("fail-on", "%v", err)
	}
	if b := in.String("baseline"); b != "" {
		if _, serr := os.Stat(b); errors.Is(serr, os.ErrNotExist) {
			a.Warnf("baseline %s does not exist (a first run?): nothing to compare with", b)
		} else if r.baseline, err = loadtest.LoadSummary(b); err != nil {
			in.Fail("baseline", "%v", err)
		}
	}
	version, verr := k6run.NormalizeVersion(in.String("k6-version"))
	if verr != nil {
		in.Fail("k6-version", "%v", verr)
	}
	r.dir = loadtestDir(a, in)
	token := in.String("github-token")
	if err := in.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return fmt.Errorf("output-dir %s: %w", r.dir, err)
	}
	if abs, err := filepath.Abs(r.dir); err == nil {
		r.dir = abs
	}
	a.SetOutput("output-dir", r.dir)
	if r.smoke != nil {
		p := filepath.Join(r.dir, "smoke.js")
		if err := os.WriteFile(p, []byte(r.script), 0o644); err != nil {
			return err
		}
		r.script = p
	}

	k6, err := k6run.Find(ctx, k6run.Options{Version: version, Getenv: a.Getenv, Transport: a.Transport(), Logf: a.Infof})
	if err != nil {
		return loadtestFailed(a, r, "installing k6", err)
	}
	if mode == "start" {
		return startBackground(ctx, a, r.dir, k6)
	}
	// own are the script's thresholds, the only ones k6 itself evaluates;
	// the thresholds input is gantry's alone.
	var own map[string][]string
	if r.smoke == nil {
		out, err := exec.CommandContext(ctx, k6, "inspect", "--", r.script).Output()
		if err != nil {
			return loadtestFailed(a, r, "reading the script's options", k6Error("k6 inspect "+r.script, err))
		}
		if own, err = loadtest.ThresholdsFromInspect(out); err != nil {
			return loadtestFailed(a, r, "reading the script's thresholds", err)
		}
	}
	thresholds := loadtest.MergeThresholds(own, r.extra)

	var res k6run.Result
	err = a.Group("k6 run", func() error {
		return a.Untrusted(func(w io.Writer) error {
			var err error
			res, err = k6run.Run(ctx, k6run.RunOptions{
				K6: k6, Script: r.script, OutDir: r.dir,
				// Through k6's environment, not -e: a URL may carry credentials.
				Environ: k6Environ(r.userEnv, r.scriptEnv),
				Stdout:  w, Stderr: w, Logf: a.Infof,
			})
			return err
		})
	})
	if err != nil && !(res.Stopped && a.Getenv(backgroundEnv) != "" && res.RawPath != "") {
		return loadtestFailed(a, r, "k6 run", err)
	}
	// A background test ends when stop mode interrupts it: what it measured stands.
	ctx = context.WithoutCancel(ctx)
	s, err := loadtest.SummarizeFileWith(res.RawPath, loadtest.Options{Thresholds: thresholds})
	if err != nil {
		return loadtestFailed(a, r, "summarizing k6's output", err)
	}
	var cmp []loadtest.Comparison
	if r.baseline != nil {
		cmp = loadtest.Compare(s, r.baseline, r.limits)
	}
	v := loadtest.Judge(s, cmp, r.failOn)
	// k6's verdict covers only the script's thresholds, and only a run that
	// ended on its own: a stopped k6 exits 105 whatever its thresholds say.
	if ours := anyFailed(s.Thresholds, own); !res.Stopped && res.ThresholdsFailed != ours {
		a.Warnf("k6 says the script's thresholds %s, gantry's evaluation says they %s; gantry's verdict stands, please report this", passedWord(!res.ThresholdsFailed), passedWord(!ours))
	}

	summaryPath, reportPath := filepath.Join(r.dir, "summary.json"), filepath.Join(r.dir, "report.html")
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(summaryPath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	ropt := report.Options{Title: r.title, Target: r.target, Verdict: &report.Verdict{Passed: v.Passed, Text: v.Headline(), Reasons: append(v.Reasons, v.Notes...)}}
	for _, t := range s.Thresholds {
		ropt.Thresholds = append(ropt.Thresholds, report.Threshold{Metric: t.Metric, Expression: t.Expression, Value: t.Value, OK: t.OK})
	}
	if err := report.WriteFile(reportPath, s, ropt); err != nil {
		return err
	}
	md := loadtest.Markdown(s, cmp, loadtest.MarkdownOptions{Title: r.title, FailOn: r.failOn, Baseline: r.baseline})
	a.Summary().WriteString(md)
	fmt.Fprintf(a.Summary(), "\nTarget %s · k6 %s · results in `%s` (summary.json, report.html, raw.json.gz)\n", action.Code(r.target), action.Escape(version), action.Escape(filepath.Base(r.dir)))

	a.SetOutput("verdict", verdictWord(v.Passed))
	a.SetOutput("summary-path", summaryPath)
	a.SetOutput("report-path", reportPath)
	if m := s.Metrics["http_req_duration"]; m != nil {
		a.SetOutput("p95", strconv.FormatFloat(m.P95, 'f', 2, 64))
	}
	if m := s.Metrics["http_req_failed"]; m != nil {
		a.SetOutput("error-rate", strconv.FormatFloat(m.Rate, 'f', 4, 64))
	}
	if m := s.Metrics["http_reqs"]; m != nil {
		a.SetOutput("rps", strconv.FormatFloat(m.Rate, 'f', 2, 64))
	}
	if !win[0].IsZero() || !win[1].IsZero() {
		if err := reportWindow(a, res.RawPath, win); err != nil {
			return err
		}
	}
	if in.Bool("comment") && token != "" {
		commentOnPR(ctx, a, token, r.title, md)
	}
	if !v.Passed {
		return errors.New(strings.Join(v.Reasons, "; "))
	}
	a.Infof("%s passed: p95 %s ms, error rate %s, %s req/s", r.title, a.Output("p95"), a.Output("error-rate"), a.Output("rps"))
	return nil
}

// loadtestDir is the output directory: the input, else gantry-loadtest under
// RUNNER_TEMP or the current directory.
func loadtestDir(a *action.Action, in *action.Inputs) string {
	if d := in.String("output-dir"); d != "" {
		return d
	}
	base := a.Getenv("RUNNER_TEMP")
	if base == "" {
		base = "."
	}
	return filepath.Join(base, "gantry-loadtest")
}

// reportWindow counts the requests of the raw output within win and reports
// them as outputs and a summary line.
func reportWindow(a *action.Action, raw string, win [2]time.Time) error {
	failed, total, err := loadtest.FailedInWindow(raw, win[0], win[1])
	if err != nil {
		return err
	}
	a.SetOutput("window-failed", strconv.FormatInt(failed, 10))
	a.SetOutput("window-requests", strconv.FormatInt(total, 10))
	from, to := "the start", "the end"
	if !win[0].IsZero() {
		from = win[0].UTC().Format(time.RFC3339)
	}
	if !win[1].IsZero() {
		to = win[1].UTC().Format(time.RFC3339)
	}
	line := fmt.Sprintf("Between %s and %s: **%d of %d requests failed**.", from, to, failed, total)
	a.Infof("%s", strings.ReplaceAll(line, "**", ""))
	fmt.Fprintf(a.Summary(), "\n%s\n", line)
	return nil
}

// commentOnPR posts (or updates) the run's comment on a pull request run;
// anything that stops it is a warning, never a failed load test.
func commentOnPR(ctx context.Context, a *action.Action, token, title, md string) {
	c, err := prcomment.FromActions(a.Getenv, token, a.Transport())
	if errors.Is(err, prcomment.ErrNotPullRequest) {
		return
	}
	if err != nil {
		a.Warnf("pull request comment: %v", err)
		return
	}
	id, created, err := c.Upsert(ctx, prcomment.Marker("loadtest:"+title), md)
	var pe *githubapi.PermissionError
	switch {
	case errors.As(err, &pe):
		a.Warnf("pull request comment not posted: %v", err)
	case err != nil:
		a.Warnf("pull request comment: %v", err)
	case created:
		a.Infof("posted the summary on pull request #%d (comment %d)", c.PR, id)
	default:
		a.Infof("updated the summary on pull request #%d (comment %d)", c.PR, id)
	}
}

// loadtestFailed writes the summary of a run that produced no verdict.
func loadtestFailed(a *action.Action, r loadtestRun, what string, err error) error {
	fmt.Fprintf(a.Summary(), "### ❌ %s: error\n\n**%s failed:** %s\n\nTarget %s\n", action.Escape(r.title), action.Escape(what), action.Escape(err.Error()), action.Code(r.target))
	a.SetOutput("verdict", "error")
	return fmt.Errorf("%s: %w", what, err)
}

// k6Error is a failed k6 command with what k6 logged: the msg="..." of its
// log lines when it wrote some, else its stderr on one line.
func k6Error(what string, err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) || len(ee.Stderr) == 0 {
		return fmt.Errorf("%s: %w", what, err)
	}
	var msgs []string
	for _, line := range strings.Split(string(ee.Stderr), "\n") {
		if _, rest, ok := strings.Cut(line, ` msg="`); ok {
			if m, err := strconv.Unquote(`"` + strings.TrimSuffix(strings.SplitN(rest, `" `, 2)[0], `"`) + `"`); err == nil {
				msgs = append(msgs, m)
			}
		}
	}
	if len(msgs) == 0 {
		msgs = []string{strings.Join(strings.Fields(string(ee.Stderr)), " ")}
	}
	return fmt.Errorf("%s: %s", what, strings.Join(msgs, "; "))
}

// anyFailed tells whether one of the thresholds of ts that are in only
// (metric → expressions, as written) failed.
func anyFailed(ts []loadtest.ThresholdResult, only map[string][]string) bool {
	for _, t := range ts {
		if !t.OK && slices.Contains(only[t.Metric], t.Expression) {
			return true
		}
	}
	return false
}

func verdictWord(passed bool) string {
	if passed {
		return "pass"
	}
	return "fail"
}

func passedWord(passed bool) string {
	if passed {
		return "passed"
	}
	return "failed"
}

// redactURL drops user info and the query from a URL shown in the summary.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if scheme, rest, ok := strings.Cut(u, "://"); ok {
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	return u
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// k6Environ is k6's environment, which k6 also offers the script as __ENV:
// gantry's own without the action's inputs (INPUT_*, which hold the token),
// the smoke script's values and the user's env lines.
func k6Environ(user []string, script map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INPUT_") {
			out = append(out, kv)
		}
	}
	for k, v := range script {
		out = append(out, k+"="+v)
	}
	return append(out, user...)
}
