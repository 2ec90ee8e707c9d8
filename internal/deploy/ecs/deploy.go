// Package ecs deploys to an Amazon ECS service through the ECS API: it renders
// and registers the task definition, updates the service, watches the
// deployment it created every few seconds (not the SDK waiter's 15 to 600 s
// backoff), fails fast on the first task that stops for a reason of its own,
// never reports a circuit-breaker rollback as success, gates ECS's native
// blue/green, canary and linear strategies with verify, and rolls back.
package ecs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/input"
	"github.com/gantry-dev/gantry/internal/verify"
)

// Strategies: rolling is ECS's rolling update; the others are ECS's native
// deployment strategies, which need a load balancer with advancedConfiguration.
const (
	Rolling   = "rolling"
	BlueGreen = "blue-green"
	Canary    = "canary"
	Linear    = "linear"
)

// Strategies lists the valid strategy names.
var Strategies = []string{Rolling, BlueGreen, Canary, Linear}

var strategyTypes = map[string]types.DeploymentStrategy{
	Rolling:   types.DeploymentStrategyRolling,
	BlueGreen: types.DeploymentStrategyBlueGreen,
	Canary:    types.DeploymentStrategyCanary,
	Linear:    types.DeploymentStrategyLinear,
}

// Defaults.
const (
	DefaultPollInterval = 3 * time.Second
	DefaultTimeout      = 15 * time.Minute
	// FailFastMaxDesired is the largest desired count for which fail-fast is on
	// by default: in a big service one crashing task may be a bad host.
	FailFastMaxDesired = 10
)

// ResultStarted is the outcome of a deploy that did not wait (wait: false).
const ResultStarted = "started"

// API is the part of the ECS API a deploy uses; *ecs.Client implements it.
type API interface {
	DescribeServices(context.Context, *ecs.DescribeServicesInput, ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
	DescribeTaskDefinition(context.Context, *ecs.DescribeTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.DescribeTaskDefinitionOutput, error)
	RegisterTaskDefinition(context.Context, *ecs.RegisterTaskDefinitionInput, ...func(*ecs.Options)) (*ecs.RegisterTaskDefinitionOutput, error)
	ListTaskDefinitions(context.Context, *ecs.ListTaskDefinitionsInput, ...func(*ecs.Options)) (*ecs.ListTaskDefinitionsOutput, error)
	UpdateService(context.Context, *ecs.UpdateServiceInput, ...func(*ecs.Options)) (*ecs.UpdateServiceOutput, error)
	ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	DescribeServiceDeployments(context.Context, *ecs.DescribeServiceDeploymentsInput, ...func(*ecs.Options)) (*ecs.DescribeServiceDeploymentsOutput, error)
	StopServiceDeployment(context.Context, *ecs.StopServiceDeploymentInput, ...func(*ecs.Options)) (*ecs.StopServiceDeploymentOutput, error)
	TagResource(context.Context, *ecs.TagResourceInput, ...func(*ecs.Options)) (*ecs.TagResourceOutput, error)
}

// Options is one deploy.
type Options struct {
	Cluster, Service string
	// TaskDefinition is a task definition in the ECS API's JSON; nil starts from
	// Family's latest revision, or else the service's current one.
	TaskDefinition []byte
	Family         string
	// Revision deploys this registered task definition (ARN or family:revision)
	// as it is, registering nothing: what rollback does.
	Revision string
	Render   Render
	// SHA is the commit deployed, which URL and TestURL must report.
	SHA string

	// Strategy is one of Strategies; "" keeps the service's own, with its settings.
	Strategy                              string
	MinimumHealthyPercent, MaximumPercent *int32
	// CanaryPercent and LinearPercent are the traffic steps of Canary and
	// Linear; StepBakeTime is the time at each step and BakeTime the time both
	// revisions keep running after the last shift (whole minutes, as ECS takes
	// them).
	CanaryPercent, LinearPercent float64
	StepBakeTime, BakeTime       time.Duration
	ForceNewDeployment           bool

	// Wait for the deployment to finish; false returns once the service is
	// updated.
	Wait         bool
	Timeout      time.Duration
	PollInterval time.Duration
	// FailFast fails the deploy on the first task of the new revision that
	// stops for a reason of its own; nil means on for services of up to
	// FailFastMaxDesired tasks.
	FailFast     *bool
	AutoRollback bool
	// LockWait is how long to wait for a deployment that is not ours to
	// finish before failing; gantry never stacks deployments.
	LockWait time.Duration

	// URL is the service's public health endpoint, verified once the new
	// revision serves production traffic; TestURL is the test listener's, the
	// gate of the native strategies before and between traffic shifts.
	URL, TestURL string
	// Verify checks that url serves SHA; nil skips verification. own says
	// url reaches only the new revision (the test listener), so a wrong
	// commit there is certain after a few answers (verify.Options.OwnAddress).
	Verify func(ctx context.Context, url string, own bool) (verify.Result, error)

	Clock        clock.Clock
	Logf, Warnf  func(format string, args ...any)
	RollbackOnly bool // this deploy is a rollback: its own failure is not rolled back again
}

// ContainerExit is how one container of a stopped task ended.
type ContainerExit struct {
	Name     string
	ExitCode *int32
	Reason   string
}

// StoppedTask is a task of the new revision that stopped for a reason of its
// own (it crashed, failed to start or failed its health checks).
type StoppedTask struct {
	ID, StopCode, Reason string
	Containers           []ContainerExit
}

// String describes the task's end in one line.
func (t StoppedTask) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s stopped", t.ID)
	if t.StopCode != "" {
		fmt.Fprintf(&b, " (%s)", t.StopCode)
	}
	if t.Reason != "" {
		fmt.Fprintf(&b, ": %s", t.Reason)
	}
	for _, c := range t.Containers {
		switch {
		case c.ExitCode != nil && c.Reason != "" && c.Reason != t.Reason:
			fmt.Fprintf(&b, "; container %s exited %d: %s", c.Name, *c.ExitCode, c.Reason)
		case c.ExitCode != nil:
			fmt.Fprintf(&b, "; container %s exited %d", c.Name, *c.ExitCode)
		case c.Reason != "" && c.Reason != t.Reason:
			fmt.Fprintf(&b, "; container %s: %s", c.Name, c.Reason)
		}
	}
	return b.String()
}

