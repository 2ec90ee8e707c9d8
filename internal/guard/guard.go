// Package guard decides whether a manual deploy may go ahead: the target is
// one the workflow allows, the person typed the confirmation, gave a reason
// where one is required, and named a valid commit (an older one rolls back).
package guard

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	inputpkg "github.com/gantry-dev/gantry/internal/input"

	"github.com/gantry-dev/gantry/internal/commit"
)

// Defaults of a Policy's inputs.
const (
	DefaultAllowedTargets   = "staging,production"
	DefaultConfirmWord      = "DEPLOY"
	DefaultRequireReasonFor = "production"
)

// Policy is what a workflow demands before a manual deploy.
type Policy struct {
	// AllowedTargets are the only targets that may be deployed to.
	AllowedTargets []string
	// ConfirmWord must be typed to confirm, e.g. DEPLOY.
	ConfirmWord string
	// ConfirmTargetFor are targets for which the target's own name must be
	// typed instead of ConfirmWord.
	ConfirmTargetFor []string
	// RequireReasonFor are targets that need a reason.
	RequireReasonFor []string
}

// Request is what the person asked for, as typed.
type Request struct {
	Target  string
	Confirm string
	Reason  string
	SHA     string
}

// Approval is a request that passed the policy.
type Approval struct {
	Target string
	SHA    string // lower case, as given (7 to 40 hex characters)
	SHATag string // sha-XXXXXXX
	Reason string
}

func refuse(input, format string, args ...any) error {
	return inputpkg.Errorf(input, format, args...)
}

// Validate checks the policy itself, so that a typo in require-reason-for or
// confirm-target-for cannot silently switch a protection off.
func (p Policy) Validate() error {
	if len(p.AllowedTargets) == 0 {
		return refuse("allowed-targets", "is empty; list the targets that may be deployed to, e.g. staging,production")
	}
	if strings.TrimSpace(p.ConfirmWord) == "" {
		return refuse("confirm-word", "is empty; set the word a person types to confirm, e.g. DEPLOY")
	}
	for _, t := range p.ConfirmTargetFor {
		if !slices.Contains(p.AllowedTargets, t) {
			return refuse("confirm-target-for", "%q is not in allowed-targets (%s)", t, strings.Join(p.AllowedTargets, ", "))
		}
	}
	for _, t := range p.RequireReasonFor {
		if !slices.Contains(p.AllowedTargets, t) {
			return refuse("require-reason-for", "%q is not in allowed-targets (%s)", t, strings.Join(p.AllowedTargets, ", "))
		}
	}
	return nil
}

// Check returns the approval of r, or an *Error naming the first input that
// fails the policy: target, confirm, reason, then sha.
func (p Policy) Check(r Request) (Approval, error) {
	if err := p.Validate(); err != nil {
		return Approval{}, err
	}
	choices := strings.Join(p.AllowedTargets, ", ")
	switch {
	case r.Target == "":
		return Approval{}, refuse("target", "is required; choose one of %s", choices)
	case !slices.Contains(p.AllowedTargets, r.Target):
		return Approval{}, refuse("target", "%s is not an allowed target; choose one of %s", quote(r.Target), choices)
	}
	if want := p.ConfirmWordFor(r.Target); r.Confirm != want {
		how := "type " + want
		if want == r.Target && slices.Contains(p.ConfirmTargetFor, r.Target) {
			how = "type the target's name, " + want + ","
		}
		got := "it is empty"
		if r.Confirm != "" {
			got = "got " + quote(r.Confirm)
		}
		return Approval{}, refuse("confirm", "%s to deploy to %s (%s)", how, r.Target, got)
	}
	if slices.Contains(p.RequireReasonFor, r.Target) && strings.TrimSpace(r.Reason) == "" {
		return Approval{}, refuse("reason", "is required to deploy to %s; say why, e.g. hotfix for the login error", r.Target)
	}
	if r.SHA == "" {
		return Approval{}, refuse("sha", "is empty and GITHUB_SHA is not set; pass the commit to deploy")
	}
	sha, err := commit.Validate(r.SHA)
	if err != nil {
		return Approval{}, refuse("sha", "%v", err)
	}
	return Approval{Target: r.Target, SHA: sha, SHATag: commit.Tag(sha), Reason: r.Reason}, nil
}

// ConfirmWordFor returns what must be typed to deploy to target.
func (p Policy) ConfirmWordFor(target string) string {
	if slices.Contains(p.ConfirmTargetFor, target) {
		return target
	}
	return p.ConfirmWord
}

// quote shows typed text in a message: quoted, on one line, cut short.
func quote(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Audit is the record of an approved manual deploy.
type Audit struct {
	Actor string
	// TriggeringActor is who re-ran the workflow, when not Actor.
	TriggeringActor string
	Target          string
	SHA             string
	SHATag          string
	Reason          string
	// RunSHA is the commit the run was started on (GITHUB_SHA); a SHA that
	// differs deploys another commit, usually a rollback.
	RunSHA string
	RunURL string
	Time   time.Time // UTC
}

// NewAudit records approval by the actor of the run described by getenv
// (GitHub's default environment variables). Outside Actions the actor is
// $USER.
func NewAudit(ap Approval, getenv func(string) string, now time.Time) Audit {
	au := Audit{
		Actor:  getenv("GITHUB_ACTOR"),
		Target: ap.Target, SHA: ap.SHA, SHATag: ap.SHATag, Reason: ap.Reason,
		RunSHA: strings.ToLower(getenv("GITHUB_SHA")),
		RunURL: RunURL(getenv),
		Time:   now.UTC(),
	}
	if au.Actor == "" {
		au.Actor = getenv("USER")
	}
	if t := getenv("GITHUB_TRIGGERING_ACTOR"); t != "" && t != au.Actor {
		au.TriggeringActor = t
	}
	return au
}

// Rollback reports whether the approved commit is not the one the run was
// started on: a rollback to, or redeploy of, an earlier commit.
func (a Audit) Rollback() bool { return a.RunSHA != "" && !commit.Matches(a.SHA, a.RunSHA) }

// RunURL returns the URL of the workflow run, or "" outside Actions.
func RunURL(getenv func(string) string) string {
	server, repo, id := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID")
	if server == "" || repo == "" || id == "" {
		return ""
	}
	u, err := url.JoinPath(server, repo, "actions", "runs", id)
	if err != nil {
		return ""
	}
	if n := getenv("GITHUB_RUN_ATTEMPT"); n != "" && n != "1" {
		u, _ = url.JoinPath(u, "attempts", n)
	}
	return u
}
