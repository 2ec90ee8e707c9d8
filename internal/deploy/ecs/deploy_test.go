package ecs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/fakes/ecsfake"
	"github.com/gantry-dev/gantry/internal/verify"
)

const (
	sha1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	img1 = "registry.example/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	img2 = "registry.example/api@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

// env is a fake ECS with service "api" (desired tasks of api:1, image img1, commit sha1) steady,
// the real SDK client, and health endpoints that answer with the commit of the revision the
// production and test listeners route to.
type env struct {
	t       *testing.T
	s       *ecsfake.Server
	api     *ecs.Client
	v1      string
	prodURL string
	testURL string
	mu      sync.Mutex
	log     []string
	// fixedPolls counts the requests to every fixedHealth endpoint.
	fixedPolls atomic.Int64
}

type envOpts struct {
	desired    int32
	rollback   bool // circuit breaker with rollback
	breaker    bool
	strategy   types.DeploymentStrategy
	controller types.DeploymentControllerType
}

func newEnv(t *testing.T, eo envOpts) *env {
	t.Helper()
	s := ecsfake.Start(t, ecsfake.Options{Default: ecsfake.Behavior{StartAfter: 20 * time.Second}})
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 10
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
	}
	e := &env{t: t, s: s, api: ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.BaseEndpoint = aws.String(s.URL) })}
	ctx := context.Background()
	raw := taskDefJSON(t, img1)
	in, _, err := RenderTaskDefinition(raw, Render{SHA: sha1})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := e.api.RegisterTaskDefinition(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	e.v1 = aws.ToString(reg.TaskDefinition.TaskDefinitionArn)
	if eo.desired == 0 {
		eo.desired = 2
	}
	create := &ecs.CreateServiceInput{
		ServiceName: aws.String("api"), TaskDefinition: aws.String(e.v1), DesiredCount: aws.Int32(eo.desired),
		DeploymentConfiguration: &types.DeploymentConfiguration{
			DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{Enable: eo.breaker || eo.rollback, Rollback: eo.rollback},
			Strategy:                 eo.strategy,
		},
	}
	if eo.controller != "" {
		create.DeploymentController = &types.DeploymentController{Type: eo.controller}
	}
	if eo.strategy != "" && eo.strategy != types.DeploymentStrategyRolling {
		create.LoadBalancers = []types.LoadBalancer{{
			TargetGroupArn: aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/blue/1"),
			ContainerName:  aws.String("api"), ContainerPort: aws.Int32(8080),
			AdvancedConfiguration: &types.AdvancedConfiguration{
				AlternateTargetGroupArn: aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/2"),
				ProductionListenerRule:  aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/2/3"),
				TestListenerRule:        aws.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/1/4/5"),
				RoleArn:                 aws.String("arn:aws:iam::123456789012:role/ecs-lb"),
			},
		}}
	}
	if _, err := e.api.CreateService(ctx, create); err != nil {
		t.Fatal(err)
	}
	s.Advance(3 * time.Minute)
	e.prodURL = e.health(t, false)
	e.testURL = e.health(t, true)
	return e
}

// health serves /health with the commit of the revision a listener routes to.
func (e *env) health(t *testing.T, test bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prod, testTD := e.s.Traffic("default", "api")
		td := testTD
		if !test {
			best := -1.0
			for arn, pct := range prod {
				if pct > best {
					td, best = arn, pct
				}
			}
		}
		if td == "" {
			http.Error(w, "no healthy targets", http.StatusServiceUnavailable)
			return
		}
		out, err := e.api.DescribeTaskDefinition(r.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(td), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "git_sha": tagValue(out.Tags, TagSHA)})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/health"
}

func taskDefJSON(t *testing.T, image string) []byte {
	t.Helper()
	return []byte(fmt.Sprintf(`{"family":"api","networkMode":"awsvpc","cpu":"256","memory":"512",
	  "containerDefinitions":[{"name":"api","image":%q,"essential":true,"portMappings":[{"containerPort":8080}],
	    "healthCheck":{"command":["CMD","/app","-health"],"interval":10,"retries":2}}]}`, image))
}

