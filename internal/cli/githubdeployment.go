package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/deploy/cloudrun"
	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
	"github.com/gantry-dev/gantry/internal/ghdeploy"
	"github.com/gantry-dev/gantry/internal/history"
)

// githubDeploymentInputs are the inputs of a command that records its deploys as GitHub
// Deployments; target names what the environment defaults to.
func githubDeploymentInputs(target string) []action.Input {
	return []action.Input{
		{Name: "github-token", Description: "Token that records the deploy as a GitHub Deployment (the job needs `permissions: deployments: write`; without it the deploy goes on with a warning).", ActionDefault: "${{ github.token }}", Secret: true},
		{Name: "github-environment", Description: "GitHub environment the deploy is recorded in, shown on the repository's Environments page; default: " + target + "."},
		{Name: "github-deployment", Description: "Record the deploy as a GitHub Deployment: in_progress, then success with the verified URL or failure with the reason, the previous one made inactive.", Kind: action.Bool, Default: "true"},
	}
}

// githubDeploy is what a deploy tells GitHub about itself.
type githubDeploy struct {
	target string // the default environment: the project, stack or service name
	sha    string
	verb   string // deploy-compose, rollback…
	reason string
	images map[string]string // service → repository@sha256:..., for a later rollback
	// preview is a deploy that moves no traffic: it goes to <environment>-preview, transient, so
	// that the environment's record keeps showing what serves it.
	preview bool
}

// githubRecord finishes the GitHub Deployment of one deploy; the zero value does nothing.
type githubRecord struct {
	a   *action.Action
	dep *ghdeploy.Deployment
	msg string // "verb of sha", the head of the success status
}

// githubRecorder returns the Recorder and environment of a command that records GitHub
// Deployments, or nil when it does not: the command has no such inputs, github-deployment is
// false, or it runs outside Actions (no GITHUB_REPOSITORY or no github-token).
func githubRecorder(a *action.Action, target string) (*ghdeploy.Recorder, string) {
	if _, ok := a.Spec().Input("github-deployment"); !ok {
		return nil, ""
	}
	in := a.Inputs()
	on, err := action.ParseBool(in.String("github-deployment"))
	if err != nil {
		a.Warnf("input github-deployment: %q is not a boolean (true or false); no GitHub Deployment is recorded", in.String("github-deployment"))
		return nil, ""
	}
	if !on {
		return nil, ""
	}
	r, err := ghdeploy.FromActions(a.Getenv, in.String("github-token"), a.Transport())
	if err != nil {
		a.Warnf("no GitHub Deployment is recorded: %v", err)
		return nil, ""
	}
	if r == nil {
		return nil, ""
	}
	r.Warnf, r.Logf = a.Warnf, a.Infof
	env := in.String("github-environment")
	if env == "" {
		env = target
	}
	return r, env
}

// startGitHubDeployment records the start of a deploy as a GitHub Deployment, when the command
// does; any failure is a warning.
func startGitHubDeployment(ctx context.Context, a *action.Action, d githubDeploy) githubRecord {
	r, env := githubRecorder(a, d.target)
	if r == nil {
		return githubRecord{}
	}
	if d.preview {
		env += "-preview"
	}
	g := githubRecord{a: a, msg: d.verb + " of " + commit.Short(d.sha)}
	desc := g.msg + " by " + a.Actor()
	if d.reason != "" {
		desc += ": " + d.reason
	}
	g.dep = r.Start(ctx, ghdeploy.Deploy{
		Environment: env, SHA: d.sha, Description: a.Redact(desc), Actor: a.Actor(),
		LogURL: runURL(a), Images: d.images, Transient: d.preview,
	})
	return g
}

// finish records the deploy's outcome: success with url (the verified URL, or "") when err is nil,
// else failure with the error's first line.
func (g githubRecord) finish(ctx context.Context, outcome string, err error, url string) {
	if g.dep == nil {
		return
	}
	if err != nil {
		g.dep.Finish(ctx, false, "", g.a.Redact(outcome+": "+err.Error()))
		return
	}
	g.dep.Finish(ctx, true, url, g.msg+": "+outcome)
}

