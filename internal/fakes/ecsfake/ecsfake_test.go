package ecsfake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// client is the real SDK client pointed at s, retrying without back-off so tests stay fast.
func client(s *Server, attempts int) *ecs.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	}
	return ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(s.URL) })
}

func register(t *testing.T, c *ecs.Client, family, image string, health bool) *types.TaskDefinition {
	t.Helper()
	cd := types.ContainerDefinition{Name: aws.String("app"), Image: aws.String(image), Essential: aws.Bool(true)}
	if health {
		cd.HealthCheck = &types.HealthCheck{Command: []string{"CMD", "/app", "-health"}, Interval: aws.Int32(10), Retries: aws.Int32(2)}
	}
	out, err := c.RegisterTaskDefinition(context.Background(), &ecs.RegisterTaskDefinitionInput{
		Family: aws.String(family), ContainerDefinitions: []types.ContainerDefinition{cd},
		Cpu: aws.String("256"), Memory: aws.String("512"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.TaskDefinition
}

func describe(t *testing.T, c *ecs.Client, name string) types.Service {
	t.Helper()
	out, err := c.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Services: []string{name}})
	if err != nil || len(out.Services) != 1 {
		t.Fatalf("DescribeServices(%s) = %+v, %v", name, out, err)
	}
	return out.Services[0]
}

func tasks(t *testing.T, c *ecs.Client, service string, status types.DesiredStatus) []types.Task {
	t.Helper()
	ctx := context.Background()
	l, err := c.ListTasks(ctx, &ecs.ListTasksInput{ServiceName: aws.String(service), DesiredStatus: status})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.TaskArns) == 0 {
		return nil
	}
	d, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: l.TaskArns})
	if err != nil || len(d.Failures) > 0 {
		t.Fatalf("DescribeTasks = %+v, %v", d, err)
	}
	return d.Tasks
}

// setup creates service "web" with desired tasks of app:1, rolled out and steady.
func setup(t *testing.T, desired int32, rollback bool) (*Server, *ecs.Client, *types.TaskDefinition) {
	t.Helper()
	s := Start(t, Options{})
	c := client(s, 3)
	td := register(t, c, "web", "registry.example/app:1", true)
	_, err := c.CreateService(context.Background(), &ecs.CreateServiceInput{
		ServiceName: aws.String("web"), TaskDefinition: td.TaskDefinitionArn, DesiredCount: aws.Int32(desired),
		DeploymentConfiguration: &types.DeploymentConfiguration{
			DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: true, Rollback: rollback},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(2 * time.Minute)
	svc := describe(t, c, "web")
	if len(svc.Deployments) != 1 || svc.Deployments[0].RolloutState != types.DeploymentRolloutStateCompleted || svc.RunningCount != desired {
		t.Fatalf("after create: %+v", svc.Deployments)
	}
	return s, c, td
}

func TestRolloutCompletes(t *testing.T) {
	t.Parallel()
	for _, desired := range []int32{0, 1, 3} {
		s, c, v1 := setup(t, desired, true)
		ctx := context.Background()
		v2 := register(t, c, "web", "registry.example/app:2", true)
		if v2.Revision != 2 || aws.ToString(v2.TaskDefinitionArn) != "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2" {
			t.Fatalf("second revision: %d %s", v2.Revision, aws.ToString(v2.TaskDefinitionArn))
		}
		up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String("web")})
		if err != nil {
			t.Fatal(err)
		}
		ours := aws.ToString(up.Service.Deployments[0].Id)
		// with no task to drain, the old deployment leaves at once
		if wantDeps := min(2, int(desired)+1); len(up.Service.Deployments) != wantDeps || aws.ToString(up.Service.Deployments[wantDeps-1].Status) != []string{"PRIMARY", "ACTIVE"}[wantDeps-1] ||
			!strings.HasPrefix(ours, "ecs-svc/") || up.Service.Deployments[0].RolloutState != types.DeploymentRolloutStateInProgress {
			t.Fatalf("desired %d: deployments after update: %+v", desired, up.Service.Deployments)
		}
		s.Advance(5 * time.Second)
		if svc := describe(t, c, "web"); desired > 0 && svc.Deployments[0].PendingCount != desired {
			t.Errorf("desired %d: 5 s in, pending = %d", desired, svc.Deployments[0].PendingCount)
		}
		s.Advance(2 * time.Minute)
		svc := describe(t, c, "web")
		d := svc.Deployments
		if len(d) != 1 || aws.ToString(d[0].Id) != ours || d[0].RolloutState != types.DeploymentRolloutStateCompleted ||
			d[0].RunningCount != desired || svc.RunningCount != desired || aws.ToString(svc.TaskDefinition) != aws.ToString(v2.TaskDefinitionArn) {
			t.Fatalf("desired %d: after rollout: %+v", desired, d)
		}
		if got := aws.ToString(svc.Events[0].Message); got != "(service web) has reached a steady state." {
			t.Errorf("desired %d: newest event %q", desired, got)
		}
		if !svc.Events[0].CreatedAt.After(*svc.Events[len(svc.Events)-1].CreatedAt) {
			t.Errorf("desired %d: events not newest first", desired)
		}
		for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
			if aws.ToString(tk.TaskDefinitionArn) != aws.ToString(v2.TaskDefinitionArn) || aws.ToString(tk.LastStatus) != "RUNNING" ||
				tk.HealthStatus != types.HealthStatusHealthy || aws.ToString(tk.StartedBy) != ours {
				t.Errorf("desired %d: running task %+v", desired, tk)
			}
		}
		stopped := tasks(t, c, "web", types.DesiredStatusStopped)
		if len(stopped) != int(desired) {
			t.Errorf("desired %d: %d stopped tasks", desired, len(stopped))
		}
		for _, tk := range stopped {
			if aws.ToString(tk.TaskDefinitionArn) != aws.ToString(v1.TaskDefinitionArn) || tk.StopCode != types.TaskStopCodeServiceSchedulerInitiated {
				t.Errorf("desired %d: stopped old task %+v", desired, tk)
			}
		}
		sd, err := c.DescribeServiceDeployments(ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{aws.ToString(svc.CurrentServiceDeployment)}})
		if err != nil || len(sd.ServiceDeployments) != 1 || sd.ServiceDeployments[0].Status != types.ServiceDeploymentStatusSuccessful {
			t.Errorf("desired %d: DescribeServiceDeployments = %+v, %v", desired, sd, err)
		}
	}
}

