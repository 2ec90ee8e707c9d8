package acceptance

import (
	"context"
	"fmt"
	"net/http/httptest"
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
)

const ecsWorkflow = `name: consumer
on: push
permissions:
  id-token: write
env:
ENV
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: |
          mkdir -p deploy
          echo '{"family":"api","networkMode":"awsvpc","cpu":"256","memory":"512","containerDefinitions":[{"name":"api","image":"placeholder","essential":true}]}' > deploy/api.json
      - id: deploy
        uses: ./actions/deploy-ecs
        with:
          region: us-east-1
          aws-role-arn: arn:aws:iam::123456789012:role/gantry-deploy
          service: api
          task-definition: deploy/api.json
          images: api=IMAGE
          sha: abcdef0123456789abcdef0123456789abcdef01
          poll-interval: 500ms
      - run: echo "got result=${{ steps.deploy.outputs.result }} td=${{ steps.deploy.outputs.task-definition }} dep=${{ steps.deploy.outputs.deployment-id }}"
      - id: canary
        uses: ./actions/deploy-ecs
        with:
          region: us-east-1
          aws-role-arn: arn:aws:iam::123456789012:role/gantry-deploy
          service: web
          images: api=IMAGE
          sha: abcdef0123456789abcdef0123456789abcdef01
          strategy: canary
          canary-percent: 20
          step-bake-time: 1m
          bake-time: 0m
          test-url: TESTURL
          url: PRODURL
          poll-interval: 500ms
      - run: echo "canary result=${{ steps.canary.outputs.result }} url=${{ steps.canary.outputs.url }}"
`

// TestDeployECSActionUnderAct runs actions/deploy-ecs from a workflow: GitHub
// OIDC to STS for the role, then the deploy against the ECS fake (moving in
// real time), outputs to the next step and the job summary.
func TestDeployECSActionUnderAct(t *testing.T) {
	gh := githubfake.Start(t, githubfake.Options{})
	sts := awsfake.Start(t, awsfake.Options{})
	fake := ecsfake.Start(t, ecsfake.Options{Default: ecsfake.Behavior{StartAfter: 2 * time.Second}, SteadyAfter: time.Second, StopAfter: time.Second, Tick: 100 * time.Millisecond,
		AccessKeys: sts.IssuedOr("AKIDSETUP")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fake.RunRealtime(ctx, 50*time.Millisecond)
	api := ecs.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDSETUP", "setup", "")},
		func(o *ecs.Options) { o.BaseEndpoint = aws.String(fake.URL) })
	reg, err := api.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("api"),
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("api"), Image: aws.String("registry.example/api:old"), Essential: aws.Bool(true)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("api"), TaskDefinition: reg.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	// "web" sits behind a load balancer with a test listener, for ECS's native canary.
	if _, err := api.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: reg.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(2),
		LoadBalancers: []types.LoadBalancer{{TargetGroupArn: aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1"),
			ContainerName: aws.String("api"), ContainerPort: aws.Int32(8080), AdvancedConfiguration: &types.AdvancedConfiguration{
				AlternateTargetGroupArn: aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/2"),
				ProductionListenerRule:  aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3"),
				TestListenerRule:        aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/4/5"),
				RoleArn:                 aws.String("arn:aws:iam::123456789012:role/ecs-lb")}}}}); err != nil {
		t.Fatal(err)
	}
	// The load balancer's production and test listeners.
	prod := httptest.NewServer(fake.Health("default", "web", false))
	defer prod.Close()
	test := httptest.NewServer(fake.Health("default", "web", true))
	defer test.Close()
	prodURL, testURL := prod.URL+"/health", test.URL+"/health"
	vars := map[string]string{"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
	for _, m := range []map[string]string{gh.Env(), sts.Env(), fake.Env()} {
		for k, v := range m {
			vars[k] = v
		}
	}
	var env []string
	for k, v := range vars {
		if k == "GITHUB_REPOSITORY" || k == "GITHUB_REF" || k == "GITHUB_RUN_ID" {
			continue // act sets its own
		}
		env = append(env, fmt.Sprintf("  %s: %q", k, v))
	}
	image := "123456789012.dkr.ecr.us-east-1.amazonaws.com/api@sha256:" + strings.Repeat("2", 64)
	wf := strings.NewReplacer("ENV", strings.Join(env, "\n"), "IMAGE", image, "TESTURL", testURL, "PRODURL", prodURL).Replace(ecsWorkflow)
	r := runAct(t, repoCopy(t, wf))
	if !r.OK() {
		t.Fatalf("workflow failed:\n%s", r)
	}
	out := r.Log
	if !strings.Contains(out, "got result=success td=arn:aws:ecs:us-east-1:123456789012:task-definition/api:2 dep=ecs-svc/") {
		t.Errorf("the next step did not see the outputs:\n%s", out)
	}
	if !strings.Contains(r.Summary(), "### ✅ deploy-ecs: success") {
		t.Errorf("no job summary:\n%s", r)
	}
	if !strings.Contains(out, "canary result=success url="+prodURL) || !strings.Contains(out, "verified test listener") || !strings.Contains(out, "production traffic shifted: 20%") {
		t.Errorf("the canary deploy did not shift traffic in steps behind verify:\n%s", out)
	}
	if sts.CallCount("AssumeRoleWithWebIdentity") == 0 || len(gh.Issued()) == 0 {
		t.Errorf("no OIDC exchange: %d AssumeRoleWithWebIdentity, %d tokens", sts.CallCount("AssumeRoleWithWebIdentity"), len(gh.Issued()))
	}
	svc, err := api.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{"api"}})
	if err != nil || aws.ToString(svc.Services[0].TaskDefinition) != "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2" {
		t.Errorf("service runs %v (%v)", aws.ToString(svc.Services[0].TaskDefinition), err)
	}
}
