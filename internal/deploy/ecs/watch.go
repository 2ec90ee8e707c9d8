package ecs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/gantry-dev/gantry/internal/deploy"
)

// stageOrder is the order of a native deployment's lifecycle stages.
var stageOrder = []types.ServiceDeploymentLifecycleStage{
	types.ServiceDeploymentLifecycleStageReconcileService,
	types.ServiceDeploymentLifecycleStagePreScaleUp,
	types.ServiceDeploymentLifecycleStageScaleUp,
	types.ServiceDeploymentLifecycleStagePostScaleUp,
	types.ServiceDeploymentLifecycleStageTestTrafficShift,
	types.ServiceDeploymentLifecycleStagePostTestTrafficShift,
	types.ServiceDeploymentLifecycleStage("PRE_PRODUCTION_TRAFFIC_SHIFT"), // documented, not in the SDK's enum
	types.ServiceDeploymentLifecycleStageProductionTrafficShift,
	types.ServiceDeploymentLifecycleStagePostProductionTrafficShift,
	types.ServiceDeploymentLifecycleStageBakeTime,
	types.ServiceDeploymentLifecycleStageCleanUp,
}

func stageIndex(s types.ServiceDeploymentLifecycleStage) int { return slices.Index(stageOrder, s) }

// watch polls the service until the deployment this deploy started is steady,
// or fails with the first reason it sees.
func (d *deployer) watch(ctx context.Context) error {
	o := d.o
	deadline := d.o.Clock.Now().Add(o.Timeout)
	id := d.res.DeploymentID
	for {
		svc, err := d.describe(ctx)
		if err != nil {
			return err
		}
		d.events(svc)
		dep := findDeployment(svc, id)
		primary := primaryOf(svc)
		sd := d.serviceDeployment(ctx)
		if dep != nil {
			d.track(svc, dep)
		}
		if sd != nil {
			d.trackStage(sd)
		}
		// Stopped tasks are read even without fail-fast: their reasons explain a circuit breaker.
		if f, err := d.checkTasks(ctx, id); err != nil {
			return err
		} else if f != nil && d.failFast {
			return f
		}
		if f := d.judge(svc, dep, primary, sd); f != nil {
			return f
		}
		if steady(svc, dep, sd) {
			d.markOnce("steady state")
			o.Logf("deployment %s is steady: %d of %d tasks running %s", id, dep.RunningCount, dep.DesiredCount, short(d.res.TaskDefinition))
			return nil
		}
		if d.native && sd != nil {
			if f := d.gate(ctx, sd); f != nil {
				return f
			}
		}
		if !d.o.Clock.Now().Before(deadline) {
			c := d.res.Counts
			return &Failure{Kind: KindTimeout, Msg: fmt.Sprintf("deployment %s not steady after %s: %d of %d tasks running, %d pending, %d failed; raise timeout if the service needs longer to start", id, o.Timeout, c.Running, c.Desired, c.Pending, c.Failed)}
		}
		if err := d.o.Clock.Sleep(ctx, o.PollInterval); err != nil {
			return err
		}
	}
}

