package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/fakes/awsfake"
	"github.com/gantry-dev/gantry/internal/fakes/ecsfake"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/testenv"
)

const (
	ecsRole = "arn:aws:iam::123456789012:role/gantry-deploy"
	ecsImg1 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	ecsImg2 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	ecsSHA1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

// ecsTaskDef is `aws ecs describe-task-definition --include TAGS` output, read-only members and all.
const ecsTaskDef = `{"taskDefinition": {
  "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1", "revision": 1, "status": "ACTIVE",
  "family": "api", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
  "compatibilities": ["EC2", "FARGATE"], "requiresCompatibilities": ["FARGATE"],
  "registeredAt": "2026-11-02T10:11:12.345000+00:00", "registeredBy": "arn:aws:sts::123456789012:assumed-role/deploy/x",
  "requiresAttributes": [{"name": "ecs.capability.execution-role-awslogs"}],
  "containerDefinitions": [{"name": "api", "image": "IMAGE", "essential": true, "portMappings": [{"containerPort": 8080}]}]},
  "tags": [{"key": "team", "value": "payments"}]}`

// ecsCloud is ECS, STS and GitHub OIDC as far as they can run here: fakes on the real wire
// protocols, the ECS one moving in real time (tasks start in 2 s) for in-process CLI runs.
type ecsCloud struct {
	ecs  *ecsfake.Server
	aws  *awsfake.Server
	gh   *githubfake.Server
	api  *ecs.Client
	vars map[string]string
	v1   string
	// health answers with the commit of the revision serving production traffic.
	health string
}

func startECSCloud(t *testing.T) *ecsCloud {
	t.Helper()
	c := &ecsCloud{aws: awsfake.Start(t, awsfake.Options{}), gh: githubfake.Start(t, githubfake.Options{})}
	// ECS accepts the setup's and the environment's keys, and those STS issued for the role.
	c.ecs = ecsfake.Start(t, ecsfake.Options{Default: ecsfake.Behavior{StartAfter: 2 * time.Second}, SteadyAfter: time.Second, StopAfter: time.Second, Tick: 100 * time.Millisecond,
		AccessKeys: c.aws.IssuedOr("AKIDSETUP", "AKIDSTATIC")})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.ecs.RunRealtime(ctx, 50*time.Millisecond)
	c.api = ecs.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDSETUP", "setup", "")},
		func(o *ecs.Options) { o.BaseEndpoint = aws.String(c.ecs.URL) })
	td := strings.Replace(strings.Replace(ecsTaskDef, "IMAGE", ecsImg1, 1), `{"key": "team", "value": "payments"}`, `{"key": "team", "value": "payments"}, {"key": "gantry.sha", "value": "`+ecsSHA1+`"}`, 1)
	var wrapped struct {
		TaskDefinition *ecs.RegisterTaskDefinitionInput `json:"taskDefinition"`
	}
	if err := json.Unmarshal([]byte(td), &wrapped); err != nil {
		t.Fatal(err)
	}
	in := wrapped.TaskDefinition
	in.Tags = []types.Tag{{Key: aws.String("gantry.sha"), Value: aws.String(ecsSHA1)}}
	reg, err := c.api.RegisterTaskDefinition(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	c.v1 = aws.ToString(reg.TaskDefinition.TaskDefinitionArn)
	if _, err := c.api.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("api"), TaskDefinition: aws.String(c.v1), DesiredCount: aws.Int32(2),
		DeploymentConfiguration: &types.DeploymentConfiguration{DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}}}); err != nil {
		t.Fatal(err)
	}
	if !testenv.Eventually(30*time.Second, 50*time.Millisecond, func() bool {
		out, err := c.api.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{"api"}})
		return err == nil && out.Services[0].Deployments[0].RolloutState == types.DeploymentRolloutStateCompleted
	}) {
		t.Fatal("the fake service did not become steady")
	}
	srv := httptest.NewServer(c.ecs.Health("default", "api", false))
	t.Cleanup(srv.Close)
	c.health = srv.URL + "/health"
	c.vars = map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "AWS_REGION": "us-east-1", "RUNNER_TEMP": t.TempDir(),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "AKIDSTATIC", "AWS_SECRET_ACCESS_KEY": "static-secret-key-0123456789"}
	for _, m := range []map[string]string{c.gh.Env(), c.aws.Env(), c.ecs.Env()} {
		for k, v := range m {
			c.vars[k] = v
		}
	}
	return c
}