func TestCircuitBreaker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		b          Behavior
		rollback   bool
		wantReason string
		wantExit   int32
		wantSD     types.ServiceDeploymentStatus
	}{
		{"crash, rollback", Behavior{ExitCode: 3}, true, "Essential container in task exited", 3, types.ServiceDeploymentStatusRollbackSuccessful},
		{"late crash, rollback", Behavior{CrashAfter: 5 * time.Second, ExitCode: 139}, true, "Essential container in task exited", 139, types.ServiceDeploymentStatusRollbackSuccessful},
		{"unhealthy, rollback", Behavior{HealthCheckFails: true}, true, "Task failed container health checks", 137, types.ServiceDeploymentStatusRollbackSuccessful},
		{"pull error, rollback", Behavior{Reason: "CannotPullContainerError: pull image manifest has been retried 5 time(s)"}, true, "CannotPullContainerError: pull image manifest has been retried 5 time(s)", 0, types.ServiceDeploymentStatusRollbackSuccessful},
		{"crash, no rollback", Behavior{ExitCode: 1}, false, "Essential container in task exited", 1, types.ServiceDeploymentStatusStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, c, v1 := setup(t, 2, tt.rollback)
			ctx := context.Background()
			before := aws.ToString(describe(t, c, "web").Deployments[0].Id)
			s.SetBehavior("registry.example/app:bad", tt.b)
			v2 := register(t, c, "web", "registry.example/app:bad", true)
			up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: v2.TaskDefinitionArn})
			if err != nil {
				t.Fatal(err)
			}
			ours := aws.ToString(up.Service.Deployments[0].Id)
			// Step until our deployment fails; it is then listed FAILED next to the PRIMARY.
			var svc types.Service
			for i := 0; ; i++ {
				if i > 600 {
					t.Fatalf("no FAILED rollout after 10 min: %+v", svc.Deployments)
				}
				s.Advance(time.Second)
				svc = describe(t, c, "web")
				if d := find(svc.Deployments, ours); d != nil && d.RolloutState == types.DeploymentRolloutStateFailed {
					break
				}
			}
			d := find(svc.Deployments, ours)
			if d.FailedTasks != 3 {
				t.Errorf("failedTasks = %d, want threshold 3", d.FailedTasks)
			}
			if tt.rollback {
				if aws.ToString(svc.Deployments[0].Id) != before || aws.ToString(d.Status) != "ACTIVE" ||
					aws.ToString(d.RolloutStateReason) != "ECS deployment circuit breaker: rolling back to deploymentId "+before+"." {
					t.Errorf("after the breaker: %+v", svc.Deployments)
				}
			} else if aws.ToString(svc.Deployments[0].Id) != ours {
				t.Errorf("without rollback ours must stay PRIMARY: %+v", svc.Deployments)
			}
			s.Advance(5 * time.Minute)
			svc = describe(t, c, "web")
			if tt.rollback {
				p := svc.Deployments[0]
				if len(svc.Deployments) != 1 || aws.ToString(p.Id) != before || p.RolloutState != types.DeploymentRolloutStateCompleted ||
					aws.ToString(svc.TaskDefinition) != aws.ToString(v1.TaskDefinitionArn) || svc.RunningCount != 2 {
					t.Errorf("after rollback: %+v", svc.Deployments)
				}
				if !hasEvent(svc.Events, "(service web) rolling back to deployment "+before+".") {
					t.Errorf("no rollback event in %v", svc.Events)
				}
			}
			sd, err := c.DescribeServiceDeployments(ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{aws.ToString(svc.CurrentServiceDeployment)}})
			if err != nil || len(sd.ServiceDeployments) != 1 {
				t.Fatalf("DescribeServiceDeployments = %+v, %v", sd, err)
			}
			if got := sd.ServiceDeployments[0]; got.Status != tt.wantSD || got.DeploymentCircuitBreaker.Status != types.ServiceDeploymentRollbackMonitorsStatusTriggered {
				t.Errorf("service deployment %s, breaker %+v", got.Status, got.DeploymentCircuitBreaker)
			}
			var bad int
			for _, tk := range tasks(t, c, "web", types.DesiredStatusStopped) {
				if aws.ToString(tk.TaskDefinitionArn) != aws.ToString(v2.TaskDefinitionArn) || tk.StartedAt == nil {
					continue
				}
				bad++
				if aws.ToString(tk.StoppedReason) != tt.wantReason || tk.Containers[0].ExitCode == nil || *tk.Containers[0].ExitCode != tt.wantExit {
					t.Errorf("stopped task: reason %q exit %v", aws.ToString(tk.StoppedReason), tk.Containers[0].ExitCode)
				}
			}
			if bad < 3 {
				t.Errorf("%d failed tasks of ours, want ≥ 3", bad)
			}
		})
	}
}

func find(ds []types.Deployment, id string) *types.Deployment {
	for i := range ds {
		if aws.ToString(ds[i].Id) == id {
			return &ds[i]
		}
	}
	return nil
}

func hasEvent(evs []types.ServiceEvent, msg string) bool {
	for _, e := range evs {
		if aws.ToString(e.Message) == msg {
			return true
		}
	}
	return false
}

