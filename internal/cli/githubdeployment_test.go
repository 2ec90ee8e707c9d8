package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
	"github.com/gantry-dev/gantry/internal/ghdeploy"
	"github.com/gantry-dev/gantry/internal/githubapi"
	"github.com/gantry-dev/gantry/internal/history"
)

// ghRepo is the repository githubfake's Env names (GITHUB_REPOSITORY).
const ghRepo = "gantry-dev/app"

// ghStates are the states of a deployment, oldest first.
func ghStates(gh *githubfake.Server, d *github.Deployment) []string {
	var out []string
	for _, st := range gh.DeploymentStatuses(ghRepo, d.GetID()) {
		out = append(out, st.GetState())
	}
	return out
}

// TestDeployRecordsGitHubDeployments runs deploy-cloudrun in-process against the Cloud Run and
// GitHub fakes: the cheapest real deploy path, the same helper as every deploy command.
func TestDeployRecordsGitHubDeployments(t *testing.T) {
	tests := []struct {
		name string
		// before prepares the fakes and returns extra flags for every deploy.
		before func(c *runCloud) []string
		// shas are deployed in turn; each but the last must succeed.
		shas     []string
		noToken  bool // run without --github-token (before may give its own)
		wantCode int
		// check looks at the last run and the deployments recorded.
		check func(t *testing.T, c *runCloud, r run, deps []*github.Deployment)
	}{
		{
			name: "success then success: in_progress, success with the URL, the previous one inactive",
			shas: []string{ecsSHA1, testSHA},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if len(deps) != 2 {
					t.Fatalf("%d deployments, want 2", len(deps))
				}
				if got := ghStates(c.gh, deps[0]); !slices.Equal(got, []string{"in_progress", "success", "inactive"}) {
					t.Errorf("first deploy: %v, want it made inactive", got)
				}
				if got := ghStates(c.gh, deps[1]); !slices.Equal(got, []string{"in_progress", "success"}) {
					t.Errorf("second deploy: %v", got)
				}
				d := deps[1]
				if d.GetSHA() != testSHA || d.GetEnvironment() != "api" || d.GetDescription() != "deploy-cloudrun of abcdef0 by octocat: ship it" {
					t.Errorf("deployment: %s to %s, %q", d.GetSHA(), d.GetEnvironment(), d.GetDescription())
				}
				var p struct{ Images map[string]string }
				if err := json.Unmarshal(d.Payload, &p); err != nil || p.Images["api"] != runImg2 {
					t.Errorf("payload %s, want the image", d.Payload)
				}
				st := c.gh.DeploymentStatuses(ghRepo, d.GetID())[1]
				if st.GetEnvironmentURL() != r.outputs["url"] || r.outputs["url"] == "" || st.GetLogURL() != "https://github.com/"+ghRepo+"/actions/runs/4242" ||
					st.GetDescription() != "deploy-cloudrun of abcdef0: success" {
					t.Errorf("success status: URL %q (want %q), log %q, %q", st.GetEnvironmentURL(), r.outputs["url"], st.GetLogURL(), st.GetDescription())
				}
				if strings.Contains(r.log, "::warning::") {
					t.Errorf("warnings:\n%s", r.log)
				}
			},
		},
		{
			name: "a failed deploy records failure with the reason",
			before: func(c *runCloud) []string {
				c.run.SetBehavior(runImg2, runfake.ImageNotFound(runImg2))
				return nil
			},
			shas:     []string{ecsSHA1, testSHA},
			wantCode: 1,
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if got := ghStates(c.gh, deps[0]); !slices.Equal(got, []string{"in_progress", "success"}) {
					t.Errorf("the serving deploy: %v, want it still success", got)
				}
				if got := ghStates(c.gh, deps[1]); !slices.Equal(got, []string{"in_progress", "failure"}) {
					t.Fatalf("failed deploy: %v", got)
				}
				st := c.gh.DeploymentStatuses(ghRepo, deps[1].GetID())[1]
				if desc := st.GetDescription(); !strings.HasPrefix(desc, "failed: ") || !strings.Contains(desc, "api-sha-abcdef0") || len([]rune(desc)) > ghdeploy.MaxDescription || st.GetEnvironmentURL() != "" {
					t.Errorf("failure status: %q, URL %q", desc, st.GetEnvironmentURL())
				}
			},
		},
		{
			name: "a token without deployments: write is a warning",
			before: func(c *runCloud) []string {
				c.gh.AddToken("ghs_contents_read", githubfake.Identity{User: githubfake.ActionsBot(), Permissions: map[string]string{"contents": "read"}})
				return []string{"--github-token", "ghs_contents_read"}
			},
			shas: []string{ecsSHA1},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if len(deps) != 0 {
					t.Errorf("%d deployments", len(deps))
				}
				if !strings.Contains(r.log, "::warning::") || !strings.Contains(r.log, "permissions: deployments: write") || !strings.Contains(r.log, "the deploy goes on") {
					t.Errorf("log lacks the warning:\n%s", r.log)
				}
			},
		},
		{
			name: "server errors are retried",
			before: func(c *runCloud) []string {
				c.gh.Inject(githubfake.ServerError(githubfake.OpCreateDeploymentStatus, http.StatusBadGateway, 1))
				return nil
			},
			shas: []string{ecsSHA1},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if got := ghStates(c.gh, deps[0]); !slices.Equal(got, []string{"in_progress", "success"}) {
					t.Errorf("statuses %v", got)
				}
				if n := c.gh.CallCount(githubfake.OpCreateDeploymentStatus); n != 3 {
					t.Errorf("%d status calls, want 3 (one retried)", n)
				}
			},
		},
		{
			name: "server errors that last are a warning",
			before: func(c *runCloud) []string {
				c.gh.Inject(githubfake.ServerError(githubfake.OpCreateDeployment, http.StatusInternalServerError, 0))
				return nil
			},
			shas: []string{ecsSHA1},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if n := c.gh.CallCount(githubfake.OpCreateDeployment); n != 3 {
					t.Errorf("%d creates, want 3", n)
				}
				if !strings.Contains(r.log, "::warning::") || !strings.Contains(r.log, "500") {
					t.Errorf("log lacks the warning:\n%s", r.log)
				}
			},
		},
		{
			name:   "an environment given, and a preview in its own transient environment",
			before: func(c *runCloud) []string { return []string{"--github-environment", "production"} },
			shas:   []string{ecsSHA1, testSHA},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if len(deps) != 2 || deps[0].GetEnvironment() != "production" || deps[1].GetEnvironment() != "production" {
					t.Fatalf("deployments %v", deps)
				}
				p := runCLI(t, c.vars, c.tr, "deploy-cloudrun", "--gcp-project", "my-project", "--region", "europe-west1", "--service", "api",
					"--gcp-workload-identity-provider", wifProvider, "--gcp-service-account", runSA, "--poll-interval", "200ms",
					"--github-token", c.gh.APIToken(), "--github-environment", "production",
					"--image", runImg1, "--sha", strings.Repeat("5", 40), "--strategy", "preview")
				if p.code != 0 {
					t.Fatalf("preview: exit %d\n%s", p.code, p.log)
				}
				all := c.gh.Deployments(ghRepo)
				pv := all[len(all)-1]
				st := c.gh.DeploymentStatuses(ghRepo, pv.GetID())
				if pv.GetEnvironment() != "production-preview" || st[len(st)-1].GetEnvironmentURL() != p.outputs["tag-url"] {
					t.Errorf("preview recorded in %s with URL %q, want production-preview and %q", pv.GetEnvironment(), st[len(st)-1].GetEnvironmentURL(), p.outputs["tag-url"])
				}
				if got := ghStates(c.gh, deps[1]); !slices.Equal(got, []string{"in_progress", "success"}) {
					t.Errorf("production after the preview: %v, want it still success", got)
				}
			},
		},
		{
			name:   "github-deployment false records nothing",
			before: func(c *runCloud) []string { return []string{"--github-deployment", "false"} },
			shas:   []string{ecsSHA1},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if calls := c.gh.Calls(); len(calls) != 0 {
					t.Errorf("GitHub calls: %v", calls)
				}
			},
		},
		{
			name:    "outside Actions (no token) nothing is recorded, silently",
			before:  func(c *runCloud) []string { c.vars["GITHUB_ACTIONS"] = ""; return nil },
			noToken: true,
			shas:    []string{ecsSHA1},
			check: func(t *testing.T, c *runCloud, r run, deps []*github.Deployment) {
				if calls := c.gh.Calls(); len(calls) != 0 || strings.Contains(r.log, "warning") {
					t.Errorf("GitHub calls %v\n%s", calls, r.log)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startRunCloud(t)
			c.vars["GITHUB_SERVER_URL"] = "https://github.com"
			workspace(t, nil)
			var flags []string
			if tc.before != nil {
				flags = tc.before(c)
			}
			if !tc.noToken && !slices.Contains(flags, "--github-token") {
				flags = append(flags, "--github-token", c.gh.APIToken())
			}
			var r run
			for i, sha := range tc.shas {
				img := runImg1
				if i > 0 {
					img = runImg2
				}
				r = c.deploy(t, append([]string{"--image", img, "--sha", sha, "--reason", "ship it"}, flags...)...)
				if last := i == len(tc.shas)-1; !last && r.code != 0 {
					t.Fatalf("deploy %d: exit %d\n%s", i+1, r.code, r.log)
				}
			}
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.wantCode, r.log)
			}
			tc.check(t, c, r, c.gh.Deployments(ghRepo))
		})
	}
}