func TestDeployECSWithOIDC(t *testing.T) {
	c := startECSCloud(t)
	workspace(t, map[string]string{"deploy/api.json": strings.Replace(ecsTaskDef, "IMAGE", "placeholder", 1)})
	r := runCLI(t, c.vars, nil, "deploy-ecs", "--service", "api", "--task-definition", "deploy/api.json",
		"--images", "api="+ecsImg2, "--sha", testSHA, "--aws-role-arn", ecsRole, "--poll-interval", "200ms",
		"--url", c.health, "--reason", "ship it")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.log, r.summary)
	}
	if r.outputs["result"] != "success" || !strings.HasSuffix(r.outputs["task-definition"], ":task-definition/api:2") ||
		r.outputs["previous-task-definition"] != c.v1 || !strings.HasPrefix(r.outputs["deployment-id"], "ecs-svc/") || r.outputs["url"] != c.health {
		t.Errorf("outputs = %v", r.outputs)
	}
	rendered, err := os.ReadFile(r.outputs["rendered-task-definition"])
	if err != nil || !strings.Contains(string(rendered), ecsImg2) || strings.Contains(string(rendered), "registeredAt") || !strings.Contains(string(rendered), `"team"`) {
		t.Errorf("rendered task definition (%v):\n%s", err, rendered)
	}
	for _, want := range []string{"### ✅ deploy-ecs: success", "`api:2` (previous `api:1`)", "**Timeline**", "registered api:2", "steady state", "verified " + c.health, "ship it", "2/2 running"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.summary)
		}
	}
	// The job's OIDC token went to STS for the role; ECS saw the role's credentials, masked.
	if is := c.gh.Issued(); len(is) == 0 || is[0].Audience != "sts.amazonaws.com" {
		t.Errorf("OIDC tokens issued: %+v", is)
	}
	if c.aws.CallCount("AssumeRoleWithWebIdentity") != 1 {
		t.Errorf("AssumeRoleWithWebIdentity called %d times", c.aws.CallCount("AssumeRoleWithWebIdentity"))
	}
	for _, cred := range c.aws.IssuedCredentials() {
		for _, s := range []string{cred.SecretAccessKey, cred.SessionToken} {
			if n := strings.Count(r.log, s); n != 1 || !strings.Contains(r.log, "::add-mask::"+s) {
				t.Errorf("secret %.8s… appears %d times in the log (want only its ::add-mask::)", s, n)
			}
			if strings.Contains(r.summary, s) {
				t.Errorf("secret %.8s… in the summary", s)
			}
		}
	}
}

func TestDeployECSCrashIsReportedAndRolledBack(t *testing.T) {
	c := startECSCloud(t)
	c.ecs.SetBehavior(ecsImg2, ecsfake.Behavior{StartAfter: 2 * time.Second, CrashAfter: 500 * time.Millisecond, ExitCode: 137, Reason: "OutOfMemoryError: Container killed due to memory usage"})
	workspace(t, nil)
	r := runCLI(t, c.vars, nil, "deploy-ecs", "--service", "api", "--image", ecsImg2, "--container", "api", "--sha", testSHA,
		"--poll-interval", "200ms", "--url", c.health)
	if r.code != 1 || r.outputs["result"] != "rolled-back" {
		t.Fatalf("exit %d, result %q\n%s\n%s", r.code, r.outputs["result"], r.log, r.summary)
	}
	for _, want := range []string{"### ↩️ deploy-ecs: rolled-back", "**Why:** a task of the new revision api:2 failed", "OutOfMemoryError", "exited 137",
		"rolled back to api:1", "**Stopped tasks of the new revision**", "| Rolled back to | `api:1` |", "ECS service events", "| Strategy | rolling (the service's own) |", "| api exit 137 |"} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.summary)
		}
	}
	var errLine string
	for _, l := range strings.Split(r.log, "\n") {
		if strings.HasPrefix(l, "::error") {
			errLine = l
		}
	}
	if !strings.Contains(errLine, "OutOfMemoryError") {
		t.Errorf("error annotation %q lacks the task's reason", errLine)
	}
}

