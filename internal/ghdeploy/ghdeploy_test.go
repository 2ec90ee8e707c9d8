package ghdeploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/githubapi"
)

const (
	repoName = "acme/shop"
	envName  = "shop"
	logURL   = "https://github.com/acme/shop/actions/runs/42"
	img1     = "ghcr.io/acme/shop@sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

var (
	sha1 = strings.Repeat("1", 40)
	sha2 = strings.Repeat("2", 40)
	sha3 = strings.Repeat("3", 40)
)

// fixture is a fake GitHub and a Recorder of acme/shop on it whose waits and warnings are kept.
type fixture struct {
	gh       *githubfake.Server
	r        *Recorder
	waits    []time.Duration
	warnings []string
	logs     []string
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	f := &fixture{gh: githubfake.Start(t, githubfake.Options{Repository: repoName})}
	if token == "" {
		token = f.gh.APIToken()
	}
	client, err := githubapi.NewClient(f.gh.APIURL(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.r = &Recorder{
		Client: client, Owner: "acme", Repo: "shop",
		Retry: githubapi.Retrier{Clock: clock.Virtual{NowFunc: time.Now, Advance: func(d time.Duration) { f.waits = append(f.waits, d) }}},
		Warnf: func(format string, args ...any) { f.warnings = append(f.warnings, fmt.Sprintf(format, args...)) },
		Logf:  func(format string, args ...any) { f.logs = append(f.logs, fmt.Sprintf(format, args...)) },
	}
	return f
}

func deployOf(sha string) Deploy {
	return Deploy{Environment: envName, SHA: sha, Description: "deploy-compose of " + sha[:7] + " by octocat: ship it",
		Actor: "octocat", LogURL: logURL, Images: map[string]string{"web": img1}}
}

// deploy records one whole deploy of sha.
func (f *fixture) deploy(sha string, ok bool) *Deployment {
	d := f.r.Start(context.Background(), deployOf(sha))
	d.Finish(context.Background(), ok, "https://shop.example.com/health", "rolled-back: verify failed")
	return d
}

// states are the states of deployment id, oldest first.
func (f *fixture) states(id int64) []string {
	var out []string
	for _, st := range f.gh.DeploymentStatuses(repoName, id) {
		out = append(out, st.GetState())
	}
	return out
}

func TestStartFinish(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// before seeds the fake and may set the token ("" keeps the default GITHUB_TOKEN).
		before func(f *fixture)
		ok     bool
		reason string
		// wantStates are the statuses of the deployment, oldest first; nil: no deployment.
		wantStates []string
		wantWarn   string
		wantWaits  int
		check      func(t *testing.T, f *fixture, d *Deployment)
	}{
		{
			name: "success", ok: true,
			wantStates: []string{StateInProgress, StateSuccess},
			check: func(t *testing.T, f *fixture, d *Deployment) {
				deps := f.gh.Deployments(repoName)
				if len(deps) != 1 {
					t.Fatalf("%d deployments, want 1", len(deps))
				}
				dep := deps[0]
				if dep.GetSHA() != sha2 || dep.GetRef() != sha2 || dep.GetEnvironment() != envName || dep.GetTask() != Task ||
					dep.GetDescription() != "deploy-compose of 2222222 by octocat: ship it" {
					t.Errorf("deployment: %s of %s (ref %s) to %s, %q", dep.GetTask(), dep.GetSHA(), dep.GetRef(), dep.GetEnvironment(), dep.GetDescription())
				}
				if p, ok := readPayload(dep); !ok || p.Actor != "octocat" || p.Images["web"] != img1 || p.Key == "" {
					t.Errorf("payload = %s", dep.Payload)
				}
				sts := f.gh.DeploymentStatuses(repoName, d.ID())
				if st := sts[1]; st.GetEnvironmentURL() != "https://shop.example.com/health" || st.GetLogURL() != logURL {
					t.Errorf("success status = %+v", st)
				}
				if sts[0].GetEnvironmentURL() != "" || sts[0].GetLogURL() != logURL {
					t.Errorf("in_progress status = %+v", sts[0])
				}
				if len(f.logs) != 2 || !strings.Contains(f.logs[0], "in progress") || !strings.HasSuffix(f.logs[1], "success") {
					t.Errorf("logs = %q", f.logs)
				}
			},
		},
		{
			name: "failure with the reason", ok: false,
			reason:     "rolled-back: " + strings.Repeat("x", 200) + "\nsecond line",
			wantStates: []string{StateInProgress, StateFailure},
			check: func(t *testing.T, f *fixture, d *Deployment) {
				st := f.gh.DeploymentStatuses(repoName, d.ID())[1]
				desc := st.GetDescription()
				if utf8.RuneCountInString(desc) != MaxDescription || !strings.HasPrefix(desc, "rolled-back: xxx") || !strings.HasSuffix(desc, "…") || st.GetEnvironmentURL() != "" {
					t.Errorf("failure status: description %q (%d characters), environment URL %q", desc, utf8.RuneCountInString(desc), st.GetEnvironmentURL())
				}
			},
		},
		{
			name: "the previous success becomes inactive", ok: true,
			before: func(f *fixture) {
				f.deploy(sha1, true)
				f.deploy(sha3, false)
			},
			wantStates: []string{StateInProgress, StateSuccess},
			check: func(t *testing.T, f *fixture, d *Deployment) {
				deps := f.gh.Deployments(repoName)
				if got := f.states(deps[0].GetID()); !slices.Equal(got, []string{StateInProgress, StateSuccess, StateInactive}) {
					t.Errorf("previous success: %v, want it inactive", got)
				}
				if got := f.states(deps[1].GetID()); !slices.Equal(got, []string{StateInProgress, StateFailure}) {
					t.Errorf("previous failure: %v, want it untouched", got)
				}
			},
		},
		{
			name: "no deployments permission",
			before: func(f *fixture) {
				f.gh.AddToken("ghs_readonly", githubfake.Identity{User: githubfake.ActionsBot(), Permissions: map[string]string{"contents": "read"}})
				f.useToken(t, "ghs_readonly")
			},
			ok:       true,
			wantWarn: "permissions: deployments: write",
			check: func(t *testing.T, f *fixture, d *Deployment) {
				if n := f.gh.CallCount(githubfake.OpCreateDeploymentStatus); n != 0 {
					t.Errorf("%d status calls after a refused create", n)
				}
			},
		},
		{
			name:     "bad credentials",
			before:   func(f *fixture) { f.useToken(t, "ghs_revoked") },
			ok:       true,
			wantWarn: "check the github-token input",
		},
		{
			name: "a commit GitHub does not have",
			before: func(f *fixture) {
				f.gh.Inject(githubfake.Fault{Op: githubfake.OpCreateDeployment, Status: http.StatusUnprocessableEntity, Message: "No ref found for: " + sha2, Times: 1})
			},
			ok:       true,
			wantWarn: "is the commit pushed to acme/shop?",
		},
		{
			name: "server errors on statuses are retried",
			before: func(f *fixture) {
				f.gh.Inject(githubfake.ServerError(githubfake.OpCreateDeploymentStatus, http.StatusBadGateway, 2))
			},
			ok:         true,
			wantStates: []string{StateInProgress, StateSuccess},
			wantWaits:  2,
		},
		{
			name: "server errors that last are a warning",
			before: func(f *fixture) {
				f.gh.Inject(githubfake.ServerError(githubfake.OpCreateDeploymentStatus, http.StatusInternalServerError, 0))
			},
			ok:         true,
			wantStates: []string{},
			wantWarn:   "500",
			wantWaits:  4, // two for in_progress, two for success: 3 attempts each
			check: func(t *testing.T, f *fixture, d *Deployment) {
				if len(f.warnings) != 2 || !strings.Contains(f.warnings[0], "in progress") || !strings.Contains(f.warnings[1], "outcome") {
					t.Errorf("warnings = %q, want one for each status", f.warnings)
				}
			},
		},
		{
			name: "a create that went through despite a 502 is found, not repeated",
			before: func(f *fixture) {
				f.gh.Inject(githubfake.Fault{Op: githubfake.OpCreateDeployment, Status: http.StatusBadGateway, Applied: true, Times: 1})
			},
			ok:         true,
			wantStates: []string{StateInProgress, StateSuccess},
			wantWaits:  1,
			check: func(t *testing.T, f *fixture, d *Deployment) {
				if n := len(f.gh.Deployments(repoName)); n != 1 {
					t.Errorf("%d deployments, want 1", n)
				}
			},
		},
		{
			name: "a create that failed with a 502 is tried again",
			before: func(f *fixture) {
				f.gh.Inject(githubfake.ServerError(githubfake.OpCreateDeployment, http.StatusBadGateway, 1))
			},
			ok:         true,
			wantStates: []string{StateInProgress, StateSuccess},
			wantWaits:  1,
		},
		{
			name: "a rate limit longer than the longest wait is a warning at once",
			before: func(f *fixture) {
				f.gh.Inject(githubfake.SecondaryRateLimit(githubfake.OpCreateDeployment, http.StatusForbidden, time.Hour, 0))
			},
			ok:       true,
			wantWarn: "longer than",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "")
			if tc.before != nil {
				tc.before(f)
				f.waits, f.warnings, f.logs = nil, nil, nil
			}
			d := f.r.Start(context.Background(), deployOf(sha2))
			d.Finish(context.Background(), tc.ok, "https://shop.example.com/health", tc.reason)
			switch {
			case tc.wantStates == nil && d != nil:
				t.Errorf("Start recorded deployment %d, want none", d.ID())
			case tc.wantStates != nil && d == nil:
				t.Fatalf("Start recorded nothing; warnings %q", f.warnings)
			case d != nil:
				if got := f.states(d.ID()); !slices.Equal(got, tc.wantStates) {
					t.Errorf("statuses %v, want %v", got, tc.wantStates)
				}
			}
			if tc.wantWarn == "" && len(f.warnings) > 0 {
				t.Errorf("warnings %q", f.warnings)
			}
			if tc.wantWarn != "" && (len(f.warnings) == 0 || !strings.Contains(f.warnings[0], tc.wantWarn) || !strings.HasSuffix(f.warnings[0], "the deploy goes on")) {
				t.Errorf("warnings %q, want one saying %q", f.warnings, tc.wantWarn)
			}
			if len(f.waits) != tc.wantWaits {
				t.Errorf("waited %v, want %d waits", f.waits, tc.wantWaits)
			}
			if tc.check != nil {
				tc.check(t, f, d)
			}
		})
	}
}

