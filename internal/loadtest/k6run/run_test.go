package k6run_test

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
	"github.com/gantry-dev/gantry/internal/loadtest/k6run"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// target is the service under load: it answers 200, or 500 while failing,
// and counts what it served.
type target struct {
	*httptest.Server
	failing atomic.Bool
	served  atomic.Int64
	failed  atomic.Int64

	mu     sync.Mutex
	tokens map[string]int // X-Token header values seen
}

func newTarget(t *testing.T) *target {
	tg := &target{tokens: map[string]int{}}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.Header.Get("X-Token"); tok != "" {
			tg.mu.Lock()
			tg.tokens[tok]++
			tg.mu.Unlock()
		}
		// Counted before answering: once k6 has the answer, the count
		// includes it.
		if tg.failing.Load() {
			tg.failed.Add(1)
			tg.served.Add(1)
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		tg.served.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(tg.Close)
	return tg
}

// rateScript sends GET requests to __ENV.TARGET at 20 a second for the
// given duration, checking for a 200, with an error-rate threshold.
func rateScript(duration string) string {
	return `
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  scenarios: {
    load: { executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '` + duration + `', preAllocatedVUs: 2, maxVUs: 10 },
  },
  thresholds: { http_req_failed: ['rate<0.01'] },
};

export default function () {
  const res = http.get(__ENV.TARGET, { tags: { name: 'target' } });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
`
}

// secretValue is an env value that must reach k6 and never show in a log.
const secretValue = "s3cr3t-Zq81-value"

func TestRun(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		k6 := k6b.Path

		type outcome struct {
			res            k6run.Result
			err            error
			log            string // Logf, stdout and stderr
			stdout, stderr string
			tg             *target
		}
		tests := []struct {
			name    string
			failing bool
			script  func(t *testing.T, tg *target) (string, map[string]string)
			check   func(t *testing.T, o outcome)
		}{
			{
				name: "smoke run passes",
				script: func(t *testing.T, tg *target) (string, map[string]string) {
					s, err := k6run.SmokeScript(k6run.SmokeOptions{URL: tg.URL + "/health?token=abc", Rate: 20, Duration: 2 * time.Second})
					if err != nil {
						t.Fatal(err)
					}
					return s.Source, s.Env
				},
				check: func(t *testing.T, o outcome) {
					wantExit(t, o.res, o.err, 0)
					failed, total := countRaw(t, o.res.RawPath)
					if served := o.tg.served.Load(); total != served || failed != 0 || served < 30 {
						t.Errorf("raw output has %d requests, %d failed; the server served %d (want about 40, none failed)", total, failed, served)
					}
					if !strings.Contains(o.stdout, "status is 2xx/3xx") {
						t.Errorf("k6's summary does not show the check:\n%s", o.stdout)
					}
					if !strings.Contains(o.log, "-e GANTRY_URL=*** ") || strings.Contains(o.log, "token=abc") {
						t.Errorf("the log shows the URL's query or no redacted -e:\n%s", o.log)
					}
					if raw := gunzipString(t, o.res.RawPath); strings.Contains(raw, "token=abc") || !strings.Contains(raw, `"name":"`+o.tg.URL+`/health"`) {
						t.Error("the raw output has the URL's query, or requests not named by the URL without it")
					}
				},
			},
			{
				name:    "failed thresholds are a result, not an error",
				failing: true,
				script: func(t *testing.T, tg *target) (string, map[string]string) {
					return rateScript("2s"), map[string]string{"TARGET": tg.URL}
				},
				check: func(t *testing.T, o outcome) {
					wantExit(t, o.res, o.err, 99)
					if !o.res.ThresholdsFailed {
						t.Error("ThresholdsFailed is false")
					}
					failed, total := countRaw(t, o.res.RawPath)
					if served := o.tg.served.Load(); failed != served || total != served {
						t.Errorf("raw output has %d requests, %d failed; the server failed all %d", total, failed, served)
					}
				},
			},
			{
				name: "syntax error",
				script: func(*testing.T, *target) (string, map[string]string) {
					return "export default function () {\n  const x = ;\n}\n", nil
				},
				check: func(t *testing.T, o outcome) {
					wantExitError(t, o.res, o.err, 107, "k6 run: script error (k6 exit code 107): could not initialize", "Line 2:13 Unexpected token ;")
					if o.res.RawPath != "" {
						t.Errorf("RawPath %s; k6 failed before writing any", o.res.RawPath)
					}
				},
			},
			{
				name: "exception at init",
				script: func(*testing.T, *target) (string, map[string]string) {
					return "throw new Error('no target configured');\nexport default function () {}\n", nil
				},
				check: func(t *testing.T, o outcome) {
					wantExitError(t, o.res, o.err, 107, "script error", "Error: no target configured at file://", "(script exception)")
				},
			},
			{
				name: "test.abort",
				script: func(*testing.T, *target) (string, map[string]string) {
					return "import exec from 'k6/execution';\nexport default function () { exec.test.abort('target is down'); }\n", nil
				},
				check: func(t *testing.T, o outcome) {
					wantExitError(t, o.res, o.err, 108, "the script aborted the test (k6 exit code 108): test aborted: target is down")
				},
			},
			{
				name: "env values reach the script and no log",
				script: func(t *testing.T, tg *target) (string, map[string]string) {
					return `
import http from 'k6/http';
export const options = { iterations: 3 };
export default function () {
  http.get(__ENV.TARGET, { headers: { 'X-Token': __ENV.API_TOKEN } });
}
`, map[string]string{"TARGET": tg.URL, "API_TOKEN": secretValue}
				},
				check: func(t *testing.T, o outcome) {
					wantExit(t, o.res, o.err, 0)
					o.tg.mu.Lock()
					defer o.tg.mu.Unlock()
					if len(o.tg.tokens) != 1 || o.tg.tokens[secretValue] != 3 {
						t.Errorf("X-Token headers seen: %v; want the secret 3 times", o.tg.tokens)
					}
					if strings.Contains(o.log, secretValue) {
						t.Errorf("the log shows the secret:\n%s", o.log)
					}
					if !strings.Contains(o.log, "-e API_TOKEN=*** -e TARGET=*** ") {
						t.Errorf("the log does not show the -e names with values redacted:\n%s", o.log)
					}
				},
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tg := newTarget(t)
				tg.failing.Store(tc.failing)
				dir := t.TempDir()
				src, env := tc.script(t, tg)
				var log, stdout, stderr syncBuffer
				res, err := k6run.Run(t.Context(), k6run.RunOptions{
					K6:     k6,
					Script: writeScript(t, dir, src),
					OutDir: filepath.Join(dir, "out"),
					Env:    env,
					Stdout: &stdout,
					Stderr: &stderr,
					Logf:   log.logf,
				})
				tg.Close() // every request has been answered and counted
				tc.check(t, outcome{res: res, err: err, log: log.String() + stdout.String() + stderr.String(), stdout: stdout.String(), stderr: stderr.String(), tg: tg})
				if t.Failed() {
					t.Logf("log:\n%s\nstdout:\n%s\nstderr:\n%s", log.String(), stdout.String(), stderr.String())
				}
			})
		}
	})
}

