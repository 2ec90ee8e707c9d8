package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
	"github.com/gantry-dev/gantry/internal/fakes/ecsfake"
)

// The service every run deploys to, its images and commits.
const (
	cluster  = "default"
	service  = "api"
	desired  = 2
	imgV1    = "registry.example/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imgGood  = "registry.example/api@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	imgCrash = "registry.example/api@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	sha1     = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha2     = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

	// taskStart is every task's PROVISIONING → RUNNING time; a crashing
	// task's essential container exits crashAfter later with exit code 1.
	taskStart  = 20 * time.Second
	crashAfter = time.Second
	// settleV1 is how far the fake's clock is moved, instantly, to get v1
	// steady before a run.
	settleV1 = 3 * time.Minute
)

// taskDefJSON is the service's task definition as a repository keeps it.
func taskDefJSON(image string) []byte {
	return []byte(fmt.Sprintf(`{"family":"api","networkMode":"awsvpc","cpu":"256","memory":"512",
	  "requiresCompatibilities":["FARGATE"],
	  "containerDefinitions":[{"name":"api","image":%q,"essential":true,"portMappings":[{"containerPort":8080}],
	    "healthCheck":{"command":["CMD","/app","-health"],"interval":10,"retries":2}}]}`, image))
}

// fake is one ECS fake on loopback with service api steady on api:1, and an
// SDK client pointed at it. Its virtual clock follows the wall clock from
// start on, at a constant distance: wall = virtual + offset.
type fake struct {
	srv    *ecsfake.Server
	http   *httptest.Server
	api    *ecs.Client
	v1     string // ARN of api:1
	offset time.Duration
	cancel context.CancelFunc
	done   chan struct{}
}

func newFake(ctx context.Context, breaker, rollback bool) (*fake, error) {
	srv := ecsfake.New(ecsfake.Options{Default: ecsfake.Behavior{StartAfter: taskStart}})
	srv.SetBehavior(imgCrash, ecsfake.Behavior{StartAfter: taskStart, CrashAfter: crashAfter, ExitCode: 1})
	hs := httptest.NewServer(srv)
	srv.URL = hs.URL
	f := &fake{srv: srv, http: hs, api: newClient(hs.URL)}
	if err := f.setup(ctx, breaker, rollback); err != nil {
		hs.Close()
		return nil, err
	}
	return f, nil
}

// newClient is the real SDK client, static credentials, pointed at url.
func newClient(url string) *ecs.Client {
	cfg := aws.Config{
		Region:      ecsfake.DefaultRegion,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDBENCHECSDETECT", "secret", ""),
	}
	return ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(url) })
}

// setup registers api:1, creates the service and moves the clock until it
// is steady.
func (f *fake) setup(ctx context.Context, breaker, rollback bool) error {
	in, _, err := ecsdeploy.RenderTaskDefinition(taskDefJSON(imgV1), ecsdeploy.Render{SHA: sha1})
	if err != nil {
		return err
	}
	reg, err := f.api.RegisterTaskDefinition(ctx, in)
	if err != nil {
		return fmt.Errorf("register api:1: %w", err)
	}
	f.v1 = aws.ToString(reg.TaskDefinition.TaskDefinitionArn)
	_, err = f.api.CreateService(ctx, &ecs.CreateServiceInput{
		Cluster: aws.String(cluster), ServiceName: aws.String(service), TaskDefinition: aws.String(f.v1),
		DesiredCount: aws.Int32(desired), LaunchType: types.LaunchTypeFargate,
		DeploymentConfiguration: &types.DeploymentConfiguration{
			DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: breaker, Rollback: rollback},
		},
	})
	if err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	f.srv.Advance(settleV1)
	svc, err := f.describe(ctx)
	if err != nil {
		return err
	}
	if len(svc.Deployments) != 1 || svc.Deployments[0].RolloutState != types.DeploymentRolloutStateCompleted || svc.RunningCount != desired {
		return fmt.Errorf("service api is not steady on api:1 after %s of fake time: %s", settleV1, deployments(svc))
	}
	return nil
}