// judge turns what ECS reports into a Failure, each cause with its own message.
func (d *deployer) judge(svc *types.Service, dep, primary *types.Deployment, sd *types.ServiceDeployment) *Failure {
	id := d.res.DeploymentID
	if sd != nil {
		reason := aws.ToString(sd.StatusReason)
		if sd.Rollback != nil && aws.ToString(sd.Rollback.Reason) != "" {
			reason = aws.ToString(sd.Rollback.Reason)
		}
		switch sd.Status {
		case types.ServiceDeploymentStatusRollbackRequested, types.ServiceDeploymentStatusRollbackInProgress,
			types.ServiceDeploymentStatusRollbackSuccessful, types.ServiceDeploymentStatusRollbackFailed:
			kind := KindStopped
			msg := fmt.Sprintf("deployment %s is being rolled back by ECS (%s): %s", id, sd.Status, reason)
			if isCircuitBreaker(reason) || (sd.DeploymentCircuitBreaker != nil && sd.DeploymentCircuitBreaker.Status == types.ServiceDeploymentRollbackMonitorsStatusTriggered) {
				kind = KindCircuitBreaker
				msg = fmt.Sprintf("the ECS deployment circuit breaker failed deployment %s and is rolling back (%s): %s", id, sd.Status, reason)
			}
			return &Failure{Kind: kind, Msg: msg + d.lastStop(), ecsRollingBack: true}
		case types.ServiceDeploymentStatusStopped, types.ServiceDeploymentStatusStopRequested:
			if strings.Contains(reason, "newer service deployment") && primary != nil {
				return d.replaced(primary)
			}
			if isCircuitBreaker(reason) {
				return &Failure{Kind: KindCircuitBreaker, Msg: fmt.Sprintf("the ECS deployment circuit breaker stopped deployment %s (no rollback configured): %s", id, reason) + d.lastStop()}
			}
			return &Failure{Kind: KindStopped, Msg: fmt.Sprintf("deployment %s was stopped (%s): %s", id, sd.Status, reason)}
		}
	}
	if dep != nil && dep.RolloutState == types.DeploymentRolloutStateFailed {
		reason := aws.ToString(dep.RolloutStateReason)
		if isCircuitBreaker(reason) {
			rollingBack := strings.Contains(reason, "rolling back")
			what := "failed"
			if rollingBack {
				what = "failed and is rolling back"
			}
			return &Failure{Kind: KindCircuitBreaker, Msg: fmt.Sprintf("the ECS deployment circuit breaker %s deployment %s after %d failed tasks: %s", what, id, dep.FailedTasks, reason) + d.lastStop(), ecsRollingBack: rollingBack}
		}
		return &Failure{Kind: KindRolloutFailed, Msg: fmt.Sprintf("ECS reports deployment %s FAILED: %s", id, reason) + d.lastStop()}
	}
	if primary != nil && aws.ToString(primary.Id) != id {
		if dep != nil && dep.RolloutState == types.DeploymentRolloutStateFailed {
			return nil // handled above
		}
		return d.replaced(primary)
	}
	if dep == nil {
		return &Failure{Kind: KindReplaced, Msg: fmt.Sprintf("deployment %s is gone from service %s and no other deployment is PRIMARY", id, d.o.Service)}
	}
	if svc.DesiredCount == 0 {
		return &Failure{Kind: KindScaledToZero, Msg: fmt.Sprintf("service %s was scaled to a desired count of 0 during the deploy: no task runs the new revision", d.o.Service)}
	}
	return nil
}

func (d *deployer) replaced(primary *types.Deployment) *Failure {
	return &Failure{Kind: KindReplaced, Msg: fmt.Sprintf("another deployment replaced ours: %s (task definition %s) is now PRIMARY instead of %s; someone or something else updated service %s during the deploy (use a concurrency group in the workflow)",
		aws.ToString(primary.Id), short(aws.ToString(primary.TaskDefinition)), d.res.DeploymentID, d.o.Service)}
}

// lastStop appends the last stopped task's reason, the real cause behind a
// circuit breaker.
func (d *deployer) lastStop() string {
	if n := len(d.res.Stopped); n > 0 {
		return "; last failure: " + d.res.Stopped[n-1].String()
	}
	return ""
}

func isCircuitBreaker(reason string) bool {
	return strings.Contains(strings.ToLower(reason), "circuit breaker")
}

// steady reports whether the deployment is done: ECS says COMPLETED (or, for a
// service without rollout states, one deployment with every task running).
func steady(svc *types.Service, dep *types.Deployment, sd *types.ServiceDeployment) bool {
	if dep == nil || aws.ToString(dep.Status) != "PRIMARY" || dep.RunningCount != dep.DesiredCount {
		return false
	}
	if sd != nil && sd.Status != "" && sd.Status != types.ServiceDeploymentStatusSuccessful {
		return false
	}
	if len(svc.Deployments) != 1 {
		return false
	}
	switch dep.RolloutState {
	case types.DeploymentRolloutStateCompleted:
		return true
	case "":
		return dep.PendingCount == 0
	}
	return false
}