func TestConcurrentDeployment(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, 2, true)
	ctx := context.Background()
	v2 := register(t, c, "web", "registry.example/app:2", true)
	v3 := register(t, c, "web", "registry.example/app:3", true)
	up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: v2.TaskDefinitionArn})
	if err != nil {
		t.Fatal(err)
	}
	ours := aws.ToString(up.Service.Deployments[0].Id)
	s.Advance(3 * time.Second)
	other, err := s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: v3.TaskDefinitionArn})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(3 * time.Minute)
	svc := describe(t, c, "web")
	if aws.ToString(svc.Deployments[0].Id) == ours || aws.ToString(svc.Deployments[0].Id) != aws.ToString(other.Deployments[0].Id) ||
		aws.ToString(svc.TaskDefinition) != aws.ToString(v3.TaskDefinitionArn) || svc.Deployments[0].RolloutState != types.DeploymentRolloutStateCompleted {
		t.Errorf("after a concurrent deployment: %+v", svc.Deployments)
	}
	l, err := c.ListServiceDeployments(ctx, &ecs.ListServiceDeploymentsInput{Service: aws.String("web")})
	if err != nil || len(l.ServiceDeployments) != 3 || l.ServiceDeployments[1].Status != types.ServiceDeploymentStatusStopped {
		t.Errorf("ListServiceDeployments = %+v, %v", l, err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, 1, true)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want any
		code string
	}{
		{"unknown service", func() error {
			_, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("nope")})
			return err
		}, new(*types.ServiceNotFoundException), CodeServiceNotFound},
		{"unknown cluster", func() error {
			_, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"web"}})
			return err
		}, new(*types.ClusterNotFoundException), CodeClusterNotFound},
		{"unknown task definition", func() error {
			_, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web:9")})
			return err
		}, new(*types.ClientException), CodeClient},
		{"update to unknown task definition", func() error {
			_, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String("other")})
			return err
		}, new(*types.ClientException), CodeClient},
		{"service exists", func() error {
			_, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: aws.String("web")})
			return err
		}, new(*types.InvalidParameterException), CodeInvalidParameter},
		{"container without image", func() error {
			_, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("x"),
				ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app")}}})
			return err
		}, new(*types.ClientException), CodeClient},
		{"access denied", func() error {
			s.Inject(AccessDenied("ListTasks", 1))
			_, err := c.ListTasks(ctx, &ecs.ListTasksInput{ServiceName: aws.String("web")})
			return err
		}, new(*types.AccessDeniedException), CodeAccessDenied},
		{"stop an unknown service deployment", func() error {
			_, err := c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String("arn:aws:ecs:us-east-1:123456789012:service-deployment/default/web/1")})
			return err
		}, new(*types.ServiceDeploymentNotFoundException), CodeServiceDeploymentNotFound},
		{"stop with an unknown stop type", func() error {
			_, err := c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String("x"), StopType: "PAUSE"})
			return err
		}, new(*types.InvalidParameterException), CodeInvalidParameter},
		{"blue/green without a load balancer", func() error {
			_, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("bg"), TaskDefinition: aws.String("web"),
				DeploymentConfiguration: &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen}})
			return err
		}, new(*types.InvalidParameterException), CodeInvalidParameter},
		{"access denied listing task definitions", func() error {
			s.Inject(AccessDenied("ListTaskDefinitions", 1))
			_, err := c.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{})
			return err
		}, new(*types.AccessDeniedException), CodeAccessDenied},
		{"throttled past the retries", func() error {
			s.Inject(Throttle("DescribeTasks", 3))
			_, err := c.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: []string{"0123"}})
			return err
		}, nil, CodeThrottling},
	}
	for _, tt := range tests {
		err := tt.call()
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
			continue
		}
		if tt.want != nil && !errors.As(err, tt.want) {
			t.Errorf("%s: %T does not unwrap to %T", tt.name, err, tt.want)
		}
	}
	calls := s.Calls()
	if in, ok := calls[len(calls)-1].Input.(*ecs.DescribeTasksInput); !ok || in.Tasks[0] != "0123" {
		t.Errorf("last call %+v", calls[len(calls)-1])
	}
	for _, call := range calls {
		if in, ok := call.Input.(*ecs.StopServiceDeploymentInput); ok && (call.Operation != "StopServiceDeployment" || in.StopType != "PAUSE" && in.StopType != "") {
			t.Errorf("recorded %+v", call)
		}
	}
	out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{"web", "gone"}})
	if err != nil || len(out.Services) != 1 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != "MISSING" {
		t.Errorf("DescribeServices with a missing service = %+v, %v", out, err)
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, 1, true)
	for _, op := range []string{"DescribeServices", "UpdateService", "ListTasks", "ListTaskDefinitions"} {
		s.Inject(Throttle(op, 2))
		before := s.CallCount(op)
		var err error
		switch op {
		case "DescribeServices":
			_, err = c.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Services: []string{"web"}})
		case "UpdateService":
			_, err = c.UpdateService(context.Background(), &ecs.UpdateServiceInput{Service: aws.String("web"), DesiredCount: aws.Int32(2)})
		case "ListTasks":
			_, err = c.ListTasks(context.Background(), &ecs.ListTasksInput{ServiceName: aws.String("web")})
		case "ListTaskDefinitions":
			_, err = c.ListTaskDefinitions(context.Background(), &ecs.ListTaskDefinitionsInput{})
		}
		if err != nil {
			t.Errorf("%s with 2 throttles: %v", op, err)
		}
		if n := s.CallCount(op) - before; n != 3 {
			t.Errorf("%s: %d calls, want 3 (2 throttled + 1)", op, n)
		}
	}
}