func wantExit(t *testing.T, res k6run.Result, err error, code int) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.ExitCode != code || res.Stopped || res.RawPath == "" || res.Duration <= 0 || res.Started.IsZero() {
		t.Fatalf("Result %+v; want exit code %d, not stopped, a raw output, a start and a duration", res, code)
	}
}

func wantExitError(t *testing.T, res k6run.Result, err error, code int, msgs ...string) {
	t.Helper()
	var ee *k6run.ExitError
	if !errors.As(err, &ee) || ee.Code != code || res.ExitCode != code {
		t.Fatalf("Run: %v (result %+v); want an ExitError with code %d", err, res, code)
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not contain %q", err, m)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is not one line", err)
	}
}

// countRaw counts the requests and failures in all of a raw output.
func countRaw(t *testing.T, raw string) (failed, total int64) {
	t.Helper()
	failed, total, err := loadtest.FailedInWindow(raw, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return failed, total
}

func TestRunCancelStopsK6AndKeepsItsOutput(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		k6 := k6b.Path
		tg := newTarget(t)
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var stderr syncBuffer
		var loaded atomic.Bool
		go func() {
			loaded.Store(testenv.Eventually(time.Minute, 5*time.Millisecond, func() bool { return tg.served.Load() >= 10 }))
			cancel()
		}()
		res, err := k6run.Run(ctx, k6run.RunOptions{
			K6:     k6,
			Script: writeScript(t, dir, rateScript("10m")),
			OutDir: dir,
			Env:    map[string]string{"TARGET": tg.URL},
			Stderr: &stderr,
		})
		tg.Close()
		if !loaded.Load() {
			t.Fatalf("the server saw %d requests before the cancel; want 10", tg.served.Load())
		}
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "k6 run: k6 stopped after") {
			t.Fatalf("Run: %v; want k6 stopped by context.Canceled", err)
		}
		if !res.Stopped || res.ExitCode != k6run.ExitExternalAbort || res.RawPath == "" {
			t.Fatalf("Result %+v; want stopped, k6's exit code %d and a raw output", res, k6run.ExitExternalAbort)
		}
		// A request in flight when k6 is stopped may reach the server without
		// k6 recording it; there are at most maxVUs (10) of them.
		failed, total := countRaw(t, res.RawPath)
		if served := tg.served.Load(); total == 0 || total > served || total < served-10 || failed != 0 {
			t.Errorf("raw output has %d requests, %d failed; the server served %d", total, failed, served)
		}
		if !strings.Contains(stderr.String(), "interrupt") {
			t.Errorf("k6's stderr does not say it was interrupted:\n%s", stderr.String())
		}
	})
}

