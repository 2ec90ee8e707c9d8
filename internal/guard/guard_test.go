package guard

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/input"
)

const sha = "ABCDEF0123456789abcdef0123456789abcdef01"

func policy() Policy {
	return Policy{
		AllowedTargets:   []string{"staging", "production"},
		ConfirmWord:      "DEPLOY",
		ConfirmTargetFor: []string{"production"},
		RequireReasonFor: []string{"production"},
	}
}

func TestCheckApproves(t *testing.T) {
	t.Parallel()
	for _, r := range []Request{
		{Target: "staging", Confirm: "DEPLOY", SHA: sha},
		{Target: "production", Confirm: "production", Reason: "hotfix", SHA: sha[:7]},
	} {
		ap, err := policy().Check(r)
		if err != nil {
			t.Errorf("%+v refused: %v", r, err)
			continue
		}
		if ap.Target != r.Target || !strings.HasPrefix(strings.ToLower(sha), ap.SHA) || ap.SHATag != "sha-abcdef0" || ap.Reason != r.Reason {
			t.Errorf("approval %+v", ap)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		p      func(*Policy)
		r      Request
		input  string
		phrase string
	}{
		{"no target", nil, Request{Confirm: "DEPLOY", SHA: sha}, "target", "is required; choose one of staging, production"},
		{"unknown target", nil, Request{Target: "prod", Confirm: "DEPLOY", SHA: sha}, "target", `"prod" is not an allowed target`},
		{"target case", nil, Request{Target: "Staging", Confirm: "DEPLOY", SHA: sha}, "target", "not an allowed target"},
		{"no confirm", nil, Request{Target: "staging", SHA: sha}, "confirm", "type DEPLOY to deploy to staging (it is empty)"},
		{"confirm case", nil, Request{Target: "staging", Confirm: "deploy", SHA: sha}, "confirm", `(got "deploy")`},
		{"word where the name is needed", nil, Request{Target: "production", Confirm: "DEPLOY", Reason: "x", SHA: sha}, "confirm", "type the target's name, production, to deploy to production"},
		{"name where the word is needed", nil, Request{Target: "staging", Confirm: "staging", SHA: sha}, "confirm", "type DEPLOY"},
		{"no reason", nil, Request{Target: "production", Confirm: "production", SHA: sha}, "reason", "is required to deploy to production"},
		{"blank reason", nil, Request{Target: "production", Confirm: "production", Reason: " \n ", SHA: sha}, "reason", "is required"},
		{"no sha", nil, Request{Target: "staging", Confirm: "DEPLOY"}, "sha", "is empty and GITHUB_SHA is not set"},
		{"short sha", nil, Request{Target: "staging", Confirm: "DEPLOY", SHA: "abc123"}, "sha", "too short"},
		{"sha injection", nil, Request{Target: "staging", Confirm: "DEPLOY", SHA: "abcdef0; rm -rf /"}, "sha", "not a hex commit SHA"},
		{"typo in require-reason-for", func(p *Policy) { p.RequireReasonFor = []string{"prodution"} }, Request{Target: "production", Confirm: "production", SHA: sha}, "require-reason-for", `"prodution" is not in allowed-targets`},
		{"typo in confirm-target-for", func(p *Policy) { p.ConfirmTargetFor = []string{"prod"} }, Request{Target: "staging", Confirm: "DEPLOY", SHA: sha}, "confirm-target-for", `"prod" is not in allowed-targets`},
		{"no allowed targets", func(p *Policy) { p.AllowedTargets = nil; p.ConfirmTargetFor = nil; p.RequireReasonFor = nil }, Request{Target: "staging", Confirm: "DEPLOY", SHA: sha}, "allowed-targets", "is empty"},
		{"no confirm word", func(p *Policy) { p.ConfirmWord = " " }, Request{Target: "staging", Confirm: " ", SHA: sha}, "confirm-word", "is empty"},
	} {
		p := policy()
		if tc.p != nil {
			tc.p(&p)
		}
		_, err := p.Check(tc.r)
		var ge *input.Error
		if !errors.As(err, &ge) || ge.Input != tc.input || !strings.Contains(ge.Msg, tc.phrase) {
			t.Errorf("%s: %v; want input %s, %q", tc.name, err, tc.input, tc.phrase)
		}
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"GITHUB_ACTOR": "octocat", "GITHUB_TRIGGERING_ACTOR": "hubot", "GITHUB_SHA": "1234567890abcdef1234567890abcdef12345678",
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/api", "GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2",
	}
	ap, err := policy().Check(Request{Target: "staging", Confirm: "DEPLOY", SHA: sha})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	au := NewAudit(ap, func(k string) string { return env[k] }, now)
	if au.Actor != "octocat" || au.TriggeringActor != "hubot" || au.RunURL != "https://github.com/acme/api/actions/runs/42/attempts/2" ||
		!au.Rollback() || au.Time.Location() != time.UTC || au.Time.Hour() != 11 {
		t.Errorf("audit %+v", au)
	}
	env["GITHUB_SHA"] = sha
	env["GITHUB_TRIGGERING_ACTOR"] = "octocat"
	if au := NewAudit(ap, func(k string) string { return env[k] }, now); au.Rollback() || au.TriggeringActor != "" {
		t.Errorf("same commit: %+v", au)
	}
	local := NewAudit(ap, func(k string) string { return map[string]string{"USER": "me"}[k] }, now)
	if local.Actor != "me" || local.RunURL != "" || local.Rollback() {
		t.Errorf("local: %+v", local)
	}
}