func TestWireProtocol(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	tests := []struct {
		name, target, ctype, auth, want string
	}{
		{"unsigned", TargetPrefix + "ListTasks", "application/x-amz-json-1.1", "", CodeMissingAuthentication},
		{"wrong service scope", TargetPrefix + "ListTasks", "application/x-amz-json-1.1", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00", "InvalidSignatureException"},
		{"unknown operation", TargetPrefix + "DeleteCluster", "application/x-amz-json-1.1", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=00", CodeUnknownOperation},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", tt.target)
		req.Header.Set("Content-Type", tt.ctype)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || s.Calls()[len(s.Calls())-1].ErrorCode != tt.want {
			t.Errorf("%s: %d %s, want 400 %s", tt.name, resp.StatusCode, s.Calls()[len(s.Calls())-1].ErrorCode, tt.want)
		}
	}
}

// advancedLB is a load balancer set up for ECS's BLUE_GREEN, CANARY and LINEAR strategies.
func advancedLB() []types.LoadBalancer {
	const elb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
	return []types.LoadBalancer{{
		TargetGroupArn: aws.String(elb + "targetgroup/web-blue/0123456789abcdef"),
		ContainerName:  aws.String("app"), ContainerPort: aws.Int32(8080),
		AdvancedConfiguration: &types.AdvancedConfiguration{
			AlternateTargetGroupArn: aws.String(elb + "targetgroup/web-green/fedcba9876543210"),
			ProductionListenerRule:  aws.String(elb + "listener-rule/app/web/1/2/3"),
			TestListenerRule:        aws.String(elb + "listener-rule/app/web/1/4/5"),
			RoleArn:                 aws.String("arn:aws:iam::123456789012:role/ecs-infrastructure"),
		},
	}}
}

// setupNative creates service "web" with desired tasks of app:1 deployed with cfg and a rolling-back
// circuit breaker, rolled out and steady.
func setupNative(t *testing.T, desired int32, cfg types.DeploymentConfiguration) (*Server, *ecs.Client) {
	t.Helper()
	s := Start(t, Options{})
	c := client(s, 3)
	td := register(t, c, "web", "registry.example/app:1", true)
	cfg.DeploymentCircuitBreaker = &types.DeploymentCircuitBreaker{Enable: true, Rollback: true}
	out, err := c.CreateService(context.Background(), &ecs.CreateServiceInput{
		ServiceName: aws.String("web"), TaskDefinition: td.TaskDefinitionArn, DesiredCount: aws.Int32(desired),
		LoadBalancers: advancedLB(), DeploymentConfiguration: &cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(3 * time.Minute)
	svc := describe(t, c, "web")
	sd := serviceDeployment(t, c, aws.ToString(out.Service.CurrentServiceDeployment))
	if len(svc.Deployments) != 1 || svc.Deployments[0].RolloutState != types.DeploymentRolloutStateCompleted || svc.RunningCount != desired ||
		sd.Status != types.ServiceDeploymentStatusSuccessful {
		t.Fatalf("after create: %+v, service deployment %s", svc.Deployments, sd.Status)
	}
	return s, c
}

func serviceDeployment(t *testing.T, c *ecs.Client, arn string) types.ServiceDeployment {
	t.Helper()
	out, err := c.DescribeServiceDeployments(context.Background(), &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{arn}})
	if err != nil || len(out.ServiceDeployments) != 1 {
		t.Fatalf("DescribeServiceDeployments(%s) = %+v, %v", arn, out, err)
	}
	return out.ServiceDeployments[0]
}

// stageEntry is a lifecycle stage as a poller saw it begin.
type stageEntry struct {
	stage        types.ServiceDeploymentLifecycleStage
	at           time.Time
	prod         map[string]float64
	test         string
	running      map[string]int // running tasks the scheduler keeps, by task definition ARN
	healthyGreen int
}

// follow advances s a second at a time, recording every lifecycle stage of service deployment arn
// as it begins, until done holds or the deployment leaves IN_PROGRESS.
func follow(t *testing.T, s *Server, c *ecs.Client, arn, green string, done func(types.ServiceDeployment) bool) ([]stageEntry, types.ServiceDeployment) {
	t.Helper()
	var seen []stageEntry
	for i := 0; i < 3600; i++ {
		sd := serviceDeployment(t, c, arn)
		if len(seen) == 0 || seen[len(seen)-1].stage != sd.LifecycleStage {
			e := stageEntry{stage: sd.LifecycleStage, at: s.Now(), running: map[string]int{}}
			e.prod, e.test = s.Traffic("", "web")
			for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
				if aws.ToString(tk.LastStatus) == "RUNNING" {
					e.running[aws.ToString(tk.TaskDefinitionArn)]++
					if aws.ToString(tk.TaskDefinitionArn) == green && tk.HealthStatus == types.HealthStatusHealthy {
						e.healthyGreen++
					}
				}
			}
			seen = append(seen, e)
		}
		if sd.Status != types.ServiceDeploymentStatusInProgress || done != nil && done(sd) {
			return seen, sd
		}
		s.Advance(time.Second)
	}
	t.Fatalf("service deployment %s still in progress after an hour: %+v", arn, seen)
	return nil, types.ServiceDeployment{}
}

func stageIs(st types.ServiceDeploymentLifecycleStage) func(types.ServiceDeployment) bool {
	return func(sd types.ServiceDeployment) bool { return sd.LifecycleStage == st }
}

func TestNativeStrategies(t *testing.T) {
	t.Parallel()
	const (
		preScale  = types.ServiceDeploymentLifecycleStagePreScaleUp
		scale     = types.ServiceDeploymentLifecycleStageScaleUp
		postScale = types.ServiceDeploymentLifecycleStagePostScaleUp
		testShift = types.ServiceDeploymentLifecycleStageTestTrafficShift
		postTest  = types.ServiceDeploymentLifecycleStagePostTestTrafficShift
		preProd   = types.ServiceDeploymentLifecycleStage("PRE_PRODUCTION_TRAFFIC_SHIFT")
		prod      = types.ServiceDeploymentLifecycleStageProductionTrafficShift
		postProd  = types.ServiceDeploymentLifecycleStagePostProductionTrafficShift
		bake      = types.ServiceDeploymentLifecycleStageBakeTime
		cleanUp   = types.ServiceDeploymentLifecycleStageCleanUp
	)
	start := []types.ServiceDeploymentLifecycleStage{preScale, scale, postScale, testShift, postTest}
	startLasts := []time.Duration{5, 20, 5, 5, 5} // SCALE_UP: until green's tasks are healthy: 10 s to run, 10 s to the first passing check
	tests := []struct {
		name    string
		cfg     types.DeploymentConfiguration
		byOther bool
		stages  []types.ServiceDeploymentLifecycleStage // after POST_TEST_TRAFFIC_SHIFT
		lasts   []time.Duration                         // seconds each of start+stages lasted
		shares  []float64                               // green's production share at each PRODUCTION_TRAFFIC_SHIFT
	}{
		{"blue/green", types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen, BakeTimeInMinutes: aws.Int32(1)}, false,
			[]types.ServiceDeploymentLifecycleStage{preProd, prod, postProd, bake, cleanUp},
			[]time.Duration{5, 5, 5, 60, 30}, []float64{100}},
		{"canary, started by another", types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary,
			CanaryConfiguration: &types.CanaryConfiguration{CanaryPercent: aws.Float64(20), CanaryBakeTimeInMinutes: aws.Int32(2)}}, true,
			[]types.ServiceDeploymentLifecycleStage{preProd, prod, preProd, prod, postProd, cleanUp}, // BAKE_TIME lasts 0
			[]time.Duration{5, 125, 5, 5, 5, 30}, []float64{20, 100}},
		{"canary defaults", types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary, BakeTimeInMinutes: aws.Int32(2)}, false,
			[]types.ServiceDeploymentLifecycleStage{preProd, prod, preProd, prod, postProd, bake, cleanUp},
			[]time.Duration{5, 605, 5, 5, 5, 120, 30}, []float64{5, 100}},
		{"linear", types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear,
			LinearConfiguration: &types.LinearConfiguration{StepPercent: aws.Float64(40), StepBakeTimeInMinutes: aws.Int32(1)}}, false,
			[]types.ServiceDeploymentLifecycleStage{preProd, prod, preProd, prod, preProd, prod, postProd, cleanUp},
			[]time.Duration{5, 65, 5, 65, 5, 5, 5, 30}, []float64{40, 80, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const desired = 2
			s, c := setupNative(t, desired, tt.cfg)
			ctx := context.Background()
			v1 := "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
			v2 := aws.ToString(register(t, c, "web", "registry.example/app:2", true).TaskDefinitionArn)
			in := &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(v2)}
			var svc *types.Service
			var err error
			if tt.byOther {
				svc, err = s.UpdateByOther(in)
			} else {
				var out *ecs.UpdateServiceOutput
				if out, err = c.UpdateService(ctx, in); err == nil {
					svc = out.Service
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			seen, sd := follow(t, s, c, aws.ToString(svc.CurrentServiceDeployment), v2, nil)

			wantStages := append(append([]types.ServiceDeploymentLifecycleStage{}, start...), tt.stages...)
			wantLasts := append(append([]time.Duration{}, startLasts...), tt.lasts...)
			var got []types.ServiceDeploymentLifecycleStage
			for _, e := range seen {
				got = append(got, e.stage)
			}
			if !slices.Equal(got, wantStages) {
				t.Fatalf("stages %v, want %v", got, wantStages)
			}
			end := s.Now()
			var shares []float64
			tested := false
			for i, e := range seen {
				next := end
				if i+1 < len(seen) {
					next = seen[i+1].at
				}
				if d := next.Sub(e.at); d != wantLasts[i]*time.Second {
					t.Errorf("%s (#%d) lasted %v, want %v", e.stage, i, d, wantLasts[i]*time.Second)
				}
				tested = tested || e.stage == postTest
				wantTest := v1
				if tested {
					wantTest = v2
				}
				if e.test != wantTest {
					t.Errorf("%s: test traffic to %s, want %s", e.stage, e.test, wantTest)
				}
				if e.stage == prod {
					shares = append(shares, e.prod[v2])
				}
				if g := e.prod[v2]; e.prod[v1]+g != 100 || len(shares) == 0 && g != 0 {
					t.Errorf("%s: production traffic %v", e.stage, e.prod)
				}
				if wantBlue := map[bool]int{true: desired, false: 0}[e.stage != cleanUp]; e.running[v1] != wantBlue {
					t.Errorf("%s: %d blue tasks running, want %d", e.stage, e.running[v1], wantBlue)
				}
				if wantGreen := map[bool]int{true: 0, false: desired}[i < 2]; e.healthyGreen != wantGreen {
					t.Errorf("%s: %d green tasks healthy, want %d", e.stage, e.healthyGreen, wantGreen)
				}
			}
			if !slices.Equal(shares, tt.shares) {
				t.Errorf("production shares %v, want %v", shares, tt.shares)
			}
			if sd.Status != types.ServiceDeploymentStatusSuccessful || aws.ToFloat64(sd.TargetServiceRevision.RequestedProductionTrafficWeight) != 100 ||
				aws.ToFloat64(sd.TargetServiceRevision.RequestedTestTrafficWeight) != 100 || sd.FinishedAt == nil {
				t.Errorf("service deployment at the end: %+v", sd)
			}
			final := describe(t, c, "web")
			if d := final.Deployments; len(d) != 1 || d[0].RolloutState != types.DeploymentRolloutStateCompleted || aws.ToString(d[0].TaskDefinition) != v2 ||
				final.RunningCount != desired {
				t.Errorf("deployments at the end: %+v", d)
			}
			if got := aws.ToString(final.Events[0].Message); got != "(service web) has reached a steady state." {
				t.Errorf("newest event %q", got)
			}
			id := aws.ToString(final.Deployments[0].Id)
			for _, want := range []string{
				"(service web) (deployment " + id + ") deployment lifecycle stage POST_TEST_TRAFFIC_SHIFT started.",
				"(service web) (deployment " + id + ") test traffic shifted: 100% to web:2.",
				"(service web) (deployment " + id + ") production traffic shifted: 100% to web:2.",
				"(service web) (deployment " + id + ") deployment completed.",
			} {
				if !hasEvent(final.Events, want) {
					t.Errorf("no event %q", want)
				}
			}
			if p, test := s.Traffic("", "web"); len(p) != 1 || p[v2] != 100 || test != v2 {
				t.Errorf("traffic at the end: %v, test %s", p, test)
			}
		})
	}
}

