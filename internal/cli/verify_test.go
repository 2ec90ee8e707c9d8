package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const (
	deployedSHA = "1234567890abcdef1234567890abcdef12345678"
	previousSHA = "fedcba9876543210fedcba9876543210fedcba98"
)

// appService is a service being deployed: it answers /health with oldPolls
// answers from the previous commit (or with status instead, when set), then
// with the deployed one, and serves a small API.
func appService(t *testing.T, oldPolls int, status int) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	polls := 0
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		polls++
		n := polls
		mu.Unlock()
		sha := deployedSHA
		if oldPolls < 0 || n <= oldPolls {
			if status != 0 {
				// Echo the token, as a careless proxy would: the log must not show it.
				http.Error(w, "starting; auth "+r.Header.Get("Authorization"), status)
				return
			}
			sha = previousSHA
		}
		fmt.Fprintf(w, `{"git_sha":%q,"version":"v2.0.0"}`, sha)
	})
	mux.HandleFunc("GET /api/items", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"items":[{"id":1}]}`))
	})
	mux.HandleFunc("POST /api/echo", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"a":1}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var actionsEnv = map[string]string{"GITHUB_ACTIONS": "true"}

func TestVerifyWaitsForTheDeployedVersion(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		name     string
		url      func(t *testing.T) string
		code     int
		result   string
		log      string
		headline string
	}{
		{
			name: "old version, then the deployed one",
			url:  func(t *testing.T) string { return appService(t, 3, 0).URL },
			code: 0, result: "verified",
			log:      "/health still serves fedcba9 (want 1234567): the old version is still answering, or the new one reports another commit (attempt 1",
			headline: "### ✅ verify: `" + "%s/health` serves `1234567`",
		},
		{
			name: "old version still serving",
			url:  func(t *testing.T) string { return appService(t, -1, 0).URL },
			code: 1, result: "old-version",
			log:      "::error title=verify::verify: after 150ms %s/health still serves fedcba9 (want 1234567): the old version is still answering",
			headline: "### ❌ verify: the old version is still serving",
		},
		{
			name: "unhealthy",
			url:  func(t *testing.T) string { return appService(t, -1, 503).URL },
			code: 1, result: "unhealthy",
			log:      "::error title=verify::verify: after 150ms %s/health answers 503 (want 200): \"starting; auth\"",
			headline: "### ❌ verify: the service is not healthy",
		},
		{
			name: "unreachable",
			url:  func(*testing.T) string { return closed.URL },
			code: 1, result: "unreachable",
			log:      "::error title=verify::verify: after 150ms %s/health is unreachable: dial tcp",
			headline: "### ❌ verify: the service is unreachable",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url(t)
			vars := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SHA": deployedSHA}
			timeout := "150ms"
			if tc.code == 0 {
				timeout = "10s"
			}
			r := runCLI(t, vars, nil, "verify", "--url", u, "--interval", "2ms", "--timeout", timeout)
			if r.code != tc.code || r.outputs["result"] != tc.result {
				t.Fatalf("exit %d, result %q; want %d, %q\n%s", r.code, r.outputs["result"], tc.code, tc.result, r.log)
			}
			if want := strings.ReplaceAll(tc.log, "%s", u); !strings.Contains(r.log, want) {
				t.Errorf("log lacks %q:\n%s", want, r.log)
			}
			if want := strings.ReplaceAll(tc.headline, "%s", u); !strings.HasPrefix(r.summary, want) {
				t.Errorf("summary does not start with %q:\n%s", want, r.summary)
			}
			if !strings.Contains(r.summary, "| Time | Attempt | Outcome | Detail |") {
				t.Errorf("summary has no attempts table:\n%s", r.summary)
			}
			if _, err := strconv.ParseFloat(r.outputs["elapsed"], 64); err != nil {
				t.Errorf("elapsed %q: %v", r.outputs["elapsed"], err)
			}
			if tc.result == "verified" && (r.outputs["served-sha"] != deployedSHA || r.outputs["served-version"] != "v2.0.0") {
				t.Errorf("outputs %v", r.outputs)
			}
			if tc.result == "old-version" && r.outputs["served-sha"] != previousSHA {
				t.Errorf("outputs %v", r.outputs)
			}
			// One log line per change of outcome, not one per poll.
			if n := strings.Count(r.log, "(attempt "); n > 2 {
				t.Errorf("%d attempt lines logged:\n%s", n, r.log)
			}
		})
	}
}

func TestVerifyContractChecks(t *testing.T) {
	t.Parallel()
	const checks = "GET /api/items status=200 json.items exists max=5s\nPOST /api/echo body={\"a\":1} status=201 json.a=1\n"
	for _, tc := range []struct {
		name   string
		checks string
		allow  string
		code   int
		result string
		log    []string
		sum    []string
	}{
		{
			name: "all pass", checks: checks, code: 0, result: "verified",
			sum: []string{"### ✅ verify:", "#### Contract checks", "| `GET /api/items status=200 json.items exists max=5s` | ✅ ok | 200 |"},
		},
		{
			name: "one fails", checks: checks + "GET /api/items json.items.0.id=2\n", code: 1, result: "contract-failed",
			log: []string{"::error title=verify::verify: 1 of 3 contract checks failed; first: GET /api/items json.items.0.id=2: json.items.0.id is 1, want 2"},
			sum: []string{"### ❌ verify: 1 of 3 contract checks failed", "| ❌ json.items.0.id is 1, want 2 | 200 |"},
		},
		{
			name: "one fails, allowed", checks: checks + "GET /missing\n", allow: "true", code: 0, result: "verified-with-warnings",
			log: []string{"::warning::contract check failed (allowed by allow-failure): GET /missing: status 404, want 2xx"},
			sum: []string{"### ⚠️ verify:", "⚠️ **1 of 3 contract checks failed**; the step passes because allow-failure is set.", "| ⚠️ status 404, want 2xx"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := appService(t, 1, 0)
			args := []string{"verify", "--url", srv.URL, "--sha", deployedSHA[:7], "--interval", "2ms", "--checks", tc.checks}
			if tc.allow != "" {
				args = append(args, "--allow-failure", tc.allow)
			}
			r := runCLI(t, actionsEnv, nil, args...)
			if r.code != tc.code || r.outputs["result"] != tc.result {
				t.Fatalf("exit %d, result %q; want %d, %q\n%s\n%s", r.code, r.outputs["result"], tc.code, tc.result, r.log, r.summary)
			}
			for _, want := range tc.log {
				if !strings.Contains(r.log, want) {
					t.Errorf("log lacks %q:\n%s", want, r.log)
				}
			}
			for _, want := range tc.sum {
				if !strings.Contains(r.summary, want) {
					t.Errorf("summary lacks %q:\n%s", want, r.summary)
				}
			}
			if tc.code == 0 && strings.Contains(r.log, "::error") {
				t.Errorf("error annotation on a passing run:\n%s", r.log)
			}
		})
	}
}

func TestVerifyRefusesBadInputs(t *testing.T) {
	t.Parallel()
	var hits int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		args  []string
		input string
		msg   string
	}{
		{"short sha", nil, []string{"--url", srv.URL, "--sha", "123456"}, "sha", `"123456" is too short; want at least 7 hex characters`},
		{"no sha anywhere", nil, []string{"--url", srv.URL}, "sha", "is empty and GITHUB_SHA is not set"},
		{"no url", nil, []string{"--sha", deployedSHA}, "url", "is required"},
		{"url without scheme", nil, []string{"--url", "api.example.com", "--sha", deployedSHA}, "url", `"api.example.com" is not an http:// or https:// URL with a host`},
		{"exec check", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--checks", "GET /a\nexec api -- ./migrate --check"}, "checks",
			`line 2: "exec api -- ./migrate --check": exec checks run inside the service's containers and belong to the checks input of deploy-compose or deploy-swarm`},
		{"bad check", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--checks", "GET /a stauts=200"}, "checks", `line 1: "GET /a stauts=200": unknown assertion "stauts=200"`},
		{"bad header", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--headers", "Bearer abc"}, "headers", "a line is not `Name: value` (it starts with \"Bea…\")"},
		{"bad timeout", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--timeout", "soon"}, "timeout", `"soon" is not a duration`},
		{"zero consecutive", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--consecutive", "0"}, "consecutive", "must be at least 1"},
		{"bad status", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--expect-status", "2000"}, "expect-status", "2000 is not an HTTP status code"},
		{"bad version-field", nil, []string{"--url", srv.URL, "--sha", deployedSHA, "--version-field", "build..sha"}, "version-field", `"build..sha" is not a dotted JSON path`},
	} {
		vars := map[string]string{"GITHUB_ACTIONS": "true"}
		for k, v := range tc.vars {
			vars[k] = v
		}
		r := runCLI(t, vars, nil, append([]string{"verify"}, tc.args...)...)
		want := fmt.Sprintf("::error title=%s::verify: input %q: %s", tc.input, tc.input, tc.msg)
		if r.code != 1 || !strings.Contains(r.log, want) {
			t.Errorf("%s: exit %d, want 1 with %s\n%s", tc.name, r.code, want, r.log)
		}
		if len(r.outputs) != 0 {
			t.Errorf("%s: outputs %v", tc.name, r.outputs)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("%d requests made on bad inputs; want none", hits)
	}
}

func TestVerifyMasksHeaderValues(t *testing.T) {
	t.Parallel()
	const token = "Bearer sup3r-s3cret-t0ken"
	srv := appService(t, 2, 503) // its 503 body echoes the token
	var mu sync.Mutex
	var got string
	wrapped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Get("Authorization")
		mu.Unlock()
		srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer wrapped.Close()
	r := runCLI(t, actionsEnv, nil, "verify", "--url", wrapped.URL, "--sha", deployedSHA, "--interval", "2ms",
		"--headers", "Authorization: "+token, "--headers", "Accept: application/json")
	mu.Lock()
	defer mu.Unlock()
	if r.code != 0 || got != token {
		t.Fatalf("exit %d, server got %q\n%s", r.code, got, r.log)
	}
	if !strings.Contains(r.log, "::add-mask::"+token) || strings.Contains(r.log, "::add-mask::application/json") {
		t.Errorf("masks:\n%s", r.log)
	}
	if strings.Count(r.log, token) != 1 || strings.Contains(r.summary, token) || !strings.Contains(r.log, `auth ***`) {
		t.Errorf("token shown outside its mask command:\n%s\n%s", r.log, r.summary)
	}
}
