package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/verify"
)

// Results of the verify command, in its result output.
const (
	resultVerified         = "verified"
	resultVerifiedWarnings = "verified-with-warnings"
	resultContractFailed   = "contract-failed"
)

// publicHeaders are request headers whose values are not secret, so they are
// not masked (masking a Host would hide the service's name in every log line).
var publicHeaders = map[string]bool{"Host": true, "Accept": true, "Content-Type": true, "User-Agent": true, "Cache-Control": true}

func verifySpec() *action.Spec {
	return &action.Spec{
		Name:        "verify",
		Description: "Wait until a deployed service's health endpoint serves the expected commit, several answers in a row, then run contract checks; fail fast when the old version keeps answering.",
		Summary:     "Wait until a deployed service's health endpoint serves the expected commit, several times in a row, then run contract checks.",
		Inputs: []action.Input{
			{Name: "url", Description: "Health endpoint, e.g. https://api.example.com/health; /health is appended when the URL has no path.", Required: true},
			{Name: "sha", Description: "Commit the service must serve (7 to 40 hex characters, matched by prefix). Default: GITHUB_SHA, or the pull request head on pull_request events."},
			{Name: "version-field", Description: "Dotted path of the JSON field holding the served commit, e.g. build.commit. Default: git_sha, then version (with or without a sha- prefix), then commit."},
			{Name: "expect-status", Description: "HTTP status of a healthy answer.", Kind: action.Int, Default: "200"},
			{Name: "headers", Description: "Request headers, `Name: value` one a line (e.g. `Authorization: Bearer ...`), sent with every request; values are masked (except Host, Accept, Content-Type, User-Agent, Cache-Control)."},
			{Name: "interval", Description: "Time between polls of the health endpoint.", Kind: action.Duration, Default: "1s"},
			{Name: "timeout", Description: "How long to wait for the expected version before failing.", Kind: action.Duration, Default: "2m"},
			{Name: "consecutive", Description: "Right answers required in a row; raise it when several instances sit behind a load balancer.", Kind: action.Int, Default: "2"},
			{Name: "checks", Description: "Contract checks run once the version is right, one a line: `METHOD /path [status=201|2xx] [max=300ms] [body=JSON] [header=Name:value] [contains=TEXT] [json.PATH exists|absent] [json.PATH=VALUE]`; see the usage example."},
			{Name: "allow-failure", Description: "Turn failed contract checks into warnings (annotation and a ⚠️ summary line); a wrong version, an unhealthy or unreachable service always fails.", Kind: action.Bool, Default: "false"},
		},
		Outputs: []action.Output{
			{Name: "served-sha", Description: "The commit the service last reported: 7 to 40 (or 64) lower-case hex characters, or empty when it reported none."},
			{Name: "served-version", Description: "The version field the service last reported, if any, as data: one line of at most 128 printable characters, control characters escaped (\\n, \\x1b, \\u2028) and workflow-command markers broken up (`::` becomes `: :`, `##[` becomes `## [`). Pass it to a script through `env:`, never inside `run:`."},
			{Name: "elapsed", Description: "Seconds spent waiting for the expected version, e.g. 4.2."},
			{Name: "result", Description: "verified, verified-with-warnings, old-version, unhealthy, unreachable or contract-failed."},
		},
	}
}

func verifyCommand() *Command { return &Command{Spec: verifySpec(), Run: runVerify} }

// verifyInputs is verify's validated input.
type verifyInputs struct {
	url    *url.URL
	opts   verify.Options
	checks []verify.Check
	allow  bool
}

func readVerify(a *action.Action, in *action.Inputs) verifyInputs {
	var v verifyInputs
	if raw := in.Required("url"); raw != "" {
		u, err := verify.HealthURL(raw)
		if err != nil {
			in.Fail("url", "%v; want e.g. https://api.example.com/health", err)
		}
		v.url = u
	}
	if s := readCommit(a, in, "the commit the service must serve"); s != "" {
		v.opts.SHA = s
	}
	v.opts.VersionField = in.String("version-field")
	if f := v.opts.VersionField; f != "" && (strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") || strings.ContainsAny(f, " \t")) {
		in.Fail("version-field", "%q is not a dotted JSON path such as build.commit", f)
	}
	if v.opts.ExpectStatus = in.Int("expect-status"); v.opts.ExpectStatus < 100 || v.opts.ExpectStatus > 599 {
		in.Fail("expect-status", "%d is not an HTTP status code", v.opts.ExpectStatus)
	}
	v.opts.Headers = parseHeaderLines(a, in, "headers")
	if v.opts.Interval = in.Duration("interval"); v.opts.Interval <= 0 {
		in.Fail("interval", "must be more than 0, e.g. 1s")
	}
	if v.opts.Timeout = in.Duration("timeout"); v.opts.Timeout <= 0 {
		in.Fail("timeout", "must be more than 0, e.g. 2m")
	}
	if v.opts.Consecutive = in.Int("consecutive"); v.opts.Consecutive < 1 {
		in.Fail("consecutive", "must be at least 1")
	}
	checks, err := verify.ParseChecks(in.String("checks"))
	if err != nil {
		in.Fail("checks", "%v", err)
	}
	for _, c := range checks {
		if c.IsExec() {
			in.Fail("checks", "line %d: %q: exec checks run inside the service's containers and belong to the checks input of deploy-compose or deploy-swarm; verify can only make HTTP requests", c.Line, c.Text)
		}
	}
	v.checks = checks
	v.allow = in.Bool("allow-failure")
	return v
}