func (e *env) opts(image, sha string) Options {
	return Options{
		Cluster: "default", Service: "api", TaskDefinition: taskDefJSON(e.t, img1),
		Render: Render{Images: map[string]string{"api": image}, SHA: sha}, SHA: sha,
		Wait: true, AutoRollback: true, Timeout: 15 * time.Minute, PollInterval: 3 * time.Second,
		URL:   e.prodURL,
		Clock: clock.Virtual{NowFunc: e.s.Now, Advance: e.s.Advance},
		Verify: func(ctx context.Context, url string, own bool) (verify.Result, error) {
			return verify.Wait(ctx, verify.Options{URL: url, SHA: sha, Timeout: 3 * time.Second, Interval: 50 * time.Millisecond, OwnAddress: own})
		},
		Logf: func(f string, a ...any) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.log = append(e.log, fmt.Sprintf(f, a...))
		},
	}
}

func (e *env) service() types.Service {
	e.t.Helper()
	out, err := e.api.DescribeServices(context.Background(), &ecs.DescribeServicesInput{Services: []string{"api"}})
	if err != nil || len(out.Services) != 1 {
		e.t.Fatalf("DescribeServices: %v", err)
	}
	return out.Services[0]
}

// steadyOn fails the test unless the service runs only revision arn, every task running.
func (e *env) steadyOn(arn string) {
	e.t.Helper()
	svc := e.service()
	if len(svc.Deployments) != 1 || aws.ToString(svc.Deployments[0].TaskDefinition) != arn || svc.RunningCount != svc.DesiredCount {
		var ds []string
		for _, d := range svc.Deployments {
			ds = append(ds, fmt.Sprintf("%s %s %s %d/%d", aws.ToString(d.Id), aws.ToString(d.Status), short(aws.ToString(d.TaskDefinition)), d.RunningCount, d.DesiredCount))
		}
		e.e("service is not steady on %s: %v", short(arn), ds)
	}
}

func (e *env) e(format string, a ...any) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.t.Errorf(format+"\nlog:\n%s", append(a, strings.Join(e.log, "\n"))...)
}

func (e *env) updates() []string {
	var out []string
	for _, c := range e.s.Calls() {
		if in, ok := c.Input.(*ecs.UpdateServiceInput); ok && c.Operation == "UpdateService" {
			out = append(out, short(aws.ToString(in.TaskDefinition)))
		}
	}
	return out
}

func marks(r *Result) string {
	var b []string
	for _, m := range r.Timeline {
		b = append(b, fmt.Sprintf("%s@%s", m.Name, m.At))
	}
	return strings.Join(b, ", ")
}

