package cli

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/action"
)

// dispatchEnv is a workflow_dispatch run as GitHub sets it up.
func dispatchEnv(inputs map[string]string) map[string]string {
	env := map[string]string{
		"GITHUB_ACTIONS":    "true",
		"GITHUB_EVENT_NAME": "workflow_dispatch",
		"GITHUB_ACTOR":      "octocat",
		"GITHUB_SHA":        deployedSHA,
		"GITHUB_SERVER_URL": "https://github.com",
		"GITHUB_REPOSITORY": "acme/api",
		"GITHUB_RUN_ID":     "4242",
	}
	for k, v := range inputs {
		env[k] = v
	}
	return env
}

func TestGuardRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		inputs map[string]string
		input  string
		msg    string
	}{
		{"no target", map[string]string{"INPUT_CONFIRM": "DEPLOY"}, "target", "is required; choose one of staging, production"},
		{"target not allowed", map[string]string{"INPUT_TARGET": "prod", "INPUT_CONFIRM": "DEPLOY"}, "target", `"prod" is not an allowed target; choose one of staging, production`},
		{"target outside custom list", map[string]string{"INPUT_TARGET": "production", "INPUT_ALLOWED_TARGETS": "staging\ncanary", "INPUT_CONFIRM": "DEPLOY", "INPUT_REQUIRE_REASON_FOR": "canary"}, "target", `"production" is not an allowed target; choose one of staging, canary`},
		{"no confirmation", map[string]string{"INPUT_TARGET": "staging"}, "confirm", "type DEPLOY to deploy to staging (it is empty)"},
		{"wrong word", map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "deploy"}, "confirm", `type DEPLOY to deploy to staging (got "deploy")`},
		{"custom word", map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "DEPLOY", "INPUT_CONFIRM_WORD": "SHIP-IT"}, "confirm", `type SHIP-IT to deploy to staging`},
		{"word instead of the target's name", map[string]string{"INPUT_TARGET": "production", "INPUT_CONFIRM": "DEPLOY", "INPUT_CONFIRM_TARGET_FOR": "production", "INPUT_REASON": "x"}, "confirm", "type the target's name, production, to deploy to production (got \"DEPLOY\")"},
		{"no reason for production", map[string]string{"INPUT_TARGET": "production", "INPUT_CONFIRM": "DEPLOY"}, "reason", "is required to deploy to production"},
		{"reason required elsewhere", map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "DEPLOY", "INPUT_REQUIRE_REASON_FOR": "staging,production"}, "reason", "is required to deploy to staging"},
		{"short sha", map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "DEPLOY", "INPUT_SHA": "abc12"}, "sha", `"abc12" is too short`},
		{"sha injection", map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "DEPLOY", "INPUT_SHA": "abcdef0$(id)"}, "sha", `"abcdef0$(id)" is not a hex commit SHA`},
		{"no sha at all", map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "DEPLOY", "GITHUB_SHA": ""}, "sha", "is empty and GITHUB_SHA is not set"},
		{"typo in require-reason-for", map[string]string{"INPUT_TARGET": "production", "INPUT_CONFIRM": "DEPLOY", "INPUT_REQUIRE_REASON_FOR": "prodution"}, "require-reason-for", `"prodution" is not in allowed-targets (staging, production)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, dispatchEnv(tc.inputs), nil, "guard")
			want := fmt.Sprintf("::error title=%s::guard: input %q: %s", tc.input, tc.input, tc.msg)
			if r.code != 1 || !strings.Contains(r.log, want) {
				t.Fatalf("exit %d, want 1 with\n%s\n%s", r.code, want, r.log)
			}
			if strings.Count(r.log, "::error") != 1 {
				t.Errorf("more than one error:\n%s", r.log)
			}
			if len(r.outputs) != 0 {
				t.Errorf("outputs written on refusal: %v", r.outputs)
			}
			if strings.Contains(r.summary, "Audit") || !strings.HasPrefix(strings.TrimSpace(r.summary), "**guard failed:**") {
				t.Errorf("summary on refusal:\n%s", r.summary)
			}
		})
	}
}

func TestGuardApproves(t *testing.T) {
	t.Parallel()
	r := runCLI(t, dispatchEnv(nil), nil, "guard", "--target", "production", "--confirm", "production",
		"--confirm-target-for", "production", "--reason", "hotfix for #12", "--sha", strings.ToUpper(previousSHA[:12]))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.log)
	}
	want := map[string]string{"target": "production", "sha": previousSHA[:12], "sha-tag": "sha-fedcba9", "reason": "hotfix for #12", "actor": "octocat"}
	for k, v := range want {
		if r.outputs[k] != v {
			t.Errorf("output %s = %q, want %q", k, r.outputs[k], v)
		}
	}
	for _, s := range []string{
		"### 🛡️ guard: deploy of `sha-fedcba9` to `production` approved",
		"| Actor | `octocat` |",
		"| Commit | `fedcba987654` — not this run's commit `" + deployedSHA + "`: a rollback or a redeploy of another commit |",
		"| Reason | hotfix for #12 |",
		"| Run | https://github.com/acme/api/actions/runs/4242 |",
	} {
		if !strings.Contains(r.summary, s) {
			t.Errorf("summary lacks %q:\n%s", s, r.summary)
		}
	}
	if !regexp.MustCompile(`\| Time \(UTC\) \| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \|`).MatchString(r.summary) {
		t.Errorf("no UTC time in the audit:\n%s", r.summary)
	}
	// The default sha is the run's own commit: not a rollback.
	r = runCLI(t, dispatchEnv(map[string]string{"INPUT_TARGET": "staging", "INPUT_CONFIRM": "DEPLOY"}), nil, "guard")
	if r.code != 0 || r.outputs["sha"] != deployedSHA || r.outputs["sha-tag"] != "sha-1234567" || r.outputs["reason"] != "" || strings.Contains(r.summary, "rollback") {
		t.Errorf("default sha: exit %d %v\n%s", r.code, r.outputs, r.summary)
	}
	if !strings.Contains(r.summary, "| Reason | _none given_ |") {
		t.Errorf("summary:\n%s", r.summary)
	}
}

// TestGuardReasonIsData checks that hostile or unusual reasons reach the
// reason output byte for byte and show escaped in the audit.
func TestGuardReasonIsData(t *testing.T) {
	t.Parallel()
	for _, reason := range []string{
		`"; rm -rf / #`,
		`$(id)`,
		"`whoami` and ${{ github.token }}",
		`a | b || c`,
		"first line\nsecond | line\n::set-output name=target::production\nEOF",
		"déploiement 🚀 — 修正 <script>alert(1)</script> *bold* _it_ [x](y)",
		"line with CRLF\r\nnext",
	} {
		t.Run(reason, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, dispatchEnv(map[string]string{"INPUT_TARGET": "production", "INPUT_CONFIRM": "DEPLOY", "INPUT_REASON": reason}), nil, "guard")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.log)
			}
			if r.outputs["reason"] != reason {
				t.Errorf("reason output %q, want %q", r.outputs["reason"], reason)
			}
			if r.outputs["target"] != "production" || len(r.outputs) != 5 {
				t.Errorf("outputs %v", r.outputs)
			}
			var cells []string
			for _, line := range strings.Split(reason, "\n") {
				cells = append(cells, action.Escape(strings.TrimRight(line, "\r")))
			}
			if row := "| Reason | " + strings.Join(cells, "<br>") + " |\n"; !strings.Contains(r.summary, row) {
				t.Errorf("summary lacks %q:\n%s", row, r.summary)
			}
			// Every table row keeps its two cells: no | from the reason breaks out.
			for _, line := range strings.Split(r.summary, "\n") {
				if strings.HasPrefix(line, "| Reason") && strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") != 3 {
					t.Errorf("reason row broken: %s", line)
				}
			}
			for _, line := range strings.Split(r.log, "\n") {
				if strings.HasPrefix(line, "::") {
					t.Errorf("the reason produced a workflow command: %s", line)
				}
			}
		})
	}
}