func TestNativeRollback(t *testing.T) {
	t.Parallel()
	bg := types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen, BakeTimeInMinutes: aws.Int32(5)}
	tests := []struct {
		name    string
		cfg     types.DeploymentConfiguration
		at      types.ServiceDeploymentLifecycleStage // StopServiceDeployment then
		breaker bool                                  // green's tasks crash instead
	}{
		{"blue/green, stopped in SCALE_UP", bg, types.ServiceDeploymentLifecycleStageScaleUp, false},
		{"blue/green, stopped in POST_TEST_TRAFFIC_SHIFT", bg, types.ServiceDeploymentLifecycleStagePostTestTrafficShift, false},
		{"canary, stopped at 10%", types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary,
			CanaryConfiguration: &types.CanaryConfiguration{CanaryPercent: aws.Float64(10)}}, types.ServiceDeploymentLifecycleStageProductionTrafficShift, false},
		{"linear, stopped in BAKE_TIME", types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear, BakeTimeInMinutes: aws.Int32(10),
			LinearConfiguration: &types.LinearConfiguration{StepPercent: aws.Float64(50), StepBakeTimeInMinutes: aws.Int32(0)}}, types.ServiceDeploymentLifecycleStageBakeTime, false},
		{"blue/green, circuit breaker in SCALE_UP", bg, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, c := setupNative(t, 2, tt.cfg)
			ctx := context.Background()
			v1 := "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
			before := describe(t, c, "web").Deployments[0]
			var blue []string
			for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
				blue = append(blue, aws.ToString(tk.TaskArn))
			}
			slices.Sort(blue)
			if tt.breaker {
				s.SetBehavior("registry.example/app:2", Behavior{ExitCode: 1})
			}
			v2 := aws.ToString(register(t, c, "web", "registry.example/app:2", true).TaskDefinitionArn)
			up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(v2)})
			if err != nil {
				t.Fatal(err)
			}
			arn := aws.ToString(up.Service.CurrentServiceDeployment)
			_, sd := follow(t, s, c, arn, v2, stageIs(tt.at))
			if tt.breaker {
				if sd.Status != types.ServiceDeploymentStatusRollbackInProgress || sd.LifecycleStage != types.ServiceDeploymentLifecycleStageScaleUp ||
					!strings.Contains(aws.ToString(sd.Rollback.Reason), "circuit breaker") {
					t.Fatalf("after the breaker: %s in %s, rollback %+v", sd.Status, sd.LifecycleStage, sd.Rollback)
				}
			} else {
				if p, _ := s.Traffic("", "web"); tt.at == types.ServiceDeploymentLifecycleStageProductionTrafficShift && p[v2] != 10 {
					t.Fatalf("canary traffic %v", p)
				}
				out, err := c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn)})
				if err != nil || aws.ToString(out.ServiceDeploymentArn) != arn {
					t.Fatalf("StopServiceDeployment = %+v, %v", out, err)
				}
				if got := serviceDeployment(t, c, arn).Status; got != types.ServiceDeploymentStatusRollbackRequested {
					t.Errorf("status after the request: %s", got)
				}
				s.Advance(DefaultStageAfter)
				sd = serviceDeployment(t, c, arn)
				if sd.Status != types.ServiceDeploymentStatusRollbackInProgress || sd.Rollback == nil ||
					!strings.Contains(aws.ToString(sd.Rollback.Reason), "StopServiceDeployment") {
					t.Fatalf("%s after the request was carried out, rollback %+v", sd.Status, sd.Rollback)
				}
			}
			if p, test := s.Traffic("", "web"); len(p) != 1 || p[v1] != 100 || test != v1 {
				t.Errorf("traffic after the rollback: %v, test %s", p, test)
			}
			svc := describe(t, c, "web")
			if aws.ToString(svc.Deployments[0].Id) != aws.ToString(before.Id) || !hasEvent(svc.Events, "(service web) rolling back to deployment "+aws.ToString(before.Id)+".") {
				t.Errorf("after the rollback: %+v", svc.Deployments)
			}
			s.Advance(2 * time.Minute)
			if sd := serviceDeployment(t, c, arn); sd.Status != types.ServiceDeploymentStatusRollbackSuccessful || sd.FinishedAt == nil {
				t.Errorf("service deployment %s", sd.Status)
			}
			svc = describe(t, c, "web")
			if d := svc.Deployments; len(d) != 1 || aws.ToString(d[0].TaskDefinition) != v1 || d[0].RolloutState != types.DeploymentRolloutStateCompleted {
				t.Errorf("deployments after the rollback: %+v", d)
			}
			var running []string
			for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
				running = append(running, aws.ToString(tk.TaskArn))
			}
			slices.Sort(running)
			if !slices.Equal(running, blue) {
				t.Errorf("running tasks %v, want blue's %v untouched", running, blue)
			}
		})
	}
}

func TestNativeAbort(t *testing.T) {
	t.Parallel()
	s, c := setupNative(t, 2, types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary,
		CanaryConfiguration: &types.CanaryConfiguration{CanaryPercent: aws.Float64(10)}})
	ctx := context.Background()
	v1 := "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
	v2 := aws.ToString(register(t, c, "web", "registry.example/app:2", true).TaskDefinitionArn)
	up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(v2)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(up.Service.CurrentServiceDeployment)
	follow(t, s, c, arn, v2, stageIs(types.ServiceDeploymentLifecycleStageProductionTrafficShift))
	if _, err := c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn), StopType: types.StopServiceDeploymentStopTypeAbort}); err != nil {
		t.Fatal(err)
	}
	if sd := serviceDeployment(t, c, arn); sd.Status != types.ServiceDeploymentStatusStopRequested {
		t.Errorf("at once: %s", sd.Status)
	}
	s.Advance(30 * time.Minute)
	sd := serviceDeployment(t, c, arn)
	if sd.Status != types.ServiceDeploymentStatusStopped || sd.LifecycleStage != types.ServiceDeploymentLifecycleStageProductionTrafficShift {
		t.Errorf("after the abort: %s in %s", sd.Status, sd.LifecycleStage)
	}
	if p, test := s.Traffic("", "web"); p[v1] != 90 || p[v2] != 10 || test != v2 {
		t.Errorf("traffic after the abort: %v, test %s; want it left at 90/10", p, test)
	}
	n := map[string]int{}
	for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
		n[aws.ToString(tk.TaskDefinitionArn)]++
	}
	if n[v1] != 2 || n[v2] != 2 {
		t.Errorf("running tasks after the abort: %v", n)
	}
}