func TestDeployRollingSucceedsAndVerifies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{rollback: true})
	start := e.s.Now()
	res, err := Deploy(context.Background(), e.api, e.opts(img2, sha2))
	if err != nil {
		e.e("Deploy: %v", err)
		return
	}
	if res.Outcome != deploy.Success || short(res.TaskDefinition) != "api:2" || short(res.PreviousTaskDefinition) != "api:1" || res.DeploymentID == "" {
		e.e("result = %+v", res)
	}
	e.steadyOn(res.TaskDefinition)
	if len(res.Verified) != 1 || res.Verified[0] != e.prodURL {
		e.e("verified = %v", res.Verified)
	}
	// The registered revision carries the image, the commit and, once verified, the verified tag.
	td, err := e.api.DescribeTaskDefinition(context.Background(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(res.TaskDefinition), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(td.TaskDefinition.ContainerDefinitions[0].Image) != img2 || tagValue(td.Tags, TagSHA) != sha2 || tagValue(td.Tags, TagVerified) == "" {
		e.e("revision: image %s tags %+v", aws.ToString(td.TaskDefinition.ContainerDefinitions[0].Image), td.Tags)
	}
	for _, want := range []string{"registered api:2", "service updated", "first task running", "all 2 tasks running", "steady state", "verified "} {
		if !strings.Contains(marks(res), want) {
			e.e("timeline lacks %q: %s", want, marks(res))
		}
	}
	if len(res.Events) == 0 || !strings.Contains(res.Events[len(res.Events)-1].Message, "steady state") {
		e.e("events = %+v", res.Events)
	}
	// Done within one poll of ECS marking the deployment COMPLETED.
	steadyAt, _ := markAt(res, "steady state")
	completed := e.eventAt("(deployment " + res.DeploymentID + ") deployment completed").Sub(start)
	if over := steadyAt - completed; over < 0 || over > 3*time.Second {
		e.e("steady state seen %s after ECS completed the deployment (want ≤ one 3 s poll)", over)
	}
}

// eventAt is when ECS wrote the first event containing text.
func (e *env) eventAt(text string) time.Time {
	e.t.Helper()
	for _, ev := range e.service().Events {
		if strings.Contains(aws.ToString(ev.Message), text) {
			return aws.ToTime(ev.CreatedAt)
		}
	}
	e.e("no event contains %q", text)
	return time.Time{}
}

func markAt(r *Result, prefix string) (time.Duration, bool) {
	for _, m := range r.Timeline {
		if strings.HasPrefix(m.Name, prefix) {
			return m.At, true
		}
	}
	return 0, false
}

func TestDeployFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      envOpts
		behavior *ecsfake.Behavior // of img2's tasks
		tweak    func(o *Options)
		during   func(e *env) // called from the clock after the first poll
		kind     string
		want     []string
		outcome  string
		// updates are the task definitions of our UpdateService calls.
		updates string
		// staleURL: the health endpoint behind url keeps answering the old commit.
		staleURL bool
	}{
		{
			name:     "crash at start: fail fast, reason, rollback",
			env:      envOpts{},
			behavior: &ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 1},
			kind:     KindTaskStopped,
			want:     []string{"a task of the new revision api:2 failed", "EssentialContainerExited", "container api exited 1", "rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2 api:1",
		},
		{
			name:     "image cannot be pulled",
			behavior: &ecsfake.Behavior{StartAfter: 5 * time.Second, Reason: "CannotPullContainerError: pull image manifest has been retried 5 time(s): registry.example/api: not found"},
			kind:     KindTaskStopped,
			want:     []string{"CannotPullContainerError", "rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2 api:1",
		},
		{
			name:     "health check never passes",
			behavior: &ecsfake.Behavior{StartAfter: 20 * time.Second, HealthCheckFails: true},
			kind:     KindTaskStopped,
			want:     []string{"Task failed container health checks", "rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2 api:1",
		},
		{
			name:     "circuit breaker rolls back: a failure, not a success",
			env:      envOpts{rollback: true},
			behavior: &ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 3},
			tweak:    func(o *Options) { o.FailFast = aws.Bool(false) },
			kind:     KindCircuitBreaker,
			want:     []string{"circuit breaker", "rolling back", "exited 3", "ECS rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2",
		},
		{
			name:     "circuit breaker without rollback: gantry rolls back",
			env:      envOpts{breaker: true},
			behavior: &ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 3},
			tweak:    func(o *Options) { o.FailFast = aws.Bool(false) },
			kind:     KindCircuitBreaker,
			want:     []string{"circuit breaker stopped deployment", "no rollback configured", "exited 3", "rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2 api:1",
		},
		{
			name:     "old version answers: verify fails, rollback",
			staleURL: true,
			kind:     KindVerify,
			want:     []string{"verify", "rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2 api:1",
		},
		{
			name:     "timeout",
			behavior: &ecsfake.Behavior{StartAfter: 30 * time.Minute},
			tweak:    func(o *Options) { o.Timeout = 2 * time.Minute },
			kind:     KindTimeout,
			want:     []string{"not steady after 2m0s", "0 of 2 tasks running, 2 pending", "rolled back to api:1"},
			outcome:  deploy.RolledBack, updates: "api:2 api:1",
		},
		{
			name:     "auto-rollback off leaves the failed deployment",
			behavior: &ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 1},
			tweak:    func(o *Options) { o.AutoRollback = false },
			kind:     KindTaskStopped,
			want:     []string{"exited 1"},
			outcome:  deploy.Abandoned, updates: "api:2",
		},
		{
			name: "another deployment replaces ours",
			during: func(e *env) {
				if _, err := e.s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("api"), TaskDefinition: aws.String(e.v1), ForceNewDeployment: true}); err != nil {
					e.t.Error(err)
				}
			},
			kind:    KindReplaced,
			want:    []string{"another deployment replaced ours", "task definition api:1", "is now PRIMARY"},
			outcome: deploy.Failed, updates: "api:2",
		},
		{
			name: "scaled to zero during the deploy",
			during: func(e *env) {
				if _, err := e.s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("api"), DesiredCount: aws.Int32(0)}); err != nil {
					e.t.Error(err)
				}
			},
			kind:    KindScaledToZero,
			want:    []string{"scaled to a desired count of 0"},
			outcome: deploy.RolledBack, updates: "api:2 api:1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.env)
			if tc.behavior != nil {
				e.s.SetBehavior(img2, *tc.behavior)
			}
			o := e.opts(img2, sha2)
			if tc.staleURL {
				o.URL = e.fixedHealth(t, sha1)
			}
			if tc.tweak != nil {
				tc.tweak(&o)
			}
			if tc.during != nil {
				fired := false
				o.Clock = clock.Virtual{NowFunc: e.s.Now, Advance: e.s.Advance, Before: func() {
					if !fired {
						fired = true
						tc.during(e)
					}
				}}
			}
			res, err := Deploy(context.Background(), e.api, o)
			if err == nil {
				e.e("Deploy succeeded, want a %s failure", tc.kind)
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					e.e("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(marks(res), "failed: "+tc.kind) {
				e.e("timeline %s lacks failed: %s", marks(res), tc.kind)
			}
			if res.Outcome != tc.outcome {
				e.e("outcome = %s, want %s", res.Outcome, tc.outcome)
			}
			if got := strings.Join(e.updates(), " "); got != tc.updates {
				e.e("UpdateService calls to %q, want %q", got, tc.updates)
			}
			if tc.outcome == deploy.RolledBack {
				e.steadyOn(e.v1)
				if res.RolledBackTo != e.v1 {
					e.e("rolled back to %q", res.RolledBackTo)
				}
			}
		})
	}
}