// Counts are a deployment's task counts.
type Counts struct{ Desired, Running, Pending, Failed int32 }

// Event is a service event ECS wrote during the deploy.
type Event struct {
	At      time.Time
	Message string
}

// Result is what a deploy did, filled in even when it failed.
type Result struct {
	// Outcome is one of history's results, or ResultStarted.
	Outcome string
	// Strategy is the strategy used, e.g. "rolling (the service's own)".
	Strategy                               string
	PreviousTaskDefinition, TaskDefinition string
	DeploymentID, ServiceDeploymentArn     string
	// Rendered is the registered task definition's JSON.
	Rendered []byte
	// SHA is the gantry.sha tag of the deployed revision, for rollback.
	SHA      string
	Timeline []deploy.Mark
	Events   []Event
	Counts   Counts
	Stopped  []StoppedTask
	// RolledBackTo is the revision the service went back to.
	RolledBackTo string
	Verified     []string // URLs verified
	Warnings     []string
}

// Failure kinds, each with its own message.
const (
	KindTaskStopped    = "task-stopped"
	KindCircuitBreaker = "circuit-breaker"
	KindRolloutFailed  = "rollout-failed"
	KindReplaced       = "replaced"
	KindScaledToZero   = "scaled-to-zero"
	KindStopped        = "stopped"
	KindTimeout        = "timeout"
	KindVerify         = "verify"
)

// Failure is why a deploy failed.
type Failure struct {
	Kind string
	Msg  string
	// ecsRollingBack: ECS itself is taking the service back (circuit breaker or
	// a stop request), so gantry waits instead of starting another deployment.
	ecsRollingBack bool
}

func (f *Failure) Error() string { return f.Msg }

type deployer struct {
	api   API
	o     Options
	res   *Result
	start time.Time

	native       bool
	keepStrategy bool // Options.Strategy was empty: the service's own settings stay
	failFast     bool
	seenEvents   map[string]bool
	seenTasks    map[string]bool
	noSD         bool // DescribeServiceDeployments unavailable (old region, IAM)
	lastCounts   string
	stage        types.ServiceDeploymentLifecycleStage
	stageN       int // lifecycle stage changes seen
	marked       map[string]bool
	gated        map[string]bool
}

// Deploy runs one deploy. The Result is filled in either way; on failure the
// service is back on (or never left) its previous revision unless
// AutoRollback is off or another deployment took over.
func Deploy(ctx context.Context, api API, o Options) (*Result, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	d := &deployer{
		api: api, o: o, res: &Result{Outcome: deploy.Failed}, start: o.Clock.Now(),
		seenEvents: map[string]bool{}, seenTasks: map[string]bool{},
		marked: map[string]bool{}, gated: map[string]bool{},
	}
	err := d.run(ctx)
	return d.res, err
}