func TestNativeSupersededDeployment(t *testing.T) {
	t.Parallel()
	s, c := setupNative(t, 2, types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen})
	ctx := context.Background()
	v1 := "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"
	v2 := aws.ToString(register(t, c, "web", "registry.example/app:2", true).TaskDefinitionArn)
	v3 := aws.ToString(register(t, c, "web", "registry.example/app:3", true).TaskDefinitionArn)
	up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(v2)})
	if err != nil {
		t.Fatal(err)
	}
	ours := aws.ToString(up.Service.CurrentServiceDeployment)
	follow(t, s, c, ours, v2, stageIs(types.ServiceDeploymentLifecycleStagePostTestTrafficShift))
	if _, test := s.Traffic("", "web"); test != v2 {
		t.Fatalf("test traffic to %s before the other deployment", test)
	}
	other, err := s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(v3)})
	if err != nil {
		t.Fatal(err)
	}
	if sd := serviceDeployment(t, c, ours); sd.Status != types.ServiceDeploymentStatusStopped {
		t.Errorf("superseded service deployment %s", sd.Status)
	}
	if p, test := s.Traffic("", "web"); len(p) != 1 || p[v1] != 100 || test != v1 {
		t.Errorf("traffic after the other deployment started: %v, test %s", p, test)
	}
	_, sd := follow(t, s, c, aws.ToString(other.CurrentServiceDeployment), v3, nil)
	if sd.Status != types.ServiceDeploymentStatusSuccessful {
		t.Errorf("other service deployment %s", sd.Status)
	}
	for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
		if aws.ToString(tk.TaskDefinitionArn) != v3 {
			t.Errorf("task of %s still running", aws.ToString(tk.TaskDefinitionArn))
		}
	}
	if p, test := s.Traffic("", "web"); len(p) != 1 || p[v3] != 100 || test != v3 {
		t.Errorf("traffic at the end: %v, test %s", p, test)
	}
}

func TestStopServiceDeployment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		stop      types.StopServiceDeploymentStopType
		first     bool // stop the deployment that created the service
		requested types.ServiceDeploymentStatus
		carried   types.ServiceDeploymentStatus // StageAfter later
		final     types.ServiceDeploymentStatus // minutes later
	}{
		{"rollback", types.StopServiceDeploymentStopTypeRollback, false, types.ServiceDeploymentStatusRollbackRequested,
			types.ServiceDeploymentStatusRollbackInProgress, types.ServiceDeploymentStatusRollbackSuccessful},
		{"default is rollback", "", false, types.ServiceDeploymentStatusRollbackRequested,
			types.ServiceDeploymentStatusRollbackInProgress, types.ServiceDeploymentStatusRollbackSuccessful},
		{"abort", types.StopServiceDeploymentStopTypeAbort, false, types.ServiceDeploymentStatusStopRequested,
			types.ServiceDeploymentStatusStopped, types.ServiceDeploymentStatusStopped},
		{"rollback with nothing to roll back to", types.StopServiceDeploymentStopTypeRollback, true, types.ServiceDeploymentStatusRollbackRequested,
			types.ServiceDeploymentStatusRollbackFailed, types.ServiceDeploymentStatusRollbackFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var s *Server
			var c *ecs.Client
			var arn, before string
			if tt.first {
				s = Start(t, Options{})
				c = client(s, 3)
				td := register(t, c, "web", "registry.example/app:1", true)
				out, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: td.TaskDefinitionArn, DesiredCount: aws.Int32(2)})
				if err != nil {
					t.Fatal(err)
				}
				arn = aws.ToString(out.Service.CurrentServiceDeployment)
			} else {
				s, c, _ = setup(t, 2, false)
				before = aws.ToString(describe(t, c, "web").Deployments[0].Id)
				v2 := register(t, c, "web", "registry.example/app:2", true)
				up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: v2.TaskDefinitionArn})
				if err != nil {
					t.Fatal(err)
				}
				arn = aws.ToString(up.Service.CurrentServiceDeployment)
			}
			s.Advance(3 * time.Second)
			s.Inject(Throttle("StopServiceDeployment", 1))
			out, err := c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn), StopType: tt.stop})
			if err != nil || aws.ToString(out.ServiceDeploymentArn) != arn || s.CallCount("StopServiceDeployment") != 2 {
				t.Fatalf("StopServiceDeployment = %+v, %v after %d calls", out, err, s.CallCount("StopServiceDeployment"))
			}
			if got := serviceDeployment(t, c, arn).Status; got != tt.requested {
				t.Errorf("at once: %s, want %s", got, tt.requested)
			}
			// asking again while ECS is at it is fine
			if _, err := c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn), StopType: tt.stop}); err != nil {
				t.Errorf("second StopServiceDeployment: %v", err)
			}
			s.Advance(DefaultStageAfter)
			sd := serviceDeployment(t, c, arn)
			if sd.Status != tt.carried {
				t.Errorf("%v later: %s, want %s", DefaultStageAfter, sd.Status, tt.carried)
			}
			running := func() []string {
				var arns []string
				for _, tk := range tasks(t, c, "web", types.DesiredStatusRunning) {
					arns = append(arns, aws.ToString(tk.TaskArn))
				}
				slices.Sort(arns)
				return arns
			}
			atStop := running()
			switch tt.carried {
			case types.ServiceDeploymentStatusRollbackInProgress:
				svc := describe(t, c, "web")
				if sd.Rollback == nil || aws.ToString(sd.Rollback.Reason) != "Service deployment rolled back because a rollback was requested by StopServiceDeployment." ||
					aws.ToString(svc.Deployments[0].Id) != before || !hasEvent(svc.Events, "(service web) rolling back to deployment "+before+".") {
					t.Errorf("rollback %+v, deployments %+v", sd.Rollback, svc.Deployments)
				}
			case types.ServiceDeploymentStatusStopped:
				if sd.StoppedAt == nil || len(atStop) != 4 {
					t.Errorf("stopped at %v with %d tasks running", sd.StoppedAt, len(atStop))
				}
			}
			s.Advance(3 * time.Minute)
			sd = serviceDeployment(t, c, arn)
			if sd.Status != tt.final {
				t.Errorf("minutes later: %s, want %s", sd.Status, tt.final)
			}
			switch tt.final {
			case types.ServiceDeploymentStatusRollbackSuccessful:
				svc := describe(t, c, "web")
				if len(svc.Deployments) != 1 || aws.ToString(svc.TaskDefinition) != "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1" || svc.RunningCount != 2 {
					t.Errorf("after the rollback: %+v", svc.Deployments)
				}
			default: // the scheduler leaves the tasks as they were
				if got := running(); !slices.Equal(got, atStop) {
					t.Errorf("tasks %v, want them left as %v", got, atStop)
				}
			}
			_, err = c.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(arn)})
			var conflict *types.ConflictException
			if !errors.As(err, &conflict) || conflict.ErrorCode() != CodeConflict || !slices.Equal(conflict.ResourceIds, []string{arn}) {
				t.Errorf("stopping a finished service deployment: %v", err)
			}
		})
	}
}

