package cli

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
)

const (
	runImg1 = "europe-docker.pkg.dev/my-project/images/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	runImg2 = "europe-docker.pkg.dev/my-project/images/api@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	runSA   = "deployer@my-project.iam.gserviceaccount.com"
)

// runCloud is Cloud Run, Google STS/IAM and GitHub OIDC as far as they can run here: fakes on the
// real wire protocols; Cloud Run moves in real time (revisions ready in 1 s) and its front end
// answers the service and tag URLs.
type runCloud struct {
	run    *runfake.Server
	google *googlefake.Server
	gh     *githubfake.Server
	vars   map[string]string
	tr     http.RoundTripper
}

func startRunCloud(t *testing.T) *runCloud {
	t.Helper()
	c := &runCloud{
		google: googlefake.Start(t, googlefake.Options{Provider: wifProvider, ServiceAccounts: []string{runSA}}),
		gh:     githubfake.Start(t, githubfake.Options{}),
	}
	c.run = runfake.Start(t, runfake.Options{ReadyAfter: time.Second, SettleAfter: 500 * time.Millisecond, Tick: 100 * time.Millisecond,
		Tokens: func(tok string) bool { _, ok := c.google.AccessTokens()[tok]; return ok }})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.run.RunRealtime(ctx, 50*time.Millisecond)
	c.tr = hostSplit{front: c.run.Frontend("api"), rest: http.DefaultTransport}
	c.vars = map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "GANTRY_CLOUDRUN_ENDPOINT": c.run.Addr}
	for _, m := range []map[string]string{c.gh.Env(), c.google.Env()} {
		for k, v := range m {
			c.vars[k] = v
		}
	}
	return c
}

// hostSplit sends requests for *.run.app to the Cloud Run front end and the rest to the network.
type hostSplit struct{ front, rest http.RoundTripper }

func (h hostSplit) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Hostname(), ".run.app") {
		return h.front.RoundTrip(r)
	}
	return h.rest.RoundTrip(r)
}

func (c *runCloud) deploy(t *testing.T, extra ...string) run {
	args := append([]string{"deploy-cloudrun", "--gcp-project", "my-project", "--region", "europe-west1", "--service", "api",
		"--gcp-workload-identity-provider", wifProvider, "--gcp-service-account", runSA, "--poll-interval", "200ms"}, extra...)
	return runCLI(t, c.vars, c.tr, args...)
}

func TestDeployCloudRunWithWIF(t *testing.T) {
	c := startRunCloud(t)
	workspace(t, nil)
	first := c.deploy(t, "--image", runImg1, "--sha", ecsSHA1)
	if first.code != 0 || first.outputs["revision"] != "api-sha-1111111" || first.outputs["result"] != "success" {
		t.Fatalf("create: exit %d %v\n%s\n%s", first.code, first.outputs, first.log, first.summary)
	}
	r := c.deploy(t, "--image", runImg2, "--sha", testSHA, "--strategy", "canary", "--canary-steps", "25,100", "--canary-interval", "1s",
		"--memory", "1Gi", "--env", "LOG_LEVEL=debug\nDSN=host=db,port=5432\nAPI_TOKEN=tok-0123456789", "--secrets", "DB_PASSWORD=db-password:3", "--reason", "ship it")
	if r.code != 0 {
		t.Fatalf("canary: exit %d\n%s\n%s", r.code, r.log, r.summary)
	}
	if r.outputs["revision"] != "api-sha-abcdef0" || r.outputs["previous-revision"] != "api-sha-1111111" || !strings.HasPrefix(r.outputs["tag-url"], "https://sha-abcdef0---api-") ||
		!strings.HasSuffix(r.outputs["url"], ".run.app") || r.outputs["traffic"] != `[{"revision":"api-sha-abcdef0","percent":100,"tag":"sha-abcdef0","url":"`+r.outputs["tag-url"]+`"}]` {
		t.Errorf("outputs = %v", r.outputs)
	}
	for _, want := range []string{"### ✅ deploy-cloudrun: success", "`api-sha-abcdef0` (previous `api-sha-1111111`)", "| Traffic before | api-sha-1111111 100% (tag sha-1111111) |",
		"| Traffic after | api-sha-abcdef0 100% (tag sha-abcdef0) |", "25% to api-sha-abcdef0", "100% to api-sha-abcdef0", "verified https://sha-abcdef0---", "ship it"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.summary)
		}
	}
	if len(c.gh.Issued()) == 0 || len(c.google.AccessTokens()) == 0 {
		t.Errorf("no WIF exchange")
	}
	for tok := range c.google.AccessTokens() {
		if n := strings.Count(r.log, tok); n > 1 || n != strings.Count(r.log, "::add-mask::"+tok) || strings.Contains(r.summary, tok) {
			t.Errorf("access token %.8s… appears outside its ::add-mask::", tok)
		}
	}
	rev := c.run.Revision("api-sha-abcdef0")
	if rev.GetContainers()[0].GetResources().GetLimits()["memory"] != "1Gi" || len(rev.GetContainers()[0].GetEnv()) != 4 {
		t.Errorf("revision settings: %v", rev.GetContainers()[0])
	}
	for _, e := range rev.GetContainers()[0].GetEnv() {
		if e.GetName() == "DSN" && e.GetValue() != "host=db,port=5432" {
			t.Errorf("DSN = %q: a value with commas was split", e.GetValue())
		}
	}
	// Only secret-named values (API_TOKEN, DSN) are masked: "debug" stays readable.
	if !strings.Contains(r.log, "::add-mask::tok-0123456789\n") || strings.Contains(r.log, "::add-mask::debug") {
		t.Errorf("masks: want API_TOKEN's value only\n%s", r.log)
	}

	// rollback --to previous sends all traffic back, creating no revision.
	rb := runCLI(t, c.vars, c.tr, "rollback", "--gcp-project", "my-project", "--region", "europe-west1", "--service", "api", "--to", "previous",
		"--gcp-workload-identity-provider", wifProvider, "--gcp-service-account", runSA, "--poll-interval", "200ms")
	if rb.code != 0 || rb.outputs["revision"] != "api-sha-1111111" || rb.outputs["deployed-sha"] != ecsSHA1 {
		t.Fatalf("rollback: exit %d %v\n%s\n%s", rb.code, rb.outputs, rb.log, rb.summary)
	}
	if p, _ := c.run.Traffic("api"); p["api-sha-1111111"] != 100 {
		t.Errorf("traffic after rollback: %v", p)
	}
}