func (d *deployer) now() time.Duration { return d.o.Clock.Now().Sub(d.start) }

func (d *deployer) mark(name string) {
	d.res.Timeline = append(d.res.Timeline, deploy.Mark{Name: name, At: d.now()})
}

func (d *deployer) markOnce(name string) {
	if !d.marked[name] {
		d.marked[name] = true
		d.mark(name)
	}
}

func (d *deployer) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.res.Warnings = append(d.res.Warnings, msg)
	d.o.Warnf("%s", msg)
}

func (d *deployer) run(ctx context.Context) error {
	o := d.o
	svc, err := d.describe(ctx)
	if err != nil {
		return err
	}
	if err := checkService(svc, o); err != nil {
		return err
	}
	d.keepStrategy = d.o.Strategy == ""
	if d.keepStrategy {
		d.o.Strategy = Rolling
		if cfg := svc.DeploymentConfiguration; cfg != nil {
			for name, st := range strategyTypes {
				if st == cfg.Strategy {
					d.o.Strategy = name
				}
			}
		}
	}
	d.native = d.o.Strategy != Rolling
	o = d.o
	d.res.Strategy = o.Strategy
	if d.keepStrategy {
		d.res.Strategy += " (the service's own)"
	}
	d.failFast = svc.DesiredCount <= FailFastMaxDesired
	if o.FailFast != nil {
		d.failFast = *o.FailFast
	}
	if d.native && o.TestURL == "" && o.Verify != nil {
		d.warn("strategy %s without test-url: nothing checks the new revision before production traffic reaches it", o.Strategy)
	}
	if svc, err = d.waitForOthers(ctx, svc); err != nil {
		return err
	}
	d.res.PreviousTaskDefinition = aws.ToString(svc.TaskDefinition)
	for _, e := range svc.Events {
		d.seenEvents[aws.ToString(e.Id)] = true
	}

	arn, err := d.taskDefinition(ctx, svc)
	if err != nil {
		return err
	}
	d.res.TaskDefinition = arn

	before := map[string]bool{}
	for _, dep := range svc.Deployments {
		before[aws.ToString(dep.Id)] = true
	}
	out, err := d.api.UpdateService(ctx, d.updateInput(arn))
	if err != nil {
		return explain("UpdateService", o, err)
	}
	dep := newDeployment(out.Service, before)
	if dep == nil {
		o.Logf("the service already runs %s: ECS started no new deployment (set force-new-deployment to replace its tasks)", short(arn))
		dep = primaryOf(out.Service)
	}
	if dep == nil {
		return fmt.Errorf("UpdateService: service %s shows no PRIMARY deployment", o.Service)
	}
	d.res.DeploymentID = aws.ToString(dep.Id)
	d.res.ServiceDeploymentArn = aws.ToString(out.Service.CurrentServiceDeployment)
	d.mark("service updated: deployment " + d.res.DeploymentID)
	o.Logf("deployment %s of %s started (strategy %s, %d tasks, fail-fast %v)", d.res.DeploymentID, short(arn), o.Strategy, out.Service.DesiredCount, d.failFast)
	if !o.Wait {
		d.res.Outcome = ResultStarted
		return nil
	}

	ferr := d.watch(ctx)
	if ferr == nil && !d.gated["bake"] { // a native deployment verified url in its bake time
		ferr = d.verifyURL(ctx, o.URL, "verified "+o.URL)
	}
	if ferr == nil {
		d.res.Outcome = deploy.Success
		d.tagVerified(ctx, arn)
		return nil
	}
	return d.recover(ctx, ferr)
}

// checkService refuses what gantry must not deploy to, before anything changes.
func checkService(svc *types.Service, o Options) error {
	if st := aws.ToString(svc.Status); st != "" && st != "ACTIVE" {
		return fmt.Errorf("service %s in cluster %s is %s, not ACTIVE", o.Service, o.Cluster, st)
	}
	if c := svc.DeploymentController; c != nil {
		switch c.Type {
		case types.DeploymentControllerTypeCodeDeploy:
			return fmt.Errorf("service %s is controlled by CodeDeploy (deploymentController CODE_DEPLOY): its deployments go through CodeDeploy (aws deploy create-deployment with an AppSpec); deploy-ecs drives ECS-controlled services, including ECS's own blue-green, canary and linear strategies", o.Service)
		case types.DeploymentControllerTypeExternal:
			return fmt.Errorf("service %s uses an EXTERNAL deployment controller, which manages task sets itself; deploy-ecs drives ECS-controlled services", o.Service)
		}
	}
	if svc.DesiredCount == 0 {
		return &Failure{Kind: KindScaledToZero, Msg: fmt.Sprintf("service %s has a desired count of 0: no task would run the new revision, so nothing could be verified; scale it up first (aws ecs update-service --desired-count N)", o.Service)}
	}
	return nil
}