func TestStrategyNeedsAdvancedLoadBalancer(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := client(s, 1)
	ctx := context.Background()
	td := register(t, c, "web", "registry.example/app:1", true)
	noRole := advancedLB()
	noRole[0].AdvancedConfiguration = &types.AdvancedConfiguration{
		AlternateTargetGroupArn: noRole[0].AdvancedConfiguration.AlternateTargetGroupArn,
		ProductionListenerRule:  noRole[0].AdvancedConfiguration.ProductionListenerRule,
	}
	plain := advancedLB()
	plain[0].AdvancedConfiguration = nil
	bg := &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen}
	tests := []struct {
		name string
		lbs  []types.LoadBalancer
		cfg  *types.DeploymentConfiguration
		ok   bool
	}{
		{"blue/green without a load balancer", nil, bg, false},
		{"blue/green, load balancer without advancedConfiguration", plain, bg, false},
		{"blue/green, advancedConfiguration without roleArn", noRole, bg, false},
		{"blue/green", advancedLB(), bg, true},
		{"canary without a load balancer", nil, &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary}, false},
		{"linear without a load balancer", nil, &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear}, false},
		{"canary of 0%", advancedLB(), &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyCanary,
			CanaryConfiguration: &types.CanaryConfiguration{CanaryPercent: aws.Float64(0)}}, false},
		{"linear steps of 2%", advancedLB(), &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear,
			LinearConfiguration: &types.LinearConfiguration{StepPercent: aws.Float64(2)}}, false},
		{"bake time of two days", advancedLB(), &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyBlueGreen, BakeTimeInMinutes: aws.Int32(2880)}, false},
		{"rolling without a load balancer", nil, &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyRolling}, true},
	}
	for i, tt := range tests {
		_, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String(fmt.Sprintf("svc%d", i)), TaskDefinition: td.TaskDefinitionArn,
			LoadBalancers: tt.lbs, DeploymentConfiguration: tt.cfg})
		var invalid *types.InvalidParameterException
		if tt.ok && err != nil || !tt.ok && !errors.As(err, &invalid) {
			t.Errorf("%s: CreateService: %v", tt.name, err)
		}
	}
	// UpdateService checks the load balancers the service will have, and changes nothing when it fails.
	_, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String(fmt.Sprintf("svc%d", len(tests)-1)), DesiredCount: aws.Int32(3),
		DeploymentConfiguration: &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear}})
	var invalid *types.InvalidParameterException
	if !errors.As(err, &invalid) || !strings.Contains(invalid.ErrorMessage(), "LINEAR deployment strategy requires a load balancer with an advancedConfiguration") {
		t.Errorf("UpdateService to LINEAR without a load balancer: %v", err)
	}
	svc := describe(t, c, fmt.Sprintf("svc%d", len(tests)-1))
	if svc.DeploymentConfiguration.Strategy != types.DeploymentStrategyRolling || svc.DesiredCount != 0 {
		t.Errorf("a failed UpdateService changed the service: %s, desired %d", svc.DeploymentConfiguration.Strategy, svc.DesiredCount)
	}
	up, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String(fmt.Sprintf("svc%d", len(tests)-1)), LoadBalancers: advancedLB(),
		DeploymentConfiguration: &types.DeploymentConfiguration{Strategy: types.DeploymentStrategyLinear}})
	if err != nil {
		t.Fatal(err)
	}
	if l := up.Service.DeploymentConfiguration.LinearConfiguration; up.Service.DeploymentConfiguration.Strategy != types.DeploymentStrategyLinear ||
		l == nil || aws.ToFloat64(l.StepPercent) != 10 || aws.ToInt32(l.StepBakeTimeInMinutes) != 6 {
		t.Errorf("UpdateService to LINEAR: %+v", up.Service.DeploymentConfiguration)
	}
}

func TestTrafficRolling(t *testing.T) {
	t.Parallel()
	s, c, v1 := setup(t, 2, true)
	ctx := context.Background()
	a1 := aws.ToString(v1.TaskDefinitionArn)
	if p, test := s.Traffic("", "web"); len(p) != 1 || p[a1] != 100 || test != a1 {
		t.Fatalf("traffic when steady: %v, test %s", p, test)
	}
	if p, test := s.Traffic("prod", "web"); len(p) != 0 || test != "" {
		t.Errorf("traffic of an unknown cluster: %v, test %q", p, test)
	}
	a2 := aws.ToString(register(t, c, "web", "registry.example/app:2", true).TaskDefinitionArn)
	if _, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), TaskDefinition: aws.String(a2)}); err != nil {
		t.Fatal(err)
	}
	s.Advance(5 * time.Second)
	// a third task of web:2 starts 5 s after the first two, so for 5 s one task of web:1 stays
	if _, err := c.UpdateService(ctx, &ecs.UpdateServiceInput{Service: aws.String("web"), DesiredCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after  time.Duration
		p1, p2 float64
		test   string
	}{
		{14 * time.Second, 100, 0, a1}, // running after 10 s, healthy after 10 s more
		{time.Second, 100.0 / 3, 200.0 / 3, a2},
		{5 * time.Second, 0, 100, a2},
	}
	for _, tt := range tests {
		s.Advance(tt.after)
		p, test := s.Traffic(DefaultCluster, "web")
		if math.Abs(p[a1]-tt.p1) > 0.01 || math.Abs(p[a2]-tt.p2) > 0.01 || test != tt.test {
			t.Errorf("at %v: traffic %v, test %s; want web:1 %.2f, web:2 %.2f, test %s", s.Now().Sub(s.opts.Start), p, test, tt.p1, tt.p2, tt.test)
		}
	}
}