// fixedHealth serves /health reporting sha whatever runs.
func (e *env) fixedHealth(t *testing.T, sha string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.fixedPolls.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"git_sha": sha})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/health"
}

// A crashing task is reported within one poll of the first stopped task, not after a waiter's backoff.
func TestFailFastWithinOnePoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{desired: 3})
	e.s.SetBehavior(img2, ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 1})
	o := e.opts(img2, sha2)
	start := e.s.Now()
	res, err := Deploy(context.Background(), e.api, o)
	if err == nil {
		t.Fatal("a crashing revision deployed")
	}
	failedAt, ok := markAt(res, "first task failed")
	if !ok {
		e.e("no failure mark: %s", marks(res))
		return
	}
	// Tasks launch at the update, run after 20 s and crash 1 s later.
	stoppedAt := e.firstStop(start)
	if lag := failedAt - stoppedAt; lag < 0 || lag > o.PollInterval {
		e.e("failure seen %s after the first task stopped (at +%s), want ≤ %s", lag, stoppedAt, o.PollInterval)
	}
}

// firstStop is when, since start, the first task of api:2 stopped.
func (e *env) firstStop(start time.Time) time.Duration {
	e.t.Helper()
	ctx := context.Background()
	l, err := e.api.ListTasks(ctx, &ecs.ListTasksInput{ServiceName: aws.String("api"), DesiredStatus: types.DesiredStatusStopped})
	if err != nil || len(l.TaskArns) == 0 {
		e.t.Fatalf("stopped tasks: %v %v", l, err)
	}
	d, err := e.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Tasks: l.TaskArns})
	if err != nil {
		e.t.Fatal(err)
	}
	var first time.Time
	for _, tk := range d.Tasks {
		if strings.HasSuffix(aws.ToString(tk.TaskDefinitionArn), ":2") && tk.StoppedAt != nil && (first.IsZero() || tk.StoppedAt.Before(first)) {
			first = *tk.StoppedAt
		}
	}
	return first.Sub(start)
}

