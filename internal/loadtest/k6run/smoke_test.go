package k6run_test

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/input"
	"github.com/gantry-dev/gantry/internal/loadtest/k6run"
	"github.com/gantry-dev/gantry/internal/testenv"
)

func TestSmokeScriptRejects(t *testing.T) {
	t.Parallel()
	ok := k6run.SmokeOptions{URL: "https://app.example/health", Rate: 10, Duration: 30 * time.Second}
	tests := []struct {
		name  string
		edit  func(o *k6run.SmokeOptions)
		input string
		msg   string
	}{
		{"no url", func(o *k6run.SmokeOptions) { o.URL = "" }, "url", "must be an http:// or https:// URL with a host (got nothing)"},
		{"ftp url", func(o *k6run.SmokeOptions) { o.URL = "ftp://files.example/x" }, "url", `(got "ftp://files.example/x")`},
		{"relative url", func(o *k6run.SmokeOptions) { o.URL = "/health" }, "url", `(got "/health")`},
		{"no host", func(o *k6run.SmokeOptions) { o.URL = "http:///health" }, "url", "with a host"},
		{"space in url", func(o *k6run.SmokeOptions) { o.URL = "http://a.example/x y" }, "url", "no spaces or control characters"},
		{"newline in url", func(o *k6run.SmokeOptions) { o.URL = "http://a.example/\n');" }, "url", "no spaces or control characters"},
		{"password not echoed", func(o *k6run.SmokeOptions) { o.URL = "gopher://me:hunter2@a.example/" }, "url", `(got "gopher://me:xxxxx@a.example/")`},
		{"unknown method", func(o *k6run.SmokeOptions) { o.Method = "BREW" }, "method", `must be one of GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE (got "BREW")`},
		{"no rate nor vus", func(o *k6run.SmokeOptions) { o.Rate = 0 }, "rate", "must be at least 1 request per second, unless vus is set"},
		{"negative rate", func(o *k6run.SmokeOptions) { o.Rate = -5 }, "rate", "from 1 to 100000 (got -5)"},
		{"huge rate", func(o *k6run.SmokeOptions) { o.Rate = 1e6 }, "rate", "(got 1000000)"},
		{"negative vus", func(o *k6run.SmokeOptions) { o.VUs = -1 }, "vus", "from 1 to 10000 (got -1)"},
		{"short duration", func(o *k6run.SmokeOptions) { o.Duration = 500 * time.Millisecond }, "duration", "must be from 1s to 24h, like 30s or 2m (got 500ms)"},
		{"no duration", func(o *k6run.SmokeOptions) { o.Duration = 0 }, "duration", "(got 0s)"},
		{"long duration", func(o *k6run.SmokeOptions) { o.Duration = 25 * time.Hour }, "duration", "(got 25h0m0s)"},
		{"sub-millisecond duration", func(o *k6run.SmokeOptions) { o.Duration = time.Second + time.Microsecond }, "duration", "whole milliseconds"},
		{"bad status", func(o *k6run.SmokeOptions) { o.ExpectStatus = 700 }, "expect-status", "from 100 to 599, or empty for any 2xx or 3xx (got 700)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := ok
			tc.edit(&o)
			_, err := k6run.SmokeScript(o)
			var ie *input.Error
			if !errors.As(err, &ie) {
				t.Fatalf("SmokeScript: %v; want an input.Error", err)
			}
			if ie.Input != tc.input || !strings.Contains(ie.Msg, tc.msg) {
				t.Errorf("error %q; want input %s and a message containing %q", err, tc.input, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q: want one line, without a password", err)
			}
		})
	}
}

// inspected is the part of "k6 inspect" output the smoke tests look at.
type inspected struct {
	DiscardResponseBodies bool `json:"discardResponseBodies"`
	Scenarios             map[string]struct {
		Executor        string `json:"executor"`
		Rate            int    `json:"rate"`
		TimeUnit        string `json:"timeUnit"`
		Duration        string `json:"duration"`
		PreAllocatedVUs int    `json:"preAllocatedVUs"`
		MaxVUs          int    `json:"maxVUs"`
		VUs             int    `json:"vus"`
	} `json:"scenarios"`
}