func TestTaskDefinitions(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := client(s, 3)
	ctx := context.Background()
	arn := func(ref string) string { return "arn:aws:ecs:us-east-1:123456789012:task-definition/" + ref }
	tags := []types.Tag{{Key: aws.String("team"), Value: aws.String("web")}, {Key: aws.String("commit"), Value: aws.String("0123abc")}}
	reg, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("web"), Tags: tags,
		ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String("registry.example/app:1")}}})
	if err != nil || len(reg.Tags) != 2 {
		t.Fatalf("RegisterTaskDefinition with tags = %+v, %v", reg, err)
	}
	register(t, c, "web", "registry.example/app:2", false)
	register(t, c, "web", "registry.example/app:3", false)
	register(t, c, "api", "registry.example/api:1", false)
	if _, err := c.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("web:2")}); err != nil {
		t.Fatal(err)
	}
	lists := []struct {
		name string
		in   ecs.ListTaskDefinitionsInput
		want []string
	}{
		{"all active", ecs.ListTaskDefinitionsInput{}, []string{"api:1", "web:1", "web:3"}},
		{"newest first", ecs.ListTaskDefinitionsInput{Sort: types.SortOrderDesc}, []string{"web:3", "web:1", "api:1"}},
		{"one family", ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("web")}, []string{"web:1", "web:3"}},
		{"one family, newest first", ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("web"), Sort: types.SortOrderDesc}, []string{"web:3", "web:1"}},
		{"a family is not a prefix", ecs.ListTaskDefinitionsInput{FamilyPrefix: aws.String("we")}, nil},
		{"inactive", ecs.ListTaskDefinitionsInput{Status: types.TaskDefinitionStatusInactive}, []string{"web:2"}},
		{"pages of one", ecs.ListTaskDefinitionsInput{MaxResults: aws.Int32(1)}, []string{"api:1", "web:1", "web:3"}},
	}
	for _, tt := range lists {
		var got []string
		pages := 0
		for p := ecs.NewListTaskDefinitionsPaginator(c, &tt.in); p.HasMorePages(); pages++ {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if tt.in.MaxResults != nil && len(out.TaskDefinitionArns) > int(*tt.in.MaxResults) {
				t.Errorf("%s: page of %d", tt.name, len(out.TaskDefinitionArns))
			}
			got = append(got, out.TaskDefinitionArns...)
		}
		var want []string
		for _, ref := range tt.want {
			want = append(want, arn(ref))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", tt.name, got, want)
		}
		if tt.in.MaxResults != nil && pages != len(tt.want) {
			t.Errorf("%s: %d pages", tt.name, pages)
		}
	}
	if _, err := c.ListTaskDefinitions(ctx, &ecs.ListTaskDefinitionsInput{Sort: "UP"}); !errors.As(err, new(*types.InvalidParameterException)) {
		t.Errorf("ListTaskDefinitions with sort UP: %v", err)
	}
	describes := []struct {
		name, ref string
		include   []types.TaskDefinitionField
		want      string
		tags      []types.Tag
	}{
		{"family", "web", nil, "web:3", nil},
		{"family and revision with tags", "web:1", []types.TaskDefinitionField{types.TaskDefinitionFieldTags}, "web:1", tags},
		{"ARN without tags asked for", arn("web:1"), nil, "web:1", nil},
		{"inactive revision", "web:2", nil, "web:2", nil},
		{"untagged with tags asked for", "api", []types.TaskDefinitionField{types.TaskDefinitionFieldTags}, "api:1", []types.Tag{}},
	}
	for _, tt := range describes {
		out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(tt.ref), Include: tt.include})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := aws.ToString(out.TaskDefinition.TaskDefinitionArn); got != arn(tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, arn(tt.want))
		}
		if len(out.Tags) != len(tt.tags) || (tt.tags == nil) != (out.Tags == nil) {
			t.Errorf("%s: tags %+v, want %+v", tt.name, out.Tags, tt.tags)
		}
		for i := range tt.tags {
			if aws.ToString(out.Tags[i].Key) != aws.ToString(tt.tags[i].Key) || aws.ToString(out.Tags[i].Value) != aws.ToString(tt.tags[i].Value) {
				t.Errorf("%s: tag %d = %+v", tt.name, i, out.Tags[i])
			}
		}
	}
	// the family's latest ACTIVE revision, skipping a deregistered newer one
	if _, err := c.DeregisterTaskDefinition(ctx, &ecs.DeregisterTaskDefinitionInput{TaskDefinition: aws.String("web:3")}); err != nil {
		t.Fatal(err)
	}
	if out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web")}); err != nil ||
		aws.ToString(out.TaskDefinition.TaskDefinitionArn) != arn("web:1") {
		t.Errorf("DescribeTaskDefinition(web) after deregistering web:3 = %+v, %v", out, err)
	}
}

func TestRunRealtime(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Default: Behavior{StartAfter: 200 * time.Millisecond}})
	c := client(s, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v0, w0 := s.Now(), time.Now()
	go func() {
		defer close(done)
		s.RunRealtime(ctx, 20*time.Millisecond)
	}()
	td := register(t, c, "web", "registry.example/app:1", false)
	if _, err := c.CreateService(context.Background(), &ecs.CreateServiceInput{ServiceName: aws.String("web"), TaskDefinition: td.TaskDefinitionArn, DesiredCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	// the task starts in 200 ms of wall time without a call to Advance
	if !testenv.Eventually(5*time.Second, 20*time.Millisecond, func() bool { return describe(t, c, "web").RunningCount == 1 }) {
		t.Fatal("no task running after 5 s of wall time")
	}
	cancel()
	<-done
	virtual, wall := s.Now().Sub(v0), time.Since(w0)
	if virtual > wall || virtual < wall-250*time.Millisecond {
		t.Errorf("virtual clock moved %v in %v of wall time", virtual, wall)
	}
}

func TestTagResourceControllerAndCredentials(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{AccessKeys: func(id string) bool { return id == "AKIDEXAMPLE" }})
	c := client(s, 1)
	ctx := context.Background()
	td := register(t, c, "web", "registry.example/app:1", false)
	if _, err := c.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: td.TaskDefinitionArn, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: td.TaskDefinitionArn, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("2")}, {Key: aws.String("b"), Value: aws.String("3")}}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String("web:1"), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
	if err != nil || len(out.Tags) != 2 || aws.ToString(out.Tags[0].Value) != "2" || aws.ToString(out.Tags[1].Key) != "b" {
		t.Errorf("tags = %+v, %v", out.Tags, err)
	}
	if _, err := c.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String("arn:aws:ecs:us-east-1:123456789012:task-definition/nope:1"), Tags: out.Tags}); err == nil {
		t.Error("tagged a missing task definition")
	}
	// A service keeps the deployment controller it was created with.
	if _, err := c.CreateService(ctx, &ecs.CreateServiceInput{ServiceName: aws.String("cd"), TaskDefinition: td.TaskDefinitionArn, DesiredCount: aws.Int32(1),
		DeploymentController: &types.DeploymentController{Type: types.DeploymentControllerTypeCodeDeploy}}); err != nil {
		t.Fatal(err)
	}
	if got := describe(t, c, "cd").DeploymentController.Type; got != types.DeploymentControllerTypeCodeDeploy {
		t.Errorf("controller = %s", got)
	}
	// Unknown keys and other regions are refused as AWS refuses them.
	for _, tc := range []struct{ key, region, code string }{
		{"AKIDOTHER", "us-east-1", "UnrecognizedClientException"},
		{"AKIDEXAMPLE", "eu-west-3", "InvalidSignatureException"},
	} {
		cfg := aws.Config{Region: tc.region, Credentials: credentials.NewStaticCredentialsProvider(tc.key, "secret", "")}
		other := ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(s.URL) })
		_, err := other.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{"cd"}})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
			t.Errorf("%s in %s: err = %v, want %s", tc.key, tc.region, err, tc.code)
		}
	}
}
