package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/guard"
)

func guardSpec() *action.Spec {
	return &action.Spec{
		Name:        "guard",
		Description: "Check a manual (workflow_dispatch) deploy before it runs: an allowed target, a typed confirmation, a reason where required and a valid commit (an older one rolls back); writes an audit record to the job summary.",
		Summary:     "Check a manual deploy before it runs: allowed target, typed confirmation, reason and commit; audit record in the summary.",
		Inputs: []action.Input{
			{Name: "target", Description: "Where to deploy, e.g. staging or production; must be one of allowed-targets.", Required: true},
			{Name: "allowed-targets", Description: "Targets that may be deployed to, comma separated or one a line.", Kind: action.List, Default: guard.DefaultAllowedTargets},
			{Name: "confirm", Description: "What the person typed to confirm; must equal confirm-word, or the target's name for targets in confirm-target-for."},
			{Name: "confirm-word", Description: "The word to type to confirm.", Default: guard.DefaultConfirmWord},
			{Name: "confirm-target-for", Description: "Targets for which the target's own name must be typed instead of confirm-word, e.g. production.", Kind: action.List},
			{Name: "reason", Description: "Why this deploy; kept as data (never run), shown in the audit record and the reason output."},
			{Name: "require-reason-for", Description: "Targets that need a reason.", Kind: action.List, Default: guard.DefaultRequireReasonFor},
			{Name: "sha", Description: "Commit to deploy; an older one is how a rollback to a known-good commit is triggered. Default: GITHUB_SHA, or the pull request head on pull_request events."},
		},
		Outputs: []action.Output{
			{Name: "target", Description: "The approved target."},
			{Name: "sha", Description: "The commit to deploy, in lower case."},
			{Name: "sha-tag", Description: "Its image tag, sha-XXXXXXX."},
			{Name: "reason", Description: "The reason, exactly as typed (pass it on through env:, never inside run:)."},
			{Name: "actor", Description: "Who started the run (GITHUB_ACTOR)."},
		},
	}
}

func guardCommand() *Command { return &Command{Spec: guardSpec(), Run: runGuard} }

func runGuard(_ context.Context, a *action.Action) error {
	in := a.Inputs()
	policy := guard.Policy{
		AllowedTargets:   in.List("allowed-targets"),
		ConfirmWord:      in.String("confirm-word"),
		ConfirmTargetFor: in.List("confirm-target-for"),
		RequireReasonFor: in.List("require-reason-for"),
	}
	req := guard.Request{
		Target:  in.String("target"),
		Confirm: in.String("confirm"),
		Reason:  in.String("reason"),
		SHA:     in.String("sha"),
	}
	if req.SHA == "" {
		req.SHA = commit.FromEnv(a.Getenv)
	}
	ap, err := policy.Check(req)
	if err != nil {
		return err
	}
	au := guard.NewAudit(ap, a.Getenv, time.Now())
	a.SetOutput("target", ap.Target)
	a.SetOutput("sha", ap.SHA)
	a.SetOutput("sha-tag", ap.SHATag)
	a.SetOutput("reason", ap.Reason)
	a.SetOutput("actor", au.Actor)
	// The reason is quoted: a line of it must never read as a workflow command.
	a.Infof("approved: %s deploys %s to %s; reason %q", au.Actor, ap.SHATag, ap.Target, ap.Reason)
	if au.Rollback() {
		a.Infof("%s is not the commit this run started on (%s): a rollback or a redeploy of another commit", ap.SHA, au.RunSHA)
	}
	writeGuardSummary(a, au)
	return nil
}

func writeGuardSummary(a *action.Action, au guard.Audit) {
	s := a.Summary()
	fmt.Fprintf(s, "### 🛡️ guard: deploy of %s to %s approved\n\n", action.Code(au.SHATag), action.Code(au.Target))
	actor := action.Code(au.Actor)
	if au.Actor == "" {
		actor = "unknown"
	}
	if au.TriggeringActor != "" {
		actor += " (re-run by " + action.Code(au.TriggeringActor) + ")"
	}
	sha := action.Code(au.SHA)
	if au.Rollback() {
		sha += " — not this run's commit " + action.Code(au.RunSHA) + ": a rollback or a redeploy of another commit"
	}
	reason := "_none given_"
	if au.Reason != "" {
		lines := strings.Split(au.Reason, "\n")
		for i, l := range lines {
			lines[i] = action.Escape(strings.TrimRight(l, "\r"))
		}
		reason = strings.Join(lines, "<br>")
	}
	run := "local run"
	if au.RunURL != "" {
		run = au.RunURL
	}
	s.WriteString(action.Table([]string{"Audit", ""}, [][]string{
		{"Actor", actor},
		{"Target", action.Code(au.Target)},
		{"Commit", sha},
		{"Reason", reason},
		{"Run", run},
		{"Time (UTC)", au.Time.Format(time.RFC3339)},
	}))
}