// settleWait bounds how long observe waits for a rollout to end.
const settleWait = 90 * time.Second

// settle waits until deployment id is no longer IN_PROGRESS, at most
// settleWait, and returns the service then.
func (f *fake) settle(ctx context.Context, id string) (*types.Service, error) {
	deadline := time.Now().Add(settleWait)
	for {
		svc, err := f.describe(ctx)
		if err != nil {
			return nil, err
		}
		busy := false
		for _, d := range svc.Deployments {
			if aws.ToString(d.Id) == id && d.RolloutState == types.DeploymentRolloutStateInProgress {
				busy = true
			}
		}
		if !busy || time.Now().After(deadline) {
			return svc, nil
		}
		select {
		case <-ctx.Done():
			return svc, nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// start makes the fake's clock follow the wall clock.
func (f *fake) start(step time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	// RunRealtime keeps the distance the clocks have when it is called.
	f.offset = time.Since(f.srv.Now())
	go func() {
		defer close(f.done)
		f.srv.RunRealtime(ctx, step)
	}()
}

func (f *fake) close() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	f.http.Close()
}

// wall turns a time the fake stamped into wall-clock time.
func (f *fake) wall(t *time.Time) time.Time {
	if t == nil || t.IsZero() {
		return time.Time{}
	}
	return t.Add(f.offset)
}

func (f *fake) describe(ctx context.Context) (*types.Service, error) {
	out, err := f.api.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}})
	if err != nil {
		return nil, fmt.Errorf("DescribeServices: %w", err)
	}
	if len(out.Services) != 1 {
		return nil, fmt.Errorf("DescribeServices: service api missing")
	}
	return &out.Services[0], nil
}

func deployments(svc *types.Service) string {
	var ds []string
	for _, d := range svc.Deployments {
		ds = append(ds, fmt.Sprintf("%s %s %s %s %d/%d", aws.ToString(d.Id), aws.ToString(d.Status), ecsdeploy.Short(aws.ToString(d.TaskDefinition)),
			d.RolloutState, d.RunningCount, d.DesiredCount))
	}
	return "[" + strings.Join(ds, "; ") + "]"
}

// reality is what the fake says happened after a tool's step ended: the
// ground truth the tool's verdict is judged by. Times are wall-clock.
type reality struct {
	// Crashed counts the tasks of the new revision that stopped on their
	// own; FirstStopped is the StoppedAt of the first.
	Crashed      int
	FirstStopped time.Time
	// OldStopping is when the scheduler first told a task of an older
	// revision to stop after the update, OldStopped how many it told.
	OldStopping time.Time
	OldStopped  int
	// Completed is when ECS wrote "(deployment <ours>) deployment
	// completed."; Steady the first "has reached a steady state." after the
	// update.
	Completed, Steady time.Time
	// Tripped is when the circuit breaker failed our deployment;
	// RollbackTo the deployment it made PRIMARY again.
	Tripped    time.Time
	RollbackTo string
	// FinalCompleted is when the deployment PRIMARY at the end completed,
	// if it is not ours and completed after the update.
	FinalCompleted time.Time
	// SDStatus is our service deployment's status, CB its circuit
	// breaker's ("MONITORING", "TRIGGERED", ...) with its failure count.
	SDStatus, CB string
	CBFailures   int32
	// The service at the end.
	FinalTD, FinalRollout string
	FinalDeployments      int
	Running, Desired      int32
	Err                   error
}