// serviceDeployment describes this deploy's service deployment, or returns nil
// where the API is unavailable.
func (d *deployer) serviceDeployment(ctx context.Context) *types.ServiceDeployment {
	if d.noSD || d.res.ServiceDeploymentArn == "" {
		return nil
	}
	out, err := d.api.DescribeServiceDeployments(ctx, &ecs.DescribeServiceDeploymentsInput{ServiceDeploymentArns: []string{d.res.ServiceDeploymentArn}})
	if err != nil {
		if ctx.Err() == nil {
			d.noSD = true
			d.warn("DescribeServiceDeployments is unavailable (%v); watching the service's deployments only", explain("DescribeServiceDeployments", d.o, err))
		}
		return nil
	}
	if len(out.ServiceDeployments) == 0 {
		return nil
	}
	return &out.ServiceDeployments[0]
}

// events logs and keeps each new service event once, oldest first.
func (d *deployer) events(svc *types.Service) {
	var fresh []types.ServiceEvent
	for _, e := range svc.Events { // newest first
		id := aws.ToString(e.Id)
		if d.seenEvents[id] {
			continue
		}
		d.seenEvents[id] = true
		fresh = append(fresh, e)
	}
	for i := len(fresh) - 1; i >= 0; i-- {
		e := fresh[i]
		d.res.Events = append(d.res.Events, Event{At: aws.ToTime(e.CreatedAt), Message: aws.ToString(e.Message)})
		d.o.Logf("event: %s", aws.ToString(e.Message))
	}
}

// track records task counts and the timeline's task milestones.
func (d *deployer) track(svc *types.Service, dep *types.Deployment) {
	c := Counts{Desired: dep.DesiredCount, Running: dep.RunningCount, Pending: dep.PendingCount, Failed: dep.FailedTasks}
	d.res.Counts = c
	line := fmt.Sprintf("%d/%d running, %d pending, %d failed", c.Running, c.Desired, c.Pending, c.Failed)
	if line != d.lastCounts {
		d.lastCounts = line
		d.o.Logf("deployment %s: %s (%s)", d.res.DeploymentID, line, dep.RolloutState)
	}
	if c.Running > 0 {
		d.markOnce("first task running")
	}
	if c.Desired > 0 && c.Running == c.Desired {
		d.markOnce(fmt.Sprintf("all %d tasks running", c.Desired))
	}
}

func (d *deployer) trackStage(sd *types.ServiceDeployment) {
	if sd.LifecycleStage == "" || sd.LifecycleStage == d.stage {
		return
	}
	d.stage = sd.LifecycleStage
	d.stageN++
	d.mark("stage " + string(sd.LifecycleStage))
	d.o.Logf("deployment %s: lifecycle stage %s", d.res.DeploymentID, sd.LifecycleStage)
}

// gate verifies the new revision as the native strategies shift traffic: the
// test listener once it routes to the new revision and again at each
// production shift, and the production URL during the bake time, while the
// previous revision still runs and a rollback is instant.
func (d *deployer) gate(ctx context.Context, sd *types.ServiceDeployment) error {
	if sd.Status != types.ServiceDeploymentStatusInProgress {
		return nil
	}
	i := stageIndex(sd.LifecycleStage)
	key := fmt.Sprintf("%s#%d", sd.LifecycleStage, d.stageN) // once per traffic step
	switch {
	case i >= stageIndex(types.ServiceDeploymentLifecycleStageBakeTime):
		if d.o.URL != "" && !d.gated["bake"] {
			d.gated["bake"] = true
			return d.verifyURL(ctx, d.o.URL, "verified "+d.o.URL)
		}
	case sd.LifecycleStage == types.ServiceDeploymentLifecycleStageProductionTrafficShift:
		if d.o.TestURL != "" && !d.gated[key] {
			d.gated[key] = true
			return d.verifyURL(ctx, d.o.TestURL, "verified test listener "+d.o.TestURL)
		}
	case i >= stageIndex(types.ServiceDeploymentLifecycleStagePostTestTrafficShift):
		if d.o.TestURL != "" && !d.gated["test"] {
			d.gated["test"] = true
			return d.verifyURL(ctx, d.o.TestURL, "verified test listener "+d.o.TestURL)
		}
	}
	return nil
}