func TestDeployECSBadInputsTouchNothing(t *testing.T) {
	c := startECSCloud(t)
	workspace(t, map[string]string{
		"td.json":      strings.Replace(ecsTaskDef, "IMAGE", "x", 1),
		"unknown.json": `{"family":"api","containerDefinitions":[{"name":"api","image":"x"}],"cpus":"1"}`,
		"broken.json":  `{"family":"api","containerDefinitions":[{"name":"api"`,
	})
	before, stsBefore := len(c.ecs.Calls()), len(c.aws.Calls())
	for _, tc := range []struct {
		input string
		args  []string
	}{
		{"images", []string{"--images", "api=registry.example/api:latest"}},
		{"images", []string{"--images", "not a pair"}},
		{"container", []string{"--container", "api"}},
		{"region", []string{"--region", "mars-1"}},
		{"strategy", []string{"--strategy", "big-bang"}},
		{"canary-percent", []string{"--strategy", "canary", "--canary-percent", "0"}},
		{"bake-time", []string{"--strategy", "blue-green", "--bake-time", "90s"}},
		{"poll-interval", []string{"--poll-interval", "0s"}},
		{"fail-fast", []string{"--fail-fast", "sometimes"}},
		{"task-definition", []string{"--task-definition", "missing.json"}},
		{"task-definition-family", []string{"--task-definition", "td.json", "--task-definition-family", "api"}},
		{"sha", []string{"--sha", "main"}},
		{"url", []string{"--url", "ftp://x"}},
		{"environment", []string{"--environment", "NOPE"}},
		{"maximum-percent", []string{"--maximum-percent", "500"}},
		{"aws-role-arn", []string{"--aws-role-arn", "deploy"}},
		{"task-definition", []string{"--task-definition", "unknown.json", "--image", ecsImg2, "--container", "api"}},
		{"images", []string{"--task-definition", "td.json", "--images", "web=" + ecsImg2}},
		{"container", []string{"--task-definition", "td.json", "--container", "web", "--image", ecsImg2}},
		{"environment", []string{"--task-definition", "td.json", "--images", "api=" + ecsImg2, "--environment", "web:LOG=info"}},
		{"task-definition", []string{"--task-definition", "broken.json", "--images", "api=" + ecsImg2}},
		{"environment", []string{"--images", "api=" + ecsImg2, "--environment", "MY KEY=v"}},
		{"timeout", []string{"--timeout", "-5"}},
		{"verify-timeout", []string{"--verify-timeout", "99999999999999999999"}},
		{"lock-wait", []string{"--lock-wait", "soon"}},
	} {
		args := append([]string{"deploy-ecs", "--service", "api", "--sha", testSHA}, tc.args...)
		r := runCLI(t, c.vars, nil, args...)
		if r.code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s", tc.args, r.code, r.log)
			continue
		}
		if !strings.Contains(r.log, "::error title="+tc.input+"::") || strings.Count(r.log, "::error") != 1 {
			t.Errorf("%v: no error titled %s:\n%s", tc.args, tc.input, r.log)
		}
	}
	for _, call := range c.ecs.Calls()[before:] {
		t.Errorf("bad input reached ECS: %s", call.Operation)
	}
	if n := len(c.aws.Calls()) - stsBefore; n != 0 {
		t.Errorf("bad input reached AWS STS/ECR: %d calls", n)
	}
}