func TestDeployRefusesBeforeChangingAnything(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		env   envOpts
		tweak func(e *env, o *Options)
		want  string
	}{
		{"unknown container", envOpts{}, func(e *env, o *Options) { o.Render.Images = map[string]string{"web": img2} }, `container "web" is not in the task definition (it has: api)`},
		{"unknown field", envOpts{}, func(e *env, o *Options) {
			o.TaskDefinition = []byte(`{"family":"api","containerDefinitions":[{"name":"api","image":"x"}],"memoryReservation":5}`)
		}, `unknown member "memoryReservation"`},
		{"unknown service", envOpts{}, func(e *env, o *Options) { o.Service = "nope" }, "service nope not found in cluster default"},
		{"unknown cluster", envOpts{}, func(e *env, o *Options) { o.Cluster = "prod" }, `cluster "prod" not found`},
		{"codedeploy", envOpts{controller: types.DeploymentControllerTypeCodeDeploy}, nil, "controlled by CodeDeploy"},
		{"desired zero", envOpts{}, func(e *env, o *Options) {
			if _, err := e.s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("api"), DesiredCount: aws.Int32(0)}); err != nil {
				t.Fatal(err)
			}
			e.s.Advance(time.Minute)
		}, "desired count of 0"},
		{"deployment in progress, no lock-wait", envOpts{}, func(e *env, o *Options) {
			if _, err := e.s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("api"), ForceNewDeployment: true}); err != nil {
				t.Fatal(err)
			}
			o.LockWait = 0
		}, "already has deployment ecs-svc/"},
		{"access denied", envOpts{}, func(e *env, o *Options) { e.s.Inject(ecsfake.AccessDenied("RegisterTaskDefinition", 1)) }, "may not call ecs:RegisterTaskDefinition"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.env)
			o := e.opts(img2, sha2)
			if tc.tweak != nil {
				tc.tweak(e, &o)
			}
			before := e.s.CallCount("RegisterTaskDefinition")
			_, err := Deploy(context.Background(), e.api, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				e.e("err = %v, want it to contain %q", err, tc.want)
			}
			if got := e.updates(); len(got) > 0 {
				e.e("service updated to %v", got)
			}
			registered := 0
			for _, c := range e.s.Calls()[before:] {
				if c.Operation == "RegisterTaskDefinition" && c.ErrorCode == "" {
					registered++
				}
			}
			if registered > 0 {
				e.e("registered %d task definitions", registered)
			}
		})
	}
}

func TestDeployWaitsForAnotherDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	if _, err := e.s.UpdateByOther(&ecs.UpdateServiceInput{Service: aws.String("api"), ForceNewDeployment: true}); err != nil {
		t.Fatal(err)
	}
	o := e.opts(img2, sha2)
	o.LockWait = 10 * time.Minute
	res, err := Deploy(context.Background(), e.api, o)
	if err != nil {
		e.e("Deploy: %v", err)
		return
	}
	waited, ok := markAt(res, "waiting for ecs-svc/")
	registered, _ := markAt(res, "registered")
	if !ok || registered <= waited {
		e.e("did not wait before registering: %s", marks(res))
	}
	e.steadyOn(res.TaskDefinition)
}

func TestDeploySurvivesThrottling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	for _, op := range []string{"DescribeServices", "ListTasks", "UpdateService", "RegisterTaskDefinition"} {
		e.s.Inject(ecsfake.Throttle(op, 4))
	}
	res, err := Deploy(context.Background(), e.api, e.opts(img2, sha2))
	if err != nil || res.Outcome != deploy.Success {
		e.e("Deploy under throttling: %v", err)
	}
	throttled := 0
	for _, c := range e.s.Calls() {
		if c.ErrorCode == ecsfake.CodeThrottling {
			throttled++
		}
	}
	if throttled != 16 {
		e.e("%d throttled calls, want 16 retried", throttled)
	}
}

func TestDeployFromServiceRevision(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	o := e.opts(img2, sha2)
	o.TaskDefinition = nil
	res, err := Deploy(context.Background(), e.api, o)
	if err != nil {
		e.e("Deploy: %v", err)
		return
	}
	if !strings.Contains(string(res.Rendered), img2) || !strings.Contains(string(res.Rendered), `"healthCheck"`) {
		e.e("rendered from the running revision:\n%s", res.Rendered)
	}
}