// checkTasks looks at the tasks of deployment id that stopped since the last
// poll and returns a Failure for the first that stopped for a reason of its
// own.
func (d *deployer) checkTasks(ctx context.Context, id string) (*Failure, error) {
	var arns []string
	in := &ecs.ListTasksInput{Cluster: aws.String(d.o.Cluster), StartedBy: aws.String(id), DesiredStatus: types.DesiredStatusStopped}
	for {
		out, err := d.api.ListTasks(ctx, in)
		if err != nil {
			return nil, explain("ListTasks", d.o, err)
		}
		for _, a := range out.TaskArns {
			if !d.seenTasks[a] {
				arns = append(arns, a)
			}
		}
		if out.NextToken == nil || len(arns) >= 100 {
			break
		}
		in.NextToken = out.NextToken
	}
	if len(arns) == 0 {
		return nil, nil
	}
	out, err := d.api.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(d.o.Cluster), Tasks: arns[:min(len(arns), 100)]})
	if err != nil {
		return nil, explain("DescribeTasks", d.o, err)
	}
	var first *Failure
	for _, t := range out.Tasks {
		if aws.ToString(t.LastStatus) == "STOPPED" {
			d.seenTasks[aws.ToString(t.TaskArn)] = true
		}
		if !failedTask(t) {
			continue
		}
		d.seenTasks[aws.ToString(t.TaskArn)] = true
		st := stoppedTask(t)
		d.res.Stopped = append(d.res.Stopped, st)
		d.markOnce("first task failed")
		d.o.Logf("deployment %s: %s", id, st)
		if first == nil {
			first = &Failure{Kind: KindTaskStopped, Msg: fmt.Sprintf("a task of the new revision %s failed: %s", short(d.res.TaskDefinition), st)}
		}
	}
	return first, nil
}

// failedTask reports whether t stopped for a reason of its own rather than
// being scaled in or replaced by the scheduler.
func failedTask(t types.Task) bool {
	if aws.ToString(t.DesiredStatus) != "STOPPED" {
		return false
	}
	reason := strings.ToLower(aws.ToString(t.StoppedReason))
	switch {
	case t.StopCode == types.TaskStopCodeTaskFailedToStart, t.StopCode == types.TaskStopCodeEssentialContainerExited:
		return true
	case strings.Contains(reason, "health check"):
		return true
	case strings.Contains(reason, "cannotpull"), strings.Contains(reason, "resourceinitializationerror"):
		return true
	}
	return false
}

func stoppedTask(t types.Task) StoppedTask {
	arn := aws.ToString(t.TaskArn)
	st := StoppedTask{ID: arn[strings.LastIndex(arn, "/")+1:], StopCode: string(t.StopCode), Reason: aws.ToString(t.StoppedReason)}
	for _, c := range t.Containers {
		if c.ExitCode == nil && aws.ToString(c.Reason) == "" {
			continue
		}
		st.Containers = append(st.Containers, ContainerExit{Name: aws.ToString(c.Name), ExitCode: c.ExitCode, Reason: aws.ToString(c.Reason)})
	}
	return st
}