func (d *deployer) describe(ctx context.Context) (*types.Service, error) {
	out, err := d.api.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(d.o.Cluster), Services: []string{d.o.Service}})
	if err != nil {
		return nil, explain("DescribeServices", d.o, err)
	}
	if len(out.Services) == 0 {
		reason := "MISSING"
		if len(out.Failures) > 0 {
			reason = aws.ToString(out.Failures[0].Reason)
		}
		return nil, fmt.Errorf("service %s not found in cluster %s (%s); check the service and cluster inputs and the region", d.o.Service, d.o.Cluster, reason)
	}
	return &out.Services[0], nil
}

// inProgress returns a deployment that is still rolling out, if any. A
// FAILED one is over: a deploy may replace it (that is how a fix ships).
func inProgress(svc *types.Service) *types.Deployment {
	for i := range svc.Deployments {
		dep := &svc.Deployments[i]
		if dep.RolloutState == types.DeploymentRolloutStateInProgress {
			return dep
		}
	}
	if p := primaryOf(svc); p != nil && p.RolloutState == "" && len(svc.Deployments) > 1 {
		return p // a service without rollout states: several deployments means one is under way
	}
	return nil
}

// waitForOthers waits up to LockWait for a deployment that is not ours.
func (d *deployer) waitForOthers(ctx context.Context, svc *types.Service) (*types.Service, error) {
	waited := false
	started := d.o.Clock.Now()
	for {
		busy := inProgress(svc)
		if busy == nil {
			if waited {
				d.o.Logf("the other deployment finished after %s", d.o.Clock.Now().Sub(started).Round(time.Second))
			}
			return svc, nil
		}
		age := ""
		if busy.CreatedAt != nil {
			age = fmt.Sprintf(", started %s ago", d.o.Clock.Now().Sub(*busy.CreatedAt).Round(time.Second))
		}
		what := fmt.Sprintf("deployment %s (task definition %s%s)", aws.ToString(busy.Id), short(aws.ToString(busy.TaskDefinition)), age)
		if d.o.Clock.Now().Sub(started) >= d.o.LockWait {
			return nil, fmt.Errorf("service %s already has %s in progress; gantry never stacks deployments: wait for it to finish, raise lock-wait (now %s), or stop it", d.o.Service, what, d.o.LockWait)
		}
		if !waited {
			waited = true
			d.o.Logf("service %s has %s in progress; waiting up to %s for it to finish", d.o.Service, what, d.o.LockWait)
			d.mark("waiting for " + aws.ToString(busy.Id))
		}
		if err := d.o.Clock.Sleep(ctx, d.o.PollInterval); err != nil {
			return nil, err
		}
		var err error
		if svc, err = d.describe(ctx); err != nil {
			return nil, err
		}
	}
}

// taskDefinition registers the rendered task definition, or resolves Revision.
func (d *deployer) taskDefinition(ctx context.Context, svc *types.Service) (string, error) {
	o := d.o
	if o.Revision != "" {
		out, err := d.api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(o.Revision), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
		if err != nil {
			return "", explain("DescribeTaskDefinition", o, err)
		}
		d.res.SHA = tagValue(out.Tags, TagSHA)
		return aws.ToString(out.TaskDefinition.TaskDefinitionArn), nil
	}
	raw := o.TaskDefinition
	if raw == nil {
		from := o.Family
		if from == "" {
			from = aws.ToString(svc.TaskDefinition)
		}
		out, err := d.api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(from), Include: []types.TaskDefinitionField{types.TaskDefinitionFieldTags}})
		if err != nil {
			return "", explain("DescribeTaskDefinition", o, err)
		}
		o.Logf("starting from task definition %s", short(aws.ToString(out.TaskDefinition.TaskDefinitionArn)))
		if raw, err = TaskDefinitionJSON(out.TaskDefinition, out.Tags); err != nil {
			return "", err
		}
	}
	in, rendered, err := RenderTaskDefinition(raw, o.Render)
	if err != nil {
		return "", &input.Error{Input: "task-definition", Msg: err.Error()}
	}
	d.res.Rendered = rendered
	d.res.SHA = o.Render.SHA
	out, err := d.api.RegisterTaskDefinition(ctx, in)
	if err != nil {
		return "", explain("RegisterTaskDefinition", o, err)
	}
	arn := aws.ToString(out.TaskDefinition.TaskDefinitionArn)
	d.mark("registered " + short(arn))
	o.Logf("registered task definition %s", arn)
	return arn, nil
}