func TestRunKillsK6ThatDoesNotStop(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		k6 := k6b.Path
		tg := newTarget(t)
		dir := t.TempDir()
		// handleSummary runs after SIGINT, and never returns.
		script := writeScript(t, dir, `
import http from 'k6/http';
import { sleep } from 'k6';
export const options = { vus: 1, duration: '10m' };
export default function () { http.get(__ENV.TARGET); sleep(0.05); }
export function handleSummary() { for (;;) {} }
`)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			testenv.Eventually(time.Minute, 5*time.Millisecond, func() bool { return tg.served.Load() > 0 })
			cancel()
		}()
		res, err := k6run.Run(ctx, k6run.RunOptions{K6: k6, Script: script, OutDir: dir, Env: map[string]string{"TARGET": tg.URL}, Grace: 500 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "k6 run: k6 did not stop within 500ms of SIGINT and was killed") || !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v; want k6 killed after the grace period", err)
		}
		if !res.Stopped || res.ExitCode != -1 {
			t.Errorf("Result %+v; want stopped and killed (exit code -1)", res)
		}
	})
}

// TestBackgroundCountsFailuresInAWindow runs k6 in the background while the
// server fails for a while, as a deploy might, and counts the failures k6
// saw in that window.
func TestBackgroundCountsFailuresInAWindow(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		k6 := k6b.Path
		tg := newTarget(t)
		dir := t.TempDir()
		var log syncBuffer
		b, err := k6run.Start(t.Context(), k6run.RunOptions{
			K6:     k6,
			Script: writeScript(t, dir, rateScript("10m")),
			OutDir: dir,
			Env:    map[string]string{"TARGET": tg.URL},
			Logf:   log.logf,
		})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the server has served 10 requests", func() bool { return tg.served.Load() >= 10 })
		// k6 times a request when its answer arrives: every 500 arrives after
		// from, and before to, which waits for answers served after the failure.
		from := time.Now()
		tg.failing.Store(true)
		waitFor(t, "the server has failed 15 requests", func() bool { return tg.failed.Load() >= 15 })
		tg.failing.Store(false)
		n := tg.served.Load()
		waitFor(t, "the server has recovered", func() bool { return tg.served.Load() >= n+5 })
		to := time.Now()
		n = tg.served.Load()
		waitFor(t, "load after the window", func() bool { return tg.served.Load() >= n+5 })
		select {
		case <-b.Done():
			t.Fatal("k6 ended before Stop")
		default:
		}

		res, err := b.Stop(t.Context())
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
		<-b.Done()
		tg.Close()
		if !res.Stopped || res.RawPath == "" || res.ExitCode != k6run.ExitExternalAbort {
			t.Fatalf("Result %+v; want stopped with a raw output", res)
		}
		served, served500 := tg.served.Load(), tg.failed.Load()
		failed, total, err := loadtest.FailedInWindow(res.RawPath, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if failed != served500 || total <= failed {
			t.Errorf("window: %d of %d requests failed; the server failed %d and answered others in the window too", failed, total, served500)
		}
		beforeFailed, before, err := loadtest.FailedInWindow(res.RawPath, time.Time{}, from)
		if err != nil {
			t.Fatal(err)
		}
		afterFailed, after, err := loadtest.FailedInWindow(res.RawPath, to, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("server: %d served, %d failed; k6: %d before the window, %d of %d failed in it, %d after", served, served500, before, failed, total, after)
		// A request in flight when k6 is stopped may reach the server without
		// k6 recording it; there are at most maxVUs (10) of them.
		recorded := before + total + after
		if beforeFailed != 0 || afterFailed != 0 || before == 0 || after == 0 || recorded > served || recorded < served-10 {
			t.Errorf("before the window %d requests (%d failed), after it %d (%d failed), %d in all; want some before and after, none failed, and up to %d in all", before, beforeFailed, after, afterFailed, recorded, served)
		}
		// Stop again is harmless and returns the same result.
		if again, err := b.Stop(t.Context()); err != nil || again != res {
			t.Errorf("second Stop = %+v, %v; want %+v", again, err, res)
		}
	})
}