// useToken makes the Recorder authenticate with token.
func (f *fixture) useToken(t *testing.T, token string) {
	t.Helper()
	client, err := githubapi.NewClient(f.gh.APIURL(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.r.Client = client
}

func TestFinishRecordsACancelledDeploy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	d := f.r.Start(ctx, deployOf(sha1))
	cancel()
	d.Finish(ctx, false, "", "context canceled")
	if got := f.states(d.ID()); !slices.Equal(got, []string{StateInProgress, StateFailure}) {
		t.Errorf("statuses %v, want the failure recorded after the cancel", got)
	}
}

func TestNothingOutsideActions(t *testing.T) {
	t.Parallel()
	gh := githubfake.Start(t, githubfake.Options{Repository: repoName})
	env := map[string]string{"GITHUB_API_URL": gh.APIURL(), "GITHUB_REPOSITORY": repoName}
	for _, tc := range []struct {
		name  string
		unset string
		token string
	}{
		{"no repository", "GITHUB_REPOSITORY", gh.APIToken()},
		{"no token", "", ""},
	} {
		getenv := func(k string) string {
			if k == tc.unset {
				return ""
			}
			return env[k]
		}
		r, err := FromActions(getenv, tc.token, nil)
		if r != nil || err != nil {
			t.Errorf("%s: FromActions = %v, %v; want nil, nil", tc.name, r, err)
		}
		r.Start(context.Background(), deployOf(sha1)).Finish(context.Background(), true, "", "")
	}
	if calls := gh.Calls(); len(calls) != 0 {
		t.Errorf("calls outside Actions: %v", calls)
	}
	if _, err := FromActions(func(k string) string { return map[string]string{"GITHUB_REPOSITORY": "shop"}[k] }, "t", nil); err == nil || !strings.Contains(err.Error(), "want owner/name") {
		t.Errorf("a malformed GITHUB_REPOSITORY: %v", err)
	}
	r, err := FromActions(func(k string) string { return env[k] }, gh.APIToken(), nil)
	if err != nil || r.Owner != "acme" || r.Repo != "shop" {
		t.Fatalf("FromActions in Actions = %+v, %v", r, err)
	}
	if d := r.Start(context.Background(), deployOf(sha1)); d.ID() == 0 {
		t.Errorf("no deployment recorded in Actions")
	}
}

func TestPrevious(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// history is deployed in turn: a SHA, ok.
		history []struct {
			sha string
			ok  bool
		}
		other   bool // another tool recorded a success of sha3 before the history
		current string
		want    string // the SHA found; "" wants ErrNoPrevious
	}{
		{name: "the success before the serving one", history: hist(sha1, true, sha2, true, sha3, false), want: sha1},
		{name: "a given current commit", history: hist(sha1, true, sha2, true), current: sha2[:7], want: sha1},
		{name: "the current commit deployed twice", history: hist(sha1, true, sha2, true, sha2, true), want: sha1},
		{name: "a rollback counts as a deploy", history: hist(sha1, true, sha2, true, sha1, true), want: sha2},
		{name: "one success only", history: hist(sha1, false, sha2, true)},
		{name: "none", history: hist(sha1, false)},
		{name: "another tool's deployment", history: hist(sha1, true), other: true, want: sha3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, "")
			if tc.other {
				otherTool(t, f, sha3)
			}
			for _, h := range tc.history {
				f.deploy(h.sha, h.ok)
			}
			// Another environment's deploys do not count.
			staging := deployOf(sha3)
			staging.Environment = "staging"
			f.r.Start(context.Background(), staging).Finish(context.Background(), true, "", "")
			f.gh.Inject(githubfake.ServerError(githubfake.OpListDeploymentStatuses, http.StatusServiceUnavailable, 1))
			rec, err := f.r.Previous(context.Background(), envName, tc.current)
			if tc.want == "" {
				if !errors.Is(err, ErrNoPrevious) {
					t.Errorf("Previous = %+v, %v; want ErrNoPrevious", rec, err)
				}
				return
			}
			// The creator is who GitHub authenticated, never the payload's actor (octocat).
			wantCreator, wantImage := "github-actions[bot]", img1
			if tc.other {
				wantImage = ""
			}
			if err != nil || rec.SHA != tc.want || rec.Environment != envName || rec.Creator != wantCreator || rec.Images["web"] != wantImage || rec.CreatedAt.IsZero() {
				t.Errorf("Previous = %+v, %v; want %s created by %s, image %q", rec, err, tc.want[:7], wantCreator, wantImage)
			}
		})
	}
}