// observe reads the ground truth for deployment depID of revision newTD,
// started by an update at wall time update, with service deployment sdArn;
// crash says whether newTD's tasks crash.
// The service is read at once, as it is when the step ends; events and tasks
// after the rollout in progress then, if any, is over (at most settleWait
// later), so that a COMPLETED the tool did not wait for is known too.
func (f *fake) observe(ctx context.Context, depID, newTD, sdArn string, update time.Time, crash bool) reality {
	var r reality
	svc, err := f.describe(ctx)
	if err != nil {
		r.Err = err
		return r
	}
	r.Running, r.Desired, r.FinalDeployments = svc.RunningCount, svc.DesiredCount, len(svc.Deployments)
	var finalID string
	for _, d := range svc.Deployments {
		if aws.ToString(d.Status) == "PRIMARY" {
			r.FinalTD, r.FinalRollout, finalID = aws.ToString(d.TaskDefinition), string(d.RolloutState), aws.ToString(d.Id)
		}
	}
	// A crashing revision left PRIMARY never completes: nothing to wait for.
	if r.FinalRollout == string(types.DeploymentRolloutStateInProgress) && !(crash && r.FinalTD == newTD) {
		if svc, err = f.settle(ctx, finalID); err != nil {
			r.Err = err
			return r
		}
	}
	after := func(e types.ServiceEvent) bool { return !f.wall(e.CreatedAt).Before(update.Add(-time.Second)) }
	for i := len(svc.Events) - 1; i >= 0; i-- { // oldest first
		e := svc.Events[i]
		msg, at := aws.ToString(e.Message), f.wall(e.CreatedAt)
		if !after(e) {
			continue
		}
		switch {
		case strings.Contains(msg, "(deployment "+depID+") deployment completed"):
			r.Completed = at
		case strings.Contains(msg, "(deployment "+depID+") deployment failed"):
			r.Tripped = at
		case r.RollbackTo == "" && strings.Contains(msg, "rolling back to deployment "):
			r.RollbackTo = strings.TrimSuffix(msg[strings.LastIndex(msg, " ")+1:], ".")
		case strings.HasSuffix(msg, "has reached a steady state.") && r.Steady.IsZero():
			r.Steady = at
		}
		if finalID != depID && strings.Contains(msg, "(deployment "+finalID+") deployment completed") {
			r.FinalCompleted = at
		}
	}
	if sdArn != "" {
		out, err := f.api.DescribeServiceDeployments(ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{sdArn}})
		if err != nil {
			r.Err = fmt.Errorf("DescribeServiceDeployments: %w", err)
			return r
		}
		if len(out.ServiceDeployments) == 1 {
			sd := out.ServiceDeployments[0]
			r.SDStatus = string(sd.Status)
			if cb := sd.DeploymentCircuitBreaker; cb != nil {
				r.CB, r.CBFailures = string(cb.Status), cb.FailureCount
			}
		}
	}
	// The tasks of the new revision that stopped on their own.
	in := &ecs.ListTasksInput{Cluster: aws.String(cluster), ServiceName: aws.String(service), DesiredStatus: types.DesiredStatusStopped}
	for page := 0; page < 50; page++ {
		list, err := f.api.ListTasks(ctx, in)
		if err != nil {
			r.Err = fmt.Errorf("ListTasks: %w", err)
			return r
		}
		for i := 0; i < len(list.TaskArns); i += 100 {
			out, err := f.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: list.TaskArns[i:min(i+100, len(list.TaskArns))]})
			if err != nil {
				r.Err = fmt.Errorf("DescribeTasks: %w", err)
				return r
			}
			for _, t := range out.Tasks {
				if aws.ToString(t.TaskDefinitionArn) != newTD {
					if t.StopCode == types.TaskStopCodeServiceSchedulerInitiated && t.StoppingAt != nil && !f.wall(t.StoppingAt).Before(update.Add(-time.Second)) {
						r.OldStopped++
						if at := f.wall(t.StoppingAt); r.OldStopping.IsZero() || at.Before(r.OldStopping) {
							r.OldStopping = at
						}
					}
					continue
				}
				if t.StopCode != types.TaskStopCodeEssentialContainerExited || t.StoppedAt == nil {
					continue
				}
				r.Crashed++
				if at := f.wall(t.StoppedAt); r.FirstStopped.IsZero() || at.Before(r.FirstStopped) {
					r.FirstStopped = at
				}
			}
		}
		if list.NextToken == nil {
			break
		}
		in.NextToken = list.NextToken
	}
	return r
}