// TestSmokeScriptOptions has the real k6 read the generated scripts'
// options, so each is valid JavaScript that k6 understands as intended.
func TestSmokeScriptOptions(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6b testenv.K6Build) {
		t.Parallel()
		k6 := k6b.Path
		tests := []struct {
			name                   string
			opts                   k6run.SmokeOptions
			executor, duration     string
			rate, pre, maxVUs, vus int
			check                  string
			wantMethod, wantName   string
		}{
			{"rate only", k6run.SmokeOptions{Rate: 50, Duration: 30 * time.Second}, "constant-arrival-rate", "30s", 50, 5, 50, 0, "'status is 2xx/3xx'", "GET", "https://app.example/health"},
			{"low rate", k6run.SmokeOptions{Rate: 1, Duration: 90 * time.Second}, "constant-arrival-rate", "1m30s", 1, 1, 1, 0, "'status is 2xx/3xx'", "GET", "https://app.example/health"},
			{"high rate capped vus", k6run.SmokeOptions{Rate: 20000, Duration: time.Minute}, "constant-arrival-rate", "1m0s", 20000, 2000, 2000, 0, "'status is 2xx/3xx'", "GET", "https://app.example/health"},
			{"rate and vus", k6run.SmokeOptions{Rate: 100, VUs: 7, Duration: 1500 * time.Millisecond, Method: "head"}, "constant-arrival-rate", "1.5s", 100, 7, 7, 0, "'status is 2xx/3xx'", "HEAD", "https://app.example/health"},
			{"vus only", k6run.SmokeOptions{VUs: 3, Duration: 10 * time.Second, ExpectStatus: 204, Method: "DELETE"}, "constant-vus", "10s", 0, 0, 0, 3, "'status is 204'", "DELETE", "https://app.example/health"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				o := tc.opts
				o.URL = "https://user:pw@app.example/health?token=abc#frag"
				s, err := k6run.SmokeScript(o)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]string{k6run.EnvURL: o.URL, k6run.EnvMethod: tc.wantMethod, k6run.EnvName: tc.wantName}; !maps.Equal(s.Env, want) {
					t.Errorf("Env = %v; want %v", s.Env, want)
				}
				if !strings.Contains(s.Source, tc.check) {
					t.Errorf("the script has no check %s:\n%s", tc.check, s.Source)
				}
				script := writeScript(t, t.TempDir(), s.Source)
				cmd := exec.CommandContext(t.Context(), k6, "inspect", "-e", k6run.EnvURL+"="+o.URL, script)
				cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true")
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("k6 inspect: %v\n%s", err, out)
				}
				var got inspected
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatalf("k6 inspect: %v\n%s", err, out)
				}
				sc, ok := got.Scenarios[k6run.SmokeScenario]
				if len(got.Scenarios) != 1 || !ok {
					t.Fatalf("scenarios %+v; want only %s", got.Scenarios, k6run.SmokeScenario)
				}
				if sc.Executor != tc.executor || sc.Duration != tc.duration || sc.Rate != tc.rate || sc.PreAllocatedVUs != tc.pre || sc.MaxVUs != tc.maxVUs || sc.VUs != tc.vus {
					t.Errorf("scenario %+v; want %s for %s, rate %d, %d to %d VUs (vus %d)", sc, tc.executor, tc.duration, tc.rate, tc.pre, tc.maxVUs, tc.vus)
				}
				if tc.rate > 0 && sc.TimeUnit != "1s" {
					t.Errorf("timeUnit %q; want 1s", sc.TimeUnit)
				}
				if !got.DiscardResponseBodies {
					t.Error("discardResponseBodies is off")
				}
			})
		}
	})
}

// TestSmokeScriptKeepsUserTextOutOfTheSource gives URLs built to break out
// of a JavaScript string or template: none of their text may reach the
// script, only Env.
func TestSmokeScriptKeepsUserTextOutOfTheSource(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"http://evil.example/'+globalThis.pwned+'",
		"http://evil.example/\"};pwned();//",
		"http://evil.example/`${pwned()}`",
		"http://evil.example/</script>\\u2028",
		"https://evil.example:8443/a?q=');pwned('",
	} {
		s, err := k6run.SmokeScript(k6run.SmokeOptions{URL: u, Rate: 1, Duration: time.Second})
		if err != nil {
			t.Errorf("SmokeScript(%q): %v", u, err)
			continue
		}
		if strings.Contains(s.Source, "evil") || strings.Contains(s.Source, "pwned") {
			t.Errorf("the script for %q contains user text:\n%s", u, s.Source)
		}
		if s.Env[k6run.EnvURL] != u {
			t.Errorf("Env[%s] = %q; want %q", k6run.EnvURL, s.Env[k6run.EnvURL], u)
		}
	}
}