func TestFindRevision(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	// api:1 (sha1) is running but not verified; deploy api:2 (sha2, verified), then api:3 (sha3).
	if _, err := Deploy(ctx, e.api, e.opts(img2, sha2)); err != nil {
		t.Fatal(err)
	}
	sha3 := "3333333ccccccccccccccccccccccccccccccccc"
	img3 := strings.Replace(img2, "2222", "3333", 1)
	if _, err := Deploy(ctx, e.api, e.opts(img3, sha3)); err != nil {
		t.Fatal(err)
	}
	o := e.opts("", "")
	for _, tc := range []struct{ to, want, err string }{
		{"previous", "api:2", ""},
		{sha2[:7], "api:2", ""},
		{sha1, "api:1", ""}, // not verified, still found by commit
		{"4444444", "", "no revision of family api"},
	} {
		r, cur, err := FindRevision(ctx, e.api, o, tc.to)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("FindRevision(%s) err = %v, want %q", tc.to, err, tc.err)
			}
			continue
		}
		if err != nil || short(r.ARN) != tc.want || short(cur) != "api:3" {
			t.Errorf("FindRevision(%s) = %s (current %s), %v; want %s", tc.to, short(r.ARN), short(cur), err, tc.want)
		}
	}
	// Roll back to the previous verified commit: no registration, the revision as it was.
	r, _, _ := FindRevision(ctx, e.api, o, "previous")
	ro := e.opts("", r.SHA)
	ro.Revision, ro.RollbackOnly, ro.TaskDefinition = r.ARN, true, nil
	regs := e.s.CallCount("RegisterTaskDefinition")
	res, err := Deploy(ctx, e.api, ro)
	if err != nil || res.SHA != sha2 || e.s.CallCount("RegisterTaskDefinition") != regs {
		e.e("rollback deploy: %v (sha %s)", err, res.SHA)
	}
	e.steadyOn(r.ARN)
}

func TestDeployNativeStrategies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		strategy string
		// staleTest / staleProd: that listener keeps answering the old commit.
		staleTest, staleProd bool
		behavior             *ecsfake.Behavior
		outcome              string
		marks                []string
		want                 string
		polls                int64 // requests to the stale listener, when exact
	}{
		{name: "blue-green", strategy: BlueGreen, outcome: deploy.Success,
			marks: []string{"stage POST_TEST_TRAFFIC_SHIFT", "verified test listener", "stage PRODUCTION_TRAFFIC_SHIFT", "stage BAKE_TIME", "verified http", "steady state"}},
		{name: "canary", strategy: Canary, outcome: deploy.Success,
			marks: []string{"verified test listener", "stage PRODUCTION_TRAFFIC_SHIFT", "stage BAKE_TIME", "steady state"}},
		{name: "linear", strategy: Linear, outcome: deploy.Success,
			marks: []string{"verified test listener", "stage PRODUCTION_TRAFFIC_SHIFT", "stage BAKE_TIME", "steady state"}},
		// The test listener reaches the new revision only: a wrong commit
		// there fails after verify.WrongCommitAnswers answers, not at the timeout.
		{name: "canary: the new revision serves another commit", strategy: Canary, staleTest: true, outcome: deploy.RolledBack,
			marks: []string{"verify failed", "rollback to api:1", "rolled back: steady on api:1"},
			want:  "serves 1111111, not 2222222 (3 answers in a row", polls: verify.WrongCommitAnswers},
		// Production may reach the previous revision: that waits for the timeout.
		{name: "blue-green: production serves the old commit in the bake time", strategy: BlueGreen, staleProd: true, outcome: deploy.RolledBack,
			marks: []string{"verified test listener", "stage BAKE_TIME", "verify failed", "rolled back: steady on api:1"},
			want:  "still serves 1111111 (want 2222222): the old version is still answering"},
		{name: "linear: crash at start", strategy: Linear, behavior: &ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 2},
			outcome: deploy.RolledBack, marks: []string{"first task failed", "rolled back: steady on api:1"}, want: "exited 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{strategy: strategyTypes[tc.strategy]})
			if tc.behavior != nil {
				e.s.SetBehavior(img2, *tc.behavior)
			}
			o := e.opts(img2, sha2)
			o.Strategy, o.TestURL = tc.strategy, e.testURL
			o.CanaryPercent, o.LinearPercent = 10, 50
			o.StepBakeTime, o.BakeTime = time.Minute, 2*time.Minute
			if tc.staleTest {
				o.TestURL = e.fixedHealth(t, sha1)
			}
			if tc.staleProd {
				o.URL = e.fixedHealth(t, sha1)
			}
			res, err := Deploy(context.Background(), e.api, o)
			if (err == nil) != (tc.outcome == deploy.Success) || res.Outcome != tc.outcome {
				e.e("Deploy = %v, outcome %s; want %s", err, res.Outcome, tc.outcome)
				return
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				e.e("error %q lacks %q", err, tc.want)
			}
			if n := e.fixedPolls.Load(); tc.polls > 0 && n != tc.polls {
				e.e("%d requests to the test listener, want %d", n, tc.polls)
			}
			got := marks(res)
			for _, m := range tc.marks {
				if !strings.Contains(got, m) {
					e.e("timeline lacks %q: %s", m, got)
				}
			}
			stops := e.s.CallCount("StopServiceDeployment")
			if tc.outcome == deploy.Success {
				e.steadyOn(res.TaskDefinition)
				if stops != 0 {
					e.e("%d StopServiceDeployment calls on a good deploy", stops)
				}
				return
			}
			// A rollback of a native deployment is ECS's own: traffic back to blue, no new deployment.
			if stops != 1 || strings.Join(e.updates(), " ") != "api:2" {
				e.e("rollback by %d StopServiceDeployment and updates %v, want 1 and [api:2]", stops, e.updates())
			}
			e.steadyOn(e.v1)
			prod, test := e.s.Traffic("default", "api")
			if prod[e.v1] != 100 || test != e.v1 {
				e.e("traffic after rollback: production %v, test %s", prod, test)
			}
		})
	}
}