func (d *deployer) updateInput(arn string) *ecs.UpdateServiceInput {
	o := d.o
	cfg := &types.DeploymentConfiguration{
		MinimumHealthyPercent: o.MinimumHealthyPercent,
		MaximumPercent:        o.MaximumPercent,
	}
	if d.keepStrategy {
		if cfg.MinimumHealthyPercent == nil && cfg.MaximumPercent == nil {
			cfg = nil
		}
		return &ecs.UpdateServiceInput{
			Cluster: aws.String(o.Cluster), Service: aws.String(o.Service), TaskDefinition: aws.String(arn),
			ForceNewDeployment: o.ForceNewDeployment, DeploymentConfiguration: cfg,
		}
	}
	cfg.Strategy = strategyTypes[o.Strategy]
	if d.native {
		cfg.BakeTimeInMinutes = aws.Int32(minutes(o.BakeTime))
	}
	switch o.Strategy {
	case Canary:
		cfg.CanaryConfiguration = &types.CanaryConfiguration{CanaryPercent: aws.Float64(o.CanaryPercent), CanaryBakeTimeInMinutes: aws.Int32(minutes(o.StepBakeTime))}
	case Linear:
		cfg.LinearConfiguration = &types.LinearConfiguration{StepPercent: aws.Float64(o.LinearPercent), StepBakeTimeInMinutes: aws.Int32(minutes(o.StepBakeTime))}
	}
	return &ecs.UpdateServiceInput{
		Cluster: aws.String(o.Cluster), Service: aws.String(o.Service), TaskDefinition: aws.String(arn),
		ForceNewDeployment: o.ForceNewDeployment, DeploymentConfiguration: cfg,
	}
}

func minutes(d time.Duration) int32 { return int32(d / time.Minute) }

func primaryOf(svc *types.Service) *types.Deployment {
	for i := range svc.Deployments {
		if aws.ToString(svc.Deployments[i].Status) == "PRIMARY" {
			return &svc.Deployments[i]
		}
	}
	return nil
}

// newDeployment is the PRIMARY deployment UpdateService created.
func newDeployment(svc *types.Service, before map[string]bool) *types.Deployment {
	if p := primaryOf(svc); p != nil && !before[aws.ToString(p.Id)] {
		return p
	}
	return nil
}

func findDeployment(svc *types.Service, id string) *types.Deployment {
	for i := range svc.Deployments {
		if aws.ToString(svc.Deployments[i].Id) == id {
			return &svc.Deployments[i]
		}
	}
	return nil
}

// short turns a task-definition ARN into family:revision.
func short(arn string) string {
	if i := strings.LastIndex(arn, "task-definition/"); i >= 0 {
		return arn[i+len("task-definition/"):]
	}
	return arn
}

// Short is short for callers: a task-definition ARN as family:revision.
func Short(arn string) string { return short(arn) }

// tagVerified marks the revision as deployed (and verified, when it was), so
// that rollback --to previous finds the last good one.
func (d *deployer) tagVerified(ctx context.Context, arn string) {
	now := aws.String(d.o.Clock.Now().UTC().Format(time.RFC3339))
	tags := []types.Tag{{Key: aws.String(TagDeployed), Value: now}}
	if len(d.res.Verified) > 0 {
		tags = append(tags, types.Tag{Key: aws.String(TagVerified), Value: now})
	}
	_, err := d.api.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: tags})
	if err != nil {
		d.warn("could not tag %s as verified (rollback --to previous uses the tag): %v", short(arn), explain("TagResource", d.o, err))
	}
}

// verifyURL checks url with Verify; a failure is a KindVerify Failure.
func (d *deployer) verifyURL(ctx context.Context, url, markName string) error {
	if url == "" || d.o.Verify == nil {
		return nil
	}
	// The test listener routes to the new revision only; the production URL
	// may reach the previous one while traffic shifts.
	if _, err := d.o.Verify(ctx, url, url == d.o.TestURL); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.mark("verify failed: " + url)
		return &Failure{Kind: KindVerify, Msg: fmt.Sprintf("verify %s: %v", url, err)}
	}
	d.res.Verified = append(d.res.Verified, url)
	d.mark(markName)
	return nil
}

// explain words an ECS API error with what to check.
func explain(op string, o Options, err error) error {
	var f *Failure
	if errors.As(err, &f) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return explainAPI(op, o, err)
}