func TestBackgroundEndingOnItsOwn(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		k6 := k6b.Path
		dir := t.TempDir()
		b, err := k6run.Start(t.Context(), k6run.RunOptions{
			K6:     k6,
			Script: writeScript(t, dir, "export default function () { throw new Error('x') }\nconst x = ;\n"),
			OutDir: dir,
		})
		if err != nil {
			t.Fatal(err)
		}
		<-b.Done() // a script error ends k6 before any deploy would
		res, err := b.Stop(t.Context())
		var ee *k6run.ExitError
		if !errors.As(err, &ee) || ee.Code != 107 || res.Stopped {
			t.Fatalf("Stop = %+v, %v; want the script error, not a stop", res, err)
		}
	})
}

func TestRunRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := writeScript(t, dir, "export default function () {}\n")
	tests := []struct {
		name string
		opts k6run.RunOptions
		want string
	}{
		{"no k6", k6run.RunOptions{Script: script, OutDir: dir}, "k6 run: no k6 executable given"},
		{"no script", k6run.RunOptions{K6: "k6", OutDir: dir}, "k6 run: no script given"},
		{"no output dir", k6run.RunOptions{K6: "k6", Script: script}, "k6 run: no output directory given"},
		{"bad env name", k6run.RunOptions{K6: "k6", Script: script, OutDir: dir, Env: map[string]string{"A-B": "1"}}, `input "env": "A-B" is not a variable name`},
		{"NUL in a value", k6run.RunOptions{K6: "k6", Script: script, OutDir: dir, Env: map[string]string{"TOKEN": secretValue + "\x00"}}, `input "env": the value of TOKEN contains a NUL byte`},
		{"k6 missing", k6run.RunOptions{K6: filepath.Join(dir, "no-k6"), Script: script, OutDir: dir}, "k6 run: start " + filepath.Join(dir, "no-k6")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := k6run.Run(t.Context(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secretValue) {
				t.Errorf("Run: %v; want an error containing %q, and no secret", err, tc.want)
			}
			if _, err := k6run.Start(t.Context(), tc.opts); err == nil {
				t.Error("Start: no error")
			}
		})
	}
}

// gunzipString returns the whole raw output, for small ones.
func gunzipString(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunScriptNamedLikeAFlag(t *testing.T) {
	t.Parallel()
	k6 := testenv.K6(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "-q.js"), []byte("export const options = { iterations: 1 };\nexport default function () {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := k6run.Run(t.Context(), k6run.RunOptions{K6: k6, Script: "-q.js", Dir: dir, OutDir: dir})
	wantExit(t, res, err, 0)
}