func TestDeployECSCredentialErrors(t *testing.T) {
	c := startECSCloud(t)
	workspace(t, nil)
	before := len(c.ecs.Calls())
	c.aws.Inject(awsfake.AccessDenied("AssumeRoleWithWebIdentity", 5))
	r := runCLI(t, c.vars, nil, "deploy-ecs", "--service", "api", "--image", ecsImg2, "--container", "api", "--sha", testSHA, "--aws-role-arn", "arn:aws:iam::123456789012:role/nope")
	if r.code != 1 || !strings.Contains(r.log, "this workflow may not assume role arn:aws:iam::123456789012:role/nope") {
		t.Errorf("denied role: exit %d\n%s", r.code, r.log)
	}
	vars := map[string]string{}
	for k, v := range c.vars {
		if !strings.HasPrefix(k, "ACTIONS_ID_TOKEN") {
			vars[k] = v
		}
	}
	r = runCLI(t, vars, nil, "deploy-ecs", "--service", "api", "--image", ecsImg2, "--container", "api", "--sha", testSHA, "--aws-role-arn", ecsRole)
	if r.code != 1 || !strings.Contains(r.log, "id-token: write") {
		t.Errorf("no OIDC: exit %d\n%s", r.code, r.log)
	}
	if n := len(c.ecs.Calls()) - before; n != 0 {
		t.Errorf("%d ECS calls without credentials", n)
	}
	for _, tc := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"AWS_ACCESS_KEY_ID": "AKIDREVOKED"}, "AWS does not recognise the credentials"},
		{map[string]string{"AWS_REGION": "eu-west-3"}, "check the region input"},
		{map[string]string{"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY is empty"},
	} {
		v := map[string]string{}
		for k, x := range c.vars {
			v[k] = x
		}
		for k, x := range tc.vars {
			v[k] = x
		}
		r := runCLI(t, v, nil, "deploy-ecs", "--service", "api", "--image", ecsImg2, "--container", "api", "--sha", testSHA)
		if r.code != 1 || !strings.Contains(r.log, tc.want) || strings.Count(r.log, "::error") != 1 {
			t.Errorf("%v: exit %d, want one error saying %q\n%s", tc.vars, r.code, tc.want, r.log)
		}
	}
}

func TestRollbackECS(t *testing.T) {
	c := startECSCloud(t)
	workspace(t, nil)
	deploy := func(img, sha string) run {
		return runCLI(t, c.vars, nil, "deploy-ecs", "--service", "api", "--image", img, "--container", "api", "--sha", sha, "--poll-interval", "200ms", "--url", c.health)
	}
	if r := deploy(ecsImg2, testSHA); r.code != 0 {
		t.Fatalf("deploy: %s", r.log)
	}
	img3 := strings.Replace(ecsImg2, "2222", "3333", 1)
	sha3 := "3333333ccccccccccccccccccccccccccccccccc"
	if r := deploy(img3, sha3); r.code != 0 {
		t.Fatalf("deploy: %s", r.log)
	}
	r := runCLI(t, c.vars, nil, "rollback", "--service", "api", "--to", "previous", "--poll-interval", "200ms", "--url", c.health)
	if r.code != 0 || r.outputs["deployed-sha"] != testSHA || !strings.HasSuffix(r.outputs["task-definition"], "api:2") {
		t.Fatalf("rollback: exit %d outputs %v\n%s\n%s", r.code, r.outputs, r.log, r.summary)
	}
	if !strings.Contains(r.summary, "### ✅ rollback: success") || !strings.Contains(r.summary, fmt.Sprintf("`%s`", testSHA[:7])) {
		t.Errorf("summary:\n%s", r.summary)
	}
	if n := c.ecs.CallCount("RegisterTaskDefinition"); n != 3 {
		t.Errorf("%d registrations, want 3 (v1, two deploys; none for the rollback)", n)
	}
	r = runCLI(t, c.vars, nil, "rollback", "--service", "api", "--to", "abcdef0")
	if r.code != 1 || !strings.Contains(r.log, "no revision of family api") {
		t.Errorf("rollback to an unknown commit: exit %d\n%s", r.code, r.log)
	}
}