// TestRollbackECSFromGitHubDeployments rolls an ECS service back to a revision that no gantry
// deploy marked deployed, by the commit of the last successful GitHub Deployment before the
// serving one.
func TestRollbackECSFromGitHubDeployments(t *testing.T) {
	c := startECSCloud(t)
	workspace(t, nil)
	ctx := context.Background()
	c.vars["GITHUB_SERVER_URL"] = "https://github.com"
	// Revision 2 runs an older commit; it was registered and deployed by another tool.
	older := "4444444ddddddddddddddddddddddddddddddddd"
	out, err := c.api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(c.v1)})
	if err != nil {
		t.Fatal(err)
	}
	td := out.TaskDefinition
	reg, err := c.api.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
		Family: td.Family, ContainerDefinitions: td.ContainerDefinitions, NetworkMode: td.NetworkMode, Cpu: td.Cpu, Memory: td.Memory,
		RequiresCompatibilities: td.RequiresCompatibilities, Tags: []types.Tag{{Key: aws.String("gantry.sha"), Value: aws.String(older)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rollback := func(extra ...string) run {
		return runCLI(t, c.vars, nil, append([]string{"rollback", "--service", "api", "--to", "previous", "--poll-interval", "200ms"}, extra...)...)
	}
	if r := rollback(); r.code != 1 || !strings.Contains(r.log, "no earlier successfully deployed revision") {
		t.Fatalf("without GitHub Deployments: exit %d\n%s", r.code, r.log)
	}

	// GitHub knows the environment's deploys: the older commit, then the serving one.
	client, err := githubapi.NewClient(c.gh.APIURL(), c.gh.APIToken(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &ghdeploy.Recorder{Client: client, Owner: "gantry-dev", Repo: "app"}
	for _, sha := range []string{older, ecsSHA1} {
		rec.Start(ctx, ghdeploy.Deploy{Environment: "api", SHA: sha}).Finish(ctx, true, "", "")
	}
	r := rollback("--github-token", c.gh.APIToken())
	if r.code != 0 || r.outputs["deployed-sha"] != older || r.outputs["task-definition"] != aws.ToString(reg.TaskDefinition.TaskDefinitionArn) {
		t.Fatalf("rollback: exit %d outputs %v\n%s", r.code, r.outputs, r.log)
	}
	if !strings.Contains(r.log, "asking GitHub for the last successful deploy to environment api") {
		t.Errorf("log does not say where the commit came from:\n%s", r.log)
	}
	deps := c.gh.Deployments(ghRepo)
	if len(deps) != 3 || deps[2].GetSHA() != older || !strings.HasPrefix(deps[2].GetDescription(), "rollback of 4444444 by octocat") {
		t.Fatalf("deployments after the rollback: %d, last %s %q", len(deps), deps[len(deps)-1].GetSHA(), deps[len(deps)-1].GetDescription())
	}
	if got := ghStates(c.gh, deps[2]); !slices.Equal(got, []string{"in_progress", "success"}) {
		t.Errorf("the rollback's deployment: %v", got)
	}
	if got := ghStates(c.gh, deps[1]); !slices.Equal(got, []string{"in_progress", "success", "inactive"}) {
		t.Errorf("the deploy rolled back from: %v, want it inactive", got)
	}
}

// TestRollbackHistoryOrGitHub covers where a Compose or Swarm rollback finds the deploy to go back
// to: the target's history first, GitHub Deployments for --to previous when it has none.
func TestRollbackHistoryOrGitHub(t *testing.T) {
	t.Parallel()
	const (
		older   = "4444444ddddddddddddddddddddddddddddddddd"
		serving = "5555555eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
		imgOld  = "ghcr.io/acme/shop@sha256:4444444444444444444444444444444444444444444444444444444444444444"
	)
	entry := func(sha, result string) history.Entry {
		return history.Entry{SHA: sha, Result: result, Images: map[string]string{"web": "ghcr.io/acme/shop@sha256:" + strings.Repeat(sha[:1], 64)}}
	}
	tests := []struct {
		name string
		es   []history.Entry
		to   string
		// github records these deploys to environment shop, oldest first; "no-images" is one of older
		// that recorded no images.
		github  []string
		noToken bool
		want    string // the SHA found; "" wants an error containing wantErr
		wantErr string
		// wantCalls is whether GitHub is asked.
		wantCalls bool
	}{
		{name: "the history has it", es: []history.Entry{entry(older, history.ResultSuccess), entry(serving, history.ResultSuccess)}, to: "previous", github: []string{older, serving}, want: older},
		{name: "an empty history asks GitHub", to: "previous", github: []string{older, serving}, want: older, wantCalls: true},
		{name: "a history of the serving deploy only asks GitHub", es: []history.Entry{entry(serving, history.ResultSuccess)}, to: "previous", github: []string{older, serving}, want: older, wantCalls: true},
		{name: "a deployment that recorded no images", to: "previous", github: []string{"no-images", serving}, wantErr: "names 4444444 as the previous deploy but records no images", wantCalls: true},
		{name: "GitHub has none either", to: "previous", github: []string{serving}, wantErr: "nothing to roll back to; nor from GitHub Deployments: no earlier successful GitHub Deployment", wantCalls: true},
		{name: "a commit is looked for in the history only", es: []history.Entry{entry(serving, history.ResultSuccess)}, to: older, github: []string{older, serving}, wantErr: "the history has no successful deploy of " + older},
		{name: "no token: the history's answer", to: "previous", github: []string{older, serving}, noToken: true, wantErr: "no successful deploy in the history yet"},
		// A payload is writable by anyone with deployments: write: only the target's own
		// repositories, pinned by digest, are used.
		{name: "a planted image", to: "previous", github: []string{"planted:attacker.example/evil:latest", serving}, wantErr: `refused: its payload's image for service web, "attacker.example/evil:latest", is not pinned by digest`, wantCalls: true},
		{name: "a tag of the file's repository", to: "previous", github: []string{"planted:ghcr.io/acme/shop:v1", serving}, wantErr: "is not pinned by digest", wantCalls: true},
		{name: "another repository by digest", to: "previous", github: []string{"planted:ghcr.io/acme/other@sha256:" + strings.Repeat("4", 64), serving}, wantErr: "service web is from repository ghcr.io/acme/other, which the target does not use (its Compose file and history name: ghcr.io/acme/shop)", wantCalls: true},
		{name: "a repository only the history names", es: []history.Entry{{SHA: serving, Result: history.ResultSuccess, Images: map[string]string{"web": "ghcr.io/acme/moved@sha256:" + strings.Repeat("5", 64)}}}, to: "previous", github: []string{"planted:ghcr.io/acme/moved@sha256:" + strings.Repeat("4", 64), serving}, want: older, wantCalls: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gh := githubfake.Start(t, githubfake.Options{})
			client, err := githubapi.NewClient(gh.APIURL(), gh.APIToken(), nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := &ghdeploy.Recorder{Client: client, Owner: "gantry-dev", Repo: "app"}
			ctx := context.Background()
			for _, sha := range tc.github {
				d := ghdeploy.Deploy{Environment: "shop", SHA: sha, Actor: "octocat", Images: map[string]string{"web": imgOld}}
				if sha == "no-images" {
					d.SHA, d.Images = older, nil
				}
				if img, ok := strings.CutPrefix(sha, "planted:"); ok {
					d.SHA, d.Images = older, map[string]string{"web": img}
				}
				rec.Start(ctx, d).Finish(ctx, true, "", "")
			}
			before := len(gh.Calls())
			env := gh.Env()
			flags := map[string][]string{"github-token": {gh.APIToken()}}
			if tc.noToken {
				flags = nil
			}
			a := action.New(rollbackSpec(), action.Env{Getenv: func(k string) string { return env[k] }, Flags: flags})
			file := &composefile.File{Services: map[string]composefile.Service{"web": {Name: "web", Image: "ghcr.io/acme/shop:latest"}}}
			got, err := historyOrGitHub(ctx, a, "shop", tc.es, file, tc.to, "vm1, project shop")
			switch {
			case tc.want != "" && (err != nil || got.SHA != tc.want || len(got.Images) == 0):
				t.Errorf("got %+v, %v; want %s with its images", got, err, tc.want[:7])
			case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "rollback on vm1, project shop: ") || strings.Contains(err.Error(), "\n")):
				t.Errorf("got %+v, %v; want an error saying %q", got, err, tc.wantErr)
			}
			if asked := len(gh.Calls()) > before; asked != tc.wantCalls {
				t.Errorf("GitHub asked: %v, want %v", asked, tc.wantCalls)
			}
		})
	}
}