func hist(pairs ...any) []struct {
	sha string
	ok  bool
} {
	var out []struct {
		sha string
		ok  bool
	}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, struct {
			sha string
			ok  bool
		}{pairs[i].(string), pairs[i+1].(bool)})
	}
	return out
}

// otherTool records a successful deployment of sha to the environment as another tool would.
func otherTool(t *testing.T, f *fixture, sha string) {
	t.Helper()
	ctx := context.Background()
	d, _, err := f.r.Client.Repositories.CreateDeployment(ctx, "acme", "shop", &github.DeploymentRequest{Ref: github.Ptr(sha), Environment: github.Ptr(envName), RequiredContexts: &[]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.Client.Repositories.CreateDeploymentStatus(ctx, "acme", "shop", d.GetID(), &github.DeploymentStatusRequest{State: github.Ptr(StateSuccess)}); err != nil {
		t.Fatal(err)
	}
}

func TestPreviousNeedsReadPermission(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	f.gh.AddToken("ghs_none", githubfake.Identity{User: githubfake.ActionsBot(), Permissions: map[string]string{"contents": "read"}})
	f.useToken(t, "ghs_none")
	_, err := f.r.Previous(context.Background(), envName, "")
	var denied *githubapi.PermissionError
	if !errors.As(err, &denied) || !strings.Contains(err.Error(), "permissions: deployments: read") || errors.Is(err, ErrNoPrevious) {
		t.Errorf("Previous without permission: %v", err)
	}
}

// TestTrustedImages: a payload's images are used only when each is pinned by digest to a
// repository the target itself uses for that service.
func TestTrustedImages(t *testing.T) {
	t.Parallel()
	const (
		sha    = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		digest = "@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	)
	trusted := map[string][]string{"web": {"ghcr.io/acme/shop"}, "worker": {"index.docker.io/library/redis"}, "db": nil}
	tests := []struct {
		name    string
		sha     string
		images  map[string]string
		want    map[string]string
		wantErr string
	}{
		{name: "the file's repository by digest", sha: sha, images: map[string]string{"web": "ghcr.io/acme/shop" + digest}, want: map[string]string{"web": "ghcr.io/acme/shop" + digest}},
		{name: "a short Docker Hub name", sha: sha, images: map[string]string{"worker": "redis" + digest}, want: map[string]string{"worker": "redis" + digest}},
		{name: "another repository, by tag", sha: sha, images: map[string]string{"web": "attacker.example/evil:latest"}, wantErr: `its payload's image for service web, "attacker.example/evil:latest", is not pinned by digest`},
		{name: "the file's repository by tag", sha: sha, images: map[string]string{"web": "ghcr.io/acme/shop:v1"}, wantErr: "is not pinned by digest"},
		{name: "another repository by digest", sha: sha, images: map[string]string{"web": "ghcr.io/acme/shop" + digest, "worker": "attacker.example/evil" + digest}, wantErr: "service worker is from repository attacker.example/evil, which the target does not use (its Compose file and history name: index.docker.io/library/redis)"},
		{name: "a service the target does not have", sha: sha, images: map[string]string{"miner": "ghcr.io/acme/shop" + digest}, wantErr: `names service "miner", which is not in the target's Compose file`},
		{name: "a service with no known repository", sha: sha, images: map[string]string{"db": "ghcr.io/acme/shop" + digest}, wantErr: "history name: none"},
		{name: "a commit that is not hex", sha: "$(reboot)", images: map[string]string{"web": "ghcr.io/acme/shop" + digest}, wantErr: "is not a hex commit SHA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Record{ID: 42, SHA: tc.sha, Images: tc.images}.TrustedImages(trusted)
			if tc.wantErr == "" {
				if err != nil || len(got) != len(tc.want) || got["web"] != tc.want["web"] || got["worker"] != tc.want["worker"] {
					t.Errorf("TrustedImages = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "GitHub Deployment 42 (commit ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("TrustedImages = %v, %v; want one line naming deployment 42 and saying %q", got, err, tc.wantErr)
			}
		})
	}
}