// previousFromGitHub is rollback --to previous for a target whose own history has no previous
// deploy (why): the last successful GitHub Deployment of another commit than current ("" for
// GitHub's own serving one). withImages asks for the images gantry recorded with it, which a
// Compose or Swarm rollback redeploys.
func previousFromGitHub(ctx context.Context, a *action.Action, target, current string, withImages bool, why error) (ghdeploy.Record, error) {
	r, env := githubRecorder(a, target)
	if r == nil {
		return ghdeploy.Record{}, why
	}
	a.Infof("%v; asking GitHub for the last successful deploy to environment %s", why, env)
	rec, err := r.Previous(ctx, env, current)
	switch {
	case err != nil:
		return ghdeploy.Record{}, fmt.Errorf("%w; nor from GitHub Deployments: %w", why, err)
	case withImages && len(rec.Images) == 0:
		return ghdeploy.Record{}, fmt.Errorf("%w; GitHub Deployment %d of environment %s names %s as the previous deploy but records no images: deploy that commit's images with the deploy action", why, rec.ID, env, commit.Short(rec.SHA))
	}
	a.Infof("GitHub Deployment %d: %s, created by %s on %s", rec.ID, commit.Short(rec.SHA), rec.Creator, rec.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
	return rec, nil
}

// rollbackEntry is the deploy a Compose or Swarm rollback goes back to, and where it was found.
type rollbackEntry struct {
	history.Entry
	source string // "deployed 2026-01-02 15:04 UTC by octocat", or the GitHub Deployment's ID
}

// historyOrGitHub is the deploy a Compose or Swarm rollback goes back to: from the target's
// history, or, for --to previous when the history has none, from GitHub Deployments. A GitHub
// Deployment's images are used only when each is pinned by digest to a repository that file or
// the history uses for its service: anyone with `deployments: write` can write a payload.
func historyOrGitHub(ctx context.Context, a *action.Action, target string, es []history.Entry, file *composefile.File, to string, where string) (rollbackEntry, error) {
	e, err := history.Find(es, to)
	if err == nil || to != "previous" {
		if err != nil {
			err = fmt.Errorf("rollback on %s: %w", where, err)
		}
		return rollbackEntry{Entry: e, source: "deployed " + e.Finished.Format("2006-01-02 15:04 UTC") + " by " + e.Actor}, err
	}
	current := ""
	if cur, ok := history.Current(es); ok {
		current = cur.SHA
	}
	rec, err := previousFromGitHub(ctx, a, target, current, true, fmt.Errorf("rollback on %s: %w", where, err))
	if err != nil {
		return rollbackEntry{}, err
	}
	images, err := rec.TrustedImages(trustedRepositories(file, es))
	if err != nil {
		return rollbackEntry{}, fmt.Errorf("rollback on %s: %w; roll back to a commit in the target's history, or deploy that commit's images with the deploy action", where, err)
	}
	return rollbackEntry{
		Entry:  history.Entry{SHA: rec.SHA, Images: images, Finished: rec.CreatedAt, Result: history.ResultSuccess},
		source: fmt.Sprintf("GitHub Deployment %d of %s", rec.ID, rec.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")),
	}, nil
}

// trustedRepositories are the repositories a target itself uses, by service: the image of each
// service in its Compose file and every image its history recorded for it.
func trustedRepositories(file *composefile.File, es []history.Entry) map[string][]string {
	out := map[string][]string{}
	add := func(s, ref string) {
		if repo, ok := ghdeploy.Repository(ref); ok && !slices.Contains(out[s], repo) {
			out[s] = append(out[s], repo)
		}
	}
	for s, svc := range file.Services {
		out[s] = nil
		add(s, svc.Image)
	}
	for _, e := range es {
		for s, img := range e.Images {
			if _, ok := out[s]; ok {
				add(s, img)
			}
		}
	}
	return out
}

// verifiedURL is url when verified, else "": a GitHub Deployment links only a URL that served the commit.
func verifiedURL(verified bool, url string) string {
	if verified {
		return url
	}
	return ""
}

// runImages is the image a Cloud Run deploy records, keyed by the service; nil for a rollback,
// which names a revision instead.
func runImages(o cloudrun.Options) map[string]string {
	if o.Image == "" {
		return nil
	}
	return map[string]string{o.Service: o.Image}
}

// runEnvironmentURL is the verified URL of a Cloud Run deploy: a preview's tag URL, else the url
// input or the service's URL.
func runEnvironmentURL(o cloudrun.Options, res *cloudrun.Result) string {
	switch {
	case len(res.Verified) == 0:
		return ""
	case o.Strategy == cloudrun.Preview:
		return res.TagURL
	case o.URL != "":
		return o.URL
	}
	return res.URL
}

// ecsRevisionFromGitHub is rollback --to previous on ECS when no earlier revision carries
// gantry's deploy marks (why): the revision of the last successful GitHub Deployment's commit, by
// its gantry.sha tag or its sha-XXXXXXX image tag.
func ecsRevisionFromGitHub(ctx context.Context, a *action.Action, api ecsdeploy.API, o ecsdeploy.Options, why error) (ecsdeploy.Revision, string, error) {
	rec, err := previousFromGitHub(ctx, a, o.Service, "", false, why)
	if err != nil {
		return ecsdeploy.Revision{}, "", err
	}
	return ecsdeploy.FindRevision(ctx, api, o, rec.SHA)
}