func TestDeployCloudRunFailedRevision(t *testing.T) {
	c := startRunCloud(t)
	workspace(t, nil)
	if r := c.deploy(t, "--image", runImg1, "--sha", ecsSHA1); r.code != 0 {
		t.Fatalf("create: %s", r.log)
	}
	c.run.SetBehavior(runImg2, runfake.ImageNotFound(runImg2))
	r := c.deploy(t, "--image", runImg2, "--sha", testSHA)
	if r.code != 1 || r.outputs["result"] != "failed" {
		t.Fatalf("exit %d, result %q\n%s", r.code, r.outputs["result"], r.log)
	}
	for _, want := range []string{"### ❌ deploy-cloudrun: failed", "revision api-sha-abcdef0 failed: CONTAINER\\_MISSING", "not found", "api-sha-1111111 kept serving all traffic"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.summary)
		}
	}
	c.run.Inject(runfake.Fault{Method: "UpdateService", Code: codes.PermissionDenied, Message: "Permission 'run.services.update' denied on resource", Times: 1})
	r = c.deploy(t, "--image", runImg2, "--sha", testSHA)
	if r.code != 1 || !strings.Contains(r.log, "roles/run.developer") {
		t.Errorf("permission denied: exit %d\n%s", r.code, r.log)
	}
}

func TestDeployCloudRunBadInputsTouchNothing(t *testing.T) {
	c := startRunCloud(t)
	workspace(t, nil)
	for _, tc := range []struct {
		input string
		args  []string
	}{
		{"memory", []string{"--memory", "512X"}},
		{"min-instances", []string{"--min-instances", "-1"}},
		{"max-instances", []string{"--max-instances", "0"}},
		{"region", []string{"--region", "europe"}},
		{"image", []string{"--image", "europe-docker.pkg.dev/p/r/api:latest"}},
		{"cpu", []string{"--cpu", "lots"}},
		{"concurrency", []string{"--concurrency", "5000"}},
		{"strategy", []string{"--strategy", "blue-green"}},
		{"canary-steps", []string{"--strategy", "canary", "--canary-steps", "50,10"}},
		{"ingress", []string{"--ingress", "public"}},
		{"secrets", []string{"--secrets", "DB=:"}},
		{"env", []string{"--env", "NO VALUE"}},
		{"env", []string{"--env", "MY KEY=v"}},
		{"env", []string{"--env", "DSN=host=db,port=5432\n9LIVES=x"}},
		{"timeout", []string{"--timeout", "-5"}},
		{"verify-timeout", []string{"--verify-timeout", "-1s"}},
		{"labels", []string{"--labels", "Team=Pay"}},
		{"service", []string{"--service", "Api_Service"}},
		{"gcp-project", []string{"--gcp-project", "P"}},
		{"tag", []string{"--tag", "Sha_1"}},
		{"canary-max-error-rate", []string{"--canary-max-error-rate", "150%"}},
		{"sha", []string{"--sha", "HEAD"}},
	} {
		args := append([]string{"--image", runImg1, "--sha", testSHA}, tc.args...)
		r := c.deploy(t, args...)
		if r.code != 1 || !strings.Contains(r.log, "::error title="+tc.input+"::") {
			t.Errorf("%v: exit %d, want an error titled %s\n%s", tc.args, r.code, tc.input, r.log)
		}
	}
	if n := len(c.run.Calls()); n != 0 {
		t.Errorf("%d Cloud Run calls for bad inputs", n)
	}
}
