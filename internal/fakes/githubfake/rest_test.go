package githubfake

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"
)

// client returns a go-github client of s's REST API authenticating with token.
func client(t *testing.T, s *Server, token string) *github.Client {
	t.Helper()
	c := github.NewClient(nil).WithAuthToken(token)
	u, err := url.Parse(s.APIURL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	c.BaseURL = u
	return c
}

// bypass skips go-github's own rate limit bookkeeping, so that each call reaches the fake.
var bypass = context.WithValue(context.Background(), github.BypassRateLimitCheck, true)

func status(err error) int {
	var e *github.ErrorResponse
	if errors.As(err, &e) {
		return e.Response.StatusCode
	}
	return 0
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	s.AddToken("ghp_alice", Identity{User: User("alice")})
	get := func(header string) (int, apiError) {
		req, _ := http.NewRequest(http.MethodGet, s.APIURL()+"/user", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apiError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	tests := []struct {
		header      string
		wantStatus  int
		wantMessage string
	}{
		{"", http.StatusUnauthorized, "Requires authentication"},
		{"Bearer ghs_wrong", http.StatusUnauthorized, MessageBadCredentials},
		{"Basic " + s.APIToken(), http.StatusUnauthorized, MessageBadCredentials},
		{"Bearer " + s.APIToken(), http.StatusForbidden, MessageNotAccessible}, // an installation token has no user
		{"token " + s.APIToken(), http.StatusForbidden, MessageNotAccessible},
		{"token ghp_alice", http.StatusOK, ""},
	}
	for _, tt := range tests {
		if got, e := get(tt.header); got != tt.wantStatus || e.Message != tt.wantMessage {
			t.Errorf("Authorization %q: %d %q, want %d %q", tt.header, got, e.Message, tt.wantStatus, tt.wantMessage)
		}
	}
	u, _, err := client(t, s, "ghp_alice").Users.Get(context.Background(), "")
	if err != nil || u.GetLogin() != "alice" || u.GetType() != "User" {
		t.Errorf("GET /user as alice: %v, %v", u, err)
	}
}

func TestComments(t *testing.T) {
	t.Parallel()
	const repo = "acme/shop"
	s := Start(t, Options{Repository: repo, APIPrefix: "/api/v3"})
	for i := range 250 {
		s.AddComment(repo, 7, User("alice"), strings.Repeat("x", i%5+1))
	}
	c := client(t, s, s.APIToken())
	ctx := context.Background()

	page, resp, err := c.Issues.ListComments(ctx, "acme", "shop", 7, &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100, Page: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 100 || resp.NextPage != 3 || resp.LastPage != 3 || resp.PrevPage != 1 || resp.FirstPage != 1 {
		t.Errorf("page 2: %d comments, next %d last %d prev %d first %d", len(page), resp.NextPage, resp.LastPage, resp.PrevPage, resp.FirstPage)
	}
	if !strings.Contains(resp.Header.Get("Link"), "/api/v3/repos/acme/shop/issues/7/comments?") {
		t.Errorf("Link = %s", resp.Header.Get("Link"))
	}
	page, resp, _ = c.Issues.ListComments(ctx, "acme", "shop", 7, &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100, Page: 3}})
	if len(page) != 50 || resp.NextPage != 0 {
		t.Errorf("page 3: %d comments, next %d", len(page), resp.NextPage)
	}
	page, resp, _ = c.Issues.ListComments(ctx, "acme", "shop", 7, nil)
	if len(page) != 30 || resp.LastPage != 9 {
		t.Errorf("default page: %d comments, last %d; want 30 of 9 pages", len(page), resp.LastPage)
	}
	page, _, _ = c.Issues.ListComments(ctx, "acme", "shop", 7, &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 500}})
	if len(page) != 100 {
		t.Errorf("per_page 500: %d comments, want GitHub's cap of 100", len(page))
	}

	made, resp, err := c.Issues.CreateComment(ctx, "acme", "shop", 7, &github.IssueComment{Body: github.Ptr("report")})
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %v", err)
	}
	if made.GetUser().GetLogin() != "github-actions[bot]" || !strings.HasSuffix(made.GetHTMLURL(), "/acme/shop/pull/7#issuecomment-"+itoa(made.GetID())) {
		t.Errorf("created %+v", made)
	}
	if resp.Rate.Limit != rateLimit || resp.Rate.Remaining <= 0 {
		t.Errorf("rate = %+v", resp.Rate)
	}
	edited, _, err := c.Issues.EditComment(ctx, "acme", "shop", made.GetID(), &github.IssueComment{Body: github.Ptr("report v2")})
	if err != nil || edited.GetBody() != "report v2" || edited.GetID() != made.GetID() {
		t.Errorf("edit: %v, %v", edited, err)
	}
	all := s.Comments(repo, 7)
	if len(all) != 251 || all[250].GetBody() != "report v2" {
		t.Errorf("%d comments, last %q", len(all), all[250].GetBody())
	}
	if _, err := c.Issues.DeleteComment(ctx, "acme", "shop", made.GetID()); err != nil {
		t.Errorf("delete: %v", err)
	}
	if n := len(s.Comments(repo, 7)); n != 250 {
		t.Errorf("%d comments after the delete", n)
	}

	errs := []struct {
		name string
		call func() error
		want int
	}{
		{"unknown pull request", func() error {
			_, _, err := c.Issues.ListComments(ctx, "acme", "shop", 8, nil)
			return err
		}, http.StatusNotFound},
		{"unknown repository", func() error {
			_, _, err := c.Issues.CreateComment(ctx, "acme", "nope", 7, &github.IssueComment{Body: github.Ptr("x")})
			return err
		}, http.StatusNotFound},
		{"unknown comment", func() error {
			_, _, err := c.Issues.EditComment(ctx, "acme", "shop", 1, &github.IssueComment{Body: github.Ptr("x")})
			return err
		}, http.StatusNotFound},
		{"no body", func() error {
			_, _, err := c.Issues.CreateComment(ctx, "acme", "shop", 7, &github.IssueComment{})
			return err
		}, http.StatusUnprocessableEntity},
		{"body too long", func() error {
			_, _, err := c.Issues.CreateComment(ctx, "acme", "shop", 7, &github.IssueComment{Body: github.Ptr(strings.Repeat("é", MaxCommentLength+1))})
			return err
		}, http.StatusUnprocessableEntity},
	}
	for _, e := range errs {
		if got := status(e.call()); got != e.want {
			t.Errorf("%s: status %d, want %d", e.name, got, e.want)
		}
	}
	if _, _, err := c.Issues.CreateComment(ctx, "acme", "shop", 7, &github.IssueComment{Body: github.Ptr(strings.Repeat("é", MaxCommentLength))}); err != nil {
		t.Errorf("body of exactly %d characters: %v", MaxCommentLength, err)
	}
	for _, call := range s.Calls() {
		if !strings.HasPrefix(call.Path, "/api/v3/") {
			t.Errorf("call outside the GHES prefix: %+v", call)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	const repo = "acme/shop"
	s := Start(t, Options{Repository: repo})
	s.AddPullRequest(repo, 1)
	c := client(t, s, s.APIToken())
	list := func() error {
		_, _, err := c.Issues.ListComments(bypass, "acme", "shop", 1, nil)
		return err
	}

	s.Inject(SecondaryRateLimit(OpListComments, http.StatusForbidden, 1500*time.Millisecond, 1))
	var abuse *github.AbuseRateLimitError
	if err := list(); !errors.As(err, &abuse) || abuse.GetRetryAfter() != 2*time.Second || !strings.Contains(abuse.Message, "secondary rate limit") {
		t.Errorf("secondary rate limit: %v", err)
	}
	s.Inject(SecondaryRateLimit(OpListComments, http.StatusTooManyRequests, time.Second, 1))
	if err := list(); !errors.As(err, &abuse) || abuse.Response.StatusCode != http.StatusTooManyRequests {
		t.Errorf("429: %v", err)
	}
	reset := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	s.Inject(PrimaryRateLimit("", reset, 1))
	var limited *github.RateLimitError
	if err := list(); !errors.As(err, &limited) || limited.Rate.Remaining != 0 || !limited.Rate.Reset.Time.Equal(reset) {
		t.Errorf("primary rate limit: %v", err)
	}
	s.Inject(ServerError(OpListComments, http.StatusBadGateway, 2))
	if err, err2, err3 := list(), list(), list(); status(err) != http.StatusBadGateway || status(err2) != http.StatusBadGateway || err3 != nil {
		t.Errorf("two 502s then OK: %v, %v, %v", err, err2, err3)
	}
	s.Inject(MissingPermission(OpCreateComment, 0))
	if _, _, err := c.Issues.CreateComment(bypass, "acme", "shop", 1, &github.IssueComment{Body: github.Ptr("x")}); status(err) != http.StatusForbidden {
		t.Errorf("missing permission: %v", err)
	}
	if err := list(); err != nil {
		t.Errorf("a fault of another operation applied: %v", err)
	}
	s.ClearFaults()
	applied := ServerError(OpCreateComment, http.StatusBadGateway, 1)
	applied.Applied = true
	s.Inject(applied)
	if _, _, err := c.Issues.CreateComment(bypass, "acme", "shop", 1, &github.IssueComment{Body: github.Ptr("x")}); status(err) != http.StatusBadGateway || len(s.Comments(repo, 1)) != 1 {
		t.Errorf("applied 502: %v, %d comments", err, len(s.Comments(repo, 1)))
	}
	if n := s.CallCount(OpListComments); n != 7 {
		t.Errorf("CallCount(list) = %d, want 7", n)
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	const repo = "acme/shop"
	s := Start(t, Options{Repository: repo})
	s.AddPullRequest(repo, 1)
	s.SetRef(repo, "main", strings.Repeat("b", 40))
	s.AddToken("ghs_fork", Identity{User: ActionsBot(), Permissions: map[string]string{"pull-requests": "read", "deployments": "write"}})
	c := client(t, s, "ghs_fork")
	ctx := context.Background()
	if _, _, err := c.Issues.ListComments(ctx, "acme", "shop", 1, nil); err != nil {
		t.Errorf("read with pull-requests: read: %v", err)
	}
	_, _, err := c.Issues.CreateComment(ctx, "acme", "shop", 1, &github.IssueComment{Body: github.Ptr("x")})
	var e *github.ErrorResponse
	if !errors.As(err, &e) || e.Response.StatusCode != http.StatusForbidden || e.Message != MessageNotAccessible || !strings.Contains(e.DocumentationURL, "#create-an-issue-comment") {
		t.Errorf("write with pull-requests: read: %v", err)
	}
	if _, _, err := c.Repositories.CreateDeployment(ctx, "acme", "shop", &github.DeploymentRequest{Ref: github.Ptr("main")}); err != nil {
		t.Errorf("deployment with deployments: write: %v", err)
	}
}

func TestDeployments(t *testing.T) {
	t.Parallel()
	const repo = "acme/shop"
	s := Start(t, Options{Repository: repo})
	shaMain, shaV2 := strings.Repeat("a", 40), strings.Repeat("c", 40)
	s.SetRef(repo, "main", shaMain)
	c := client(t, s, s.APIToken())
	ctx := context.Background()

	deploy := func(ref, env string, production *bool) *github.Deployment {
		t.Helper()
		d, resp, err := c.Repositories.CreateDeployment(ctx, "acme", "shop", &github.DeploymentRequest{
			Ref: github.Ptr(ref), Environment: github.Ptr(env), ProductionEnvironment: production,
			RequiredContexts: &[]string{}, Description: github.Ptr("deploy " + ref), Payload: map[string]string{"image": "app@sha256:1"},
		})
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("create deployment of %s to %s: %v", ref, env, err)
		}
		return d
	}
	setStatus := func(d *github.Deployment, state string, autoInactive *bool) *github.DeploymentStatus {
		t.Helper()
		st, _, err := c.Repositories.CreateDeploymentStatus(ctx, "acme", "shop", d.GetID(), &github.DeploymentStatusRequest{
			State: github.Ptr(state), EnvironmentURL: github.Ptr("https://" + d.GetEnvironment() + ".example.com"),
			Description: github.Ptr(state + " " + d.GetRef()), LogURL: github.Ptr("https://github.com/acme/shop/actions/runs/1"), AutoInactive: autoInactive,
		})
		if err != nil {
			t.Fatalf("status %s of deployment %d: %v", state, d.GetID(), err)
		}
		return st
	}
	states := func(d *github.Deployment) string {
		var out []string
		for _, st := range s.DeploymentStatuses(repo, d.GetID()) {
			out = append(out, st.GetState())
		}
		return strings.Join(out, ",")
	}

	s1 := deploy("main", "staging", nil)
	if s1.GetSHA() != shaMain || s1.GetTask() != "deploy" || s1.GetCreator().GetLogin() != "github-actions[bot]" || string(s1.Payload) != `{"image":"app@sha256:1"}` {
		t.Errorf("deployment = %+v", s1)
	}
	setStatus(s1, "in_progress", nil)
	setStatus(s1, "success", nil)
	p1 := deploy(shaV2, "production", nil)
	setStatus(p1, "success", nil)
	s2 := deploy(shaV2, "staging", nil)
	setStatus(s2, "in_progress", nil)
	if got := states(s1); got != "in_progress,success" {
		t.Errorf("staging 1 while staging 2 is in progress: %s", got)
	}
	st := setStatus(s2, "success", nil)
	if st.GetEnvironmentURL() != "https://staging.example.com" || st.GetTargetURL() != st.GetLogURL() || st.GetEnvironment() != "staging" {
		t.Errorf("status = %+v", st)
	}
	if got := states(s1); got != "in_progress,success,inactive" {
		t.Errorf("staging 1 after staging 2 succeeded: %s, want it made inactive", got)
	}
	if got := states(p1); got != "success" {
		t.Errorf("production after a staging success: %s", got)
	}
	s3 := deploy("main", "staging", nil)
	setStatus(s3, "failure", nil)
	s4 := deploy("main", "staging", nil)
	setStatus(s4, "success", github.Ptr(false))
	if got := states(s2); got != "in_progress,success" {
		t.Errorf("staging 2 after a failure and an auto_inactive=false success: %s", got)
	}

	// Filters, newest first.
	list := func(opts *github.DeploymentsListOptions) []int64 {
		ds, _, err := c.Repositories.ListDeployments(ctx, "acme", "shop", opts)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, d := range ds {
			ids = append(ids, d.GetID())
		}
		return ids
	}
	if got, want := list(&github.DeploymentsListOptions{Environment: "staging"}), []int64{s4.GetID(), s3.GetID(), s2.GetID(), s1.GetID()}; !slices.Equal(got, want) {
		t.Errorf("staging deployments = %v, want %v", got, want)
	}
	if got, want := list(&github.DeploymentsListOptions{SHA: shaV2}), []int64{s2.GetID(), p1.GetID()}; !slices.Equal(got, want) {
		t.Errorf("deployments of %s = %v, want %v", shaV2, got, want)
	}
	if got, want := list(&github.DeploymentsListOptions{Ref: "main", Environment: "staging", ListOptions: github.ListOptions{PerPage: 2}}), []int64{s4.GetID(), s3.GetID()}; !slices.Equal(got, want) {
		t.Errorf("first page of main on staging = %v, want %v", got, want)
	}
	statuses, _, err := c.Repositories.ListDeploymentStatuses(ctx, "acme", "shop", s1.GetID(), nil)
	if err != nil || len(statuses) != 3 || statuses[0].GetState() != "inactive" {
		t.Errorf("statuses of staging 1 = %v, %v; want 3, newest first", statuses, err)
	}
	got, _, err := c.Repositories.GetDeploymentStatus(ctx, "acme", "shop", s2.GetID(), st.GetID())
	if err != nil || got.GetID() != st.GetID() {
		t.Errorf("get status: %v, %v", got, err)
	}

	// Fields go-github's Deployment lacks, as GitHub sends them.
	resp, err := http.DefaultClient.Do(authorized(t, s, http.MethodGet, "/repos/acme/shop/deployments/"+itoa(p1.GetID())))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["production_environment"] != true || fields["transient_environment"] != false || fields["original_environment"] != "production" {
		t.Errorf("deployment JSON = %s", raw)
	}

	// A status may move a deployment to another environment.
	if _, _, err := c.Repositories.CreateDeploymentStatus(ctx, "acme", "shop", s4.GetID(), &github.DeploymentStatusRequest{State: github.Ptr("success"), Environment: github.Ptr("qa")}); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := c.Repositories.GetDeployment(ctx, "acme", "shop", s4.GetID()); d.GetEnvironment() != "qa" {
		t.Errorf("environment after the status = %s, want qa", d.GetEnvironment())
	}

	bad := []struct {
		name string
		call func() error
		want int
	}{
		{"unknown ref", func() error {
			_, _, err := c.Repositories.CreateDeployment(ctx, "acme", "shop", &github.DeploymentRequest{Ref: github.Ptr("nope")})
			return err
		}, http.StatusUnprocessableEntity},
		{"no ref", func() error {
			_, _, err := c.Repositories.CreateDeployment(ctx, "acme", "shop", &github.DeploymentRequest{})
			return err
		}, http.StatusUnprocessableEntity},
		{"bad state", func() error {
			_, _, err := c.Repositories.CreateDeploymentStatus(ctx, "acme", "shop", s1.GetID(), &github.DeploymentStatusRequest{State: github.Ptr("done")})
			return err
		}, http.StatusUnprocessableEntity},
		{"unknown deployment", func() error {
			_, _, err := c.Repositories.ListDeploymentStatuses(ctx, "acme", "shop", 42, nil)
			return err
		}, http.StatusNotFound},
		{"unknown repository", func() error {
			_, _, err := c.Repositories.ListDeployments(ctx, "acme", "nope", nil)
			return err
		}, http.StatusNotFound},
	}
	for _, b := range bad {
		if got := status(b.call()); got != b.want {
			t.Errorf("%s: status %d, want %d", b.name, got, b.want)
		}
	}
}

func authorized(t *testing.T, s *Server, method, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, s.APIURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.APIToken())
	return req
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