// Without a strategy the service keeps its own: a blue-green service is deployed blue-green,
// with its settings untouched.
func TestDeployKeepsTheServiceStrategy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{strategy: types.DeploymentStrategyBlueGreen})
	o := e.opts(img2, sha2)
	o.TestURL = e.testURL
	res, err := Deploy(context.Background(), e.api, o)
	if err != nil {
		e.e("Deploy: %v", err)
		return
	}
	if !strings.Contains(marks(res), "verified test listener") || strings.Count(marks(res), "verified test listener") != 2 {
		e.e("not deployed blue-green: %s", marks(res))
	}
	for _, c := range e.s.Calls() {
		if in, ok := c.Input.(*ecs.UpdateServiceInput); ok && in.DeploymentConfiguration != nil {
			e.e("UpdateService changed the deployment configuration: %+v", in.DeploymentConfiguration)
		}
	}
	if got := e.service().DeploymentConfiguration.Strategy; got != types.DeploymentStrategyBlueGreen {
		e.e("strategy now %s", got)
	}
}

// A FAILED deployment left by the circuit breaker (no rollback) is over: the fix deploys at once.
func TestDeployOverAFailedDeployment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{breaker: true})
	e.s.SetBehavior(img2, ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 1})
	bad := e.opts(img2, sha2)
	bad.AutoRollback, bad.FailFast = false, aws.Bool(false)
	if _, err := Deploy(context.Background(), e.api, bad); err == nil {
		t.Fatal("the crashing revision deployed")
	}
	sha3 := "3333333ccccccccccccccccccccccccccccccccc"
	fix := e.opts(strings.Replace(img2, "2222", "3333", 1), sha3)
	fix.LockWait = 0
	res, err := Deploy(context.Background(), e.api, fix)
	if err != nil {
		e.e("deploying the fix over the failed deployment: %v", err)
		return
	}
	e.steadyOn(res.TaskDefinition)
}

// The failure's kind survives the rollback message, for callers that branch on it.
func TestFailureKindSurvivesRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	e.s.SetBehavior(img2, ecsfake.Behavior{StartAfter: 20 * time.Second, CrashAfter: time.Second, ExitCode: 1})
	_, err := Deploy(context.Background(), e.api, e.opts(img2, sha2))
	var f *Failure
	if !errors.As(err, &f) || f.Kind != KindTaskStopped || !strings.Contains(err.Error(), "rolled back to api:1") {
		t.Errorf("err = %v (%T), want a %s Failure that says it rolled back", err, err, KindTaskStopped)
	}
}