// recover handles a failed deploy: wait for ECS's own rollback, or roll back
// to the previous revision, and report the failure with the outcome.
func (d *deployer) recover(ctx context.Context, err error) error {
	var f *Failure
	if !errors.As(err, &f) || ctx.Err() != nil {
		// An API error or a cancelled step: say so, and try to leave the service
		// as it was when the failure happened mid-deploy.
		if ctx.Err() != nil {
			ctx = context.WithoutCancel(ctx)
		}
		if d.res.DeploymentID == "" || d.o.RollbackOnly || !d.o.AutoRollback {
			return err
		}
		f = &Failure{Kind: KindStopped, Msg: err.Error()}
	}
	d.mark("failed: " + f.Kind)
	o := d.o
	prev := d.res.PreviousTaskDefinition
	switch {
	case f.Kind == KindReplaced:
		return f
	case f.ecsRollingBack:
		o.Logf("ECS is rolling the service back; waiting for it")
		if werr := d.waitSteady(ctx, prev); werr != nil {
			return fmt.Errorf("%w; and ECS's rollback did not finish: %v", f, werr)
		}
		d.res.Outcome, d.res.RolledBackTo = deploy.RolledBack, prev
		return fmt.Errorf("%w; ECS rolled back to %s", f, short(prev))
	case o.RollbackOnly:
		return f
	case !o.AutoRollback:
		d.res.Outcome = deploy.Abandoned
		d.warn("auto-rollback is off: service %s is left on deployment %s (%s) for debugging", o.Service, d.res.DeploymentID, short(d.res.TaskDefinition))
		return f
	case prev == "" || prev == d.res.TaskDefinition:
		return fmt.Errorf("%w; there is no previous revision to roll back to", f)
	}
	d.mark("rollback to " + short(prev))
	if d.native && d.res.ServiceDeploymentArn != "" && !d.noSD {
		o.Logf("stopping deployment %s with a rollback: traffic goes back to %s", d.res.DeploymentID, short(prev))
		_, serr := d.api.StopServiceDeployment(ctx, &ecs.StopServiceDeploymentInput{ServiceDeploymentArn: aws.String(d.res.ServiceDeploymentArn), StopType: types.StopServiceDeploymentStopTypeRollback})
		if serr == nil {
			if werr := d.waitSteady(ctx, prev); werr != nil {
				return fmt.Errorf("%w; and the rollback to %s did not finish: %v", f, short(prev), werr)
			}
			d.res.Outcome, d.res.RolledBackTo = deploy.RolledBack, prev
			return fmt.Errorf("%w; rolled back to %s", f, short(prev))
		}
		o.Logf("StopServiceDeployment refused (%v); updating the service back to %s instead", explain("StopServiceDeployment", o, serr), short(prev))
	}
	o.Logf("rolling back: updating service %s to %s", o.Service, short(prev))
	in := d.updateInput(prev)
	in.ForceNewDeployment = false
	if _, uerr := d.api.UpdateService(ctx, in); uerr != nil {
		return fmt.Errorf("%w; and the rollback to %s failed: %v", f, short(prev), explain("UpdateService", o, uerr))
	}
	if werr := d.waitSteady(ctx, prev); werr != nil {
		return fmt.Errorf("%w; and the rollback to %s did not finish: %v", f, short(prev), werr)
	}
	d.res.Outcome, d.res.RolledBackTo = deploy.RolledBack, prev
	return fmt.Errorf("%w; rolled back to %s", f, short(prev))
}

// waitSteady waits until the service runs only revision arn, steady.
func (d *deployer) waitSteady(ctx context.Context, arn string) error {
	deadline := d.o.Clock.Now().Add(d.o.Timeout)
	for {
		svc, err := d.describe(ctx)
		if err != nil {
			return err
		}
		d.events(svc)
		p := primaryOf(svc)
		if p != nil && aws.ToString(p.TaskDefinition) == arn && len(svc.Deployments) == 1 && p.RunningCount == p.DesiredCount &&
			(p.RolloutState == types.DeploymentRolloutStateCompleted || (p.RolloutState == "" && p.PendingCount == 0)) {
			d.mark("rolled back: steady on " + short(arn))
			d.o.Logf("the service is steady again on %s (%d tasks)", short(arn), p.RunningCount)
			return nil
		}
		if p != nil && aws.ToString(p.TaskDefinition) != arn && aws.ToString(p.Id) != d.res.DeploymentID {
			return fmt.Errorf("deployment %s (%s) took over the service", aws.ToString(p.Id), short(aws.ToString(p.TaskDefinition)))
		}
		if sd := d.serviceDeployment(ctx); sd != nil && sd.Status == types.ServiceDeploymentStatusRollbackFailed {
			return fmt.Errorf("ECS reports ROLLBACK_FAILED: %s", aws.ToString(sd.StatusReason))
		}
		if !d.o.Clock.Now().Before(deadline) {
			return fmt.Errorf("not steady on %s after %s", short(arn), d.o.Timeout)
		}
		if err := d.o.Clock.Sleep(ctx, d.o.PollInterval); err != nil {
			return err
		}
	}
}
