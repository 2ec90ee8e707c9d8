package ecsfake

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
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
	out, err := c.DescribeServices(ctx, &ecs.DescribeServicesInput{Services: []string{"web", "gone"}})
	if err != nil || len(out.Services) != 1 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != "MISSING" {
		t.Errorf("DescribeServices with a missing service = %+v, %v", out, err)
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	t.Parallel()
	s, c, _ := setup(t, 1, true)
	for _, op := range []string{"DescribeServices", "UpdateService", "ListTasks"} {
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