// parseHeaderLines reads Name: value lines and masks the values.
func parseHeaderLines(a *action.Action, in *action.Inputs, input string) http.Header {
	h := http.Header{}
	for _, line := range in.Lines(input) {
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t\"(),/;<=>?@[\\]{}") {
			// The line may hold a secret: say where it is, not what it is.
			in.Fail(input, "a line is not `Name: value` (it starts with %q)", headPrefix(line, 3))
			continue
		}
		if !publicHeaders[http.CanonicalHeaderKey(name)] {
			a.Mask(value)
		}
		h.Add(name, value)
	}
	return h
}

func headPrefix(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func runVerify(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	v := readVerify(a, in)
	if err := in.Err(); err != nil {
		return err
	}
	client := &http.Client{Transport: a.Transport()}
	v.opts.URL = v.url.String()
	v.opts.Client = client
	v.opts.Logf = a.Infof
	a.Infof("waiting for %s to serve %s (%d right answers in a row, timeout %s)", v.url.Redacted(), v.opts.SHA, v.opts.Consecutive, v.opts.Timeout)
	res, werr := verify.Wait(ctx, v.opts)
	if res.Attempts > 0 {
		a.SetOutput("served-sha", res.ServedSHA)
		a.SetOutput("served-version", res.ServedVersion)
		a.SetOutput("elapsed", fmt.Sprintf("%.1f", res.Elapsed.Seconds()))
		a.SetOutput("result", string(res.Outcome))
	}
	if werr != nil {
		writeVerifySummary(a, v, res, nil, werr)
		return werr
	}

	var results []verify.CheckResult
	if len(v.checks) > 0 {
		_ = a.Group(fmt.Sprintf("contract checks (%d)", len(v.checks)), func() error {
			results = verify.Checker{Client: client, BaseURL: verify.Origin(v.url), Headers: v.opts.Headers}.Run(ctx, v.checks)
			for _, r := range results {
				a.Infof("%s", r)
			}
			return nil
		})
	}
	var failed []verify.CheckResult
	for _, r := range results {
		if !r.OK() {
			failed = append(failed, r)
		}
	}
	var err error
	switch {
	case len(failed) == 0:
		a.SetOutput("result", resultVerified)
	case v.allow:
		a.SetOutput("result", resultVerifiedWarnings)
		for _, r := range failed {
			a.Warnf("contract check failed (allowed by allow-failure): %s", r)
		}
	default:
		a.SetOutput("result", resultContractFailed)
		err = fmt.Errorf("%d of %d contract checks failed; first: %s", len(failed), len(results), failed[0])
	}
	writeVerifySummary(a, v, res, results, err)
	return err
}

var verifyOutcomeIcons = map[verify.Outcome]string{
	verify.Unreachable:  "🔴",
	verify.Unhealthy:    "🟠",
	verify.OldVersion:   "🟡",
	verify.WrongVersion: "🟡",
	verify.Verified:     "✅",
}

func writeVerifySummary(a *action.Action, v verifyInputs, res verify.Result, results []verify.CheckResult, err error) {
	s := a.Summary()
	target := action.Code(v.url.Redacted())
	var failed int
	for _, r := range results {
		if !r.OK() {
			failed++
		}
	}
	switch {
	case err != nil && results == nil:
		headline := map[verify.Outcome]string{
			verify.Unreachable: "the service is unreachable",
			verify.Unhealthy:   "the service is not healthy",
			verify.OldVersion:  "the old version is still serving",
		}[res.Outcome]
		if headline == "" {
			headline = "stopped"
		}
		fmt.Fprintf(s, "### ❌ verify: %s\n\n%s\n\n", headline, action.Escape(err.Error()))
	case err != nil:
		fmt.Fprintf(s, "### ❌ verify: %d of %d contract checks failed\n\n%s serves %s, but its contract checks failed.\n\n", failed, len(results), target, action.Code(res.ServedSHA))
	case failed > 0:
		fmt.Fprintf(s, "### ⚠️ verify: %s serves %s, with %d failed contract check(s)\n\n", target, action.Code(commit.Short(res.ServedSHA)), failed)
		fmt.Fprintf(s, "⚠️ **%d of %d contract checks failed**; the step passes because allow-failure is set.\n\n", failed, len(results))
	default:
		fmt.Fprintf(s, "### ✅ verify: %s serves %s\n\n", target, action.Code(commit.Short(res.ServedSHA)))
	}
	if res.Attempts > 0 {
		fmt.Fprintf(s, "Expected %s; %d attempts in %.1fs, %d right answers in a row required.\n\n", action.Code(v.opts.SHA), res.Attempts, res.Elapsed.Seconds(), v.opts.Consecutive)
		rows := make([][]string, 0, len(res.Changes))
		for _, c := range res.Changes {
			rows = append(rows, []string{fmt.Sprintf("+%.1fs", c.At.Seconds()), fmt.Sprint(c.N), verifyOutcomeIcons[c.Outcome] + " " + string(c.Outcome), action.Escape(c.Detail)})
		}
		s.WriteString(action.Table([]string{"Time", "Attempt", "Outcome", "Detail"}, rows))
	}
	if len(results) > 0 {
		s.WriteString("\n#### Contract checks\n\n")
		rows := make([][]string, 0, len(results))
		for _, r := range results {
			verdict := "✅ ok"
			if !r.OK() {
				icon := "❌"
				if v.allow {
					icon = "⚠️"
				}
				verdict = icon + " " + action.Escape(strings.Join(r.Failures, "; "))
			}
			status := "-"
			if r.Status >= 0 {
				status = fmt.Sprint(r.Status)
			}
			rows = append(rows, []string{action.Code(r.Check.Text), verdict, status, verify.Round(r.Elapsed).String()})
		}
		s.WriteString(action.Table([]string{"Check", "Result", "Status", "Time"}, rows))
	}
	if err != nil && errors.Is(err, context.Canceled) {
		s.WriteString("\nThe run was cancelled.\n")
	}
}
