package ecsfake

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// step moves every task and service one tick forward to s.now.
func (s *Server) step() {
	for _, c := range s.opts.Clusters {
		for _, svc := range s.services[c] {
			for _, t := range svc.tasks {
				s.stepTask(svc, t)
			}
			s.schedule(svc)
		}
	}
}

func (s *Server) stepTask(svc *service, t *task) {
	if t.stopped() {
		return
	}
	if !t.alive() {
		if !s.now.Before(t.stopAt) {
			s.finishStop(t)
		}
		return
	}
	startAfter := t.b.StartAfter
	if startAfter <= 0 {
		startAfter = DefaultStartAfter
	}
	now := s.now
	if aws.ToString(t.t.LastStatus) == "PROVISIONING" && !now.Before(t.launched.Add(startAfter/2)) {
		s.setStatus(t, "PENDING")
		t.t.PullStartedAt = s.stamp()
	}
	if aws.ToString(t.t.LastStatus) == "PENDING" && !now.Before(t.launched.Add(startAfter)) {
		s.setStatus(t, "RUNNING")
		t.runningAt = now
		t.t.PullStoppedAt, t.t.StartedAt, t.t.ConnectivityAt = s.stamp(), s.stamp(), s.stamp()
		t.t.Connectivity = types.ConnectivityConnected
	}
	if !t.running() {
		return
	}
	// As on ECS, a health check reports HEALTHY once its first check passes, one interval
	// after the container started; until then the task is UNKNOWN and not yet healthy.
	if t.hasHealth && !t.b.HealthCheckFails && !t.b.crashes() && t.t.HealthStatus != types.HealthStatusHealthy && !now.Before(t.runningAt.Add(t.healthyT)) {
		t.t.HealthStatus = types.HealthStatusHealthy
		for i := range t.t.Containers {
			t.t.Containers[i].HealthStatus = types.HealthStatusHealthy
		}
	}
	switch {
	case t.b.crashes() && !now.Before(t.runningAt.Add(t.b.CrashAfter)):
		reason := t.b.Reason
		if reason == "" {
			reason = "Essential container in task exited"
		}
		s.stopTask(svc, t, types.TaskStopCodeEssentialContainerExited, reason, aws.Int32(t.b.ExitCode), t.b.Reason, true)
	case t.b.HealthCheckFails && !now.Before(t.runningAt.Add(t.unhealthyT)):
		t.t.HealthStatus = types.HealthStatusUnhealthy
		for i := range t.t.Containers {
			t.t.Containers[i].HealthStatus = types.HealthStatusUnhealthy
		}
		code := t.b.ExitCode
		if code == 0 {
			code = 137
		}
		s.stopTask(svc, t, types.TaskStopCodeServiceSchedulerInitiated, "Task failed container health checks", aws.Int32(code), "", true)
		s.event(svc, "(task %s) failed container health checks.", taskID(t))
	}
}

func (s *Server) setStatus(t *task, st string) {
	t.t.LastStatus = aws.String(st)
	t.t.Version++
	for i := range t.t.Containers {
		t.t.Containers[i].LastStatus = aws.String(st)
	}
}

func (s *Server) finishStop(t *task) {
	s.setStatus(t, "STOPPED")
	t.t.StoppedAt, t.t.ExecutionStoppedAt = s.stamp(), s.stamp()
	t.t.Connectivity = types.ConnectivityDisconnected
}

func taskID(t *task) string {
	a := aws.ToString(t.t.TaskArn)
	return a[strings.LastIndex(a, "/")+1:]
}

// stopTask stops t; failed tasks of an IN_PROGRESS PRIMARY deployment count for its circuit breaker.
func (s *Server) stopTask(svc *service, t *task, code types.TaskStopCode, reason string, exit *int32, containerReason string, failed bool) {
	t.t.StoppingAt = s.stamp()
	t.t.DesiredStatus = aws.String("STOPPED")
	t.t.StopCode = code
	t.t.StoppedReason = aws.String(reason)
	t.t.Version++
	if failed || !t.running() {
		s.finishStop(t)
	} else {
		// a scheduler-initiated stop of a running task drains for the stop timeout
		t.t.LastStatus = aws.String("STOPPING")
		t.stopAt = s.now.Add(s.opts.StopAfter)
	}
	for i := range t.t.Containers {
		c := &t.t.Containers[i]
		if t.t.StartedAt != nil {
			c.ExitCode = exit
		}
		if containerReason != "" {
			c.Reason = aws.String(containerReason)
		}
	}
	d := t.dep
	if failed && d == svc.deployments[0] && d.d.RolloutState == types.DeploymentRolloutStateInProgress {
		d.d.FailedTasks++
		d.d.UpdatedAt = s.stamp()
		if cb := d.sd.DeploymentCircuitBreaker; cb != nil {
			cb.FailureCount++
		}
		if rb := svc.svc.DeploymentConfiguration.DeploymentCircuitBreaker; rb != nil && rb.Enable &&
			d.d.FailedTasks >= threshold(svc.svc.DesiredCount) {
			s.trip(svc, d, rb.Rollback)
		}
	}
}

// trip fails deployment d by its circuit breaker and, with rollback, makes the last completed
// deployment PRIMARY again.
func (s *Server) trip(svc *service, d *deployment, rollback bool) {
	id := aws.ToString(d.d.Id)
	d.d.RolloutState = types.DeploymentRolloutStateFailed
	d.d.UpdatedAt = s.stamp()
	if cb := d.sd.DeploymentCircuitBreaker; cb != nil {
		cb.Status = types.ServiceDeploymentRollbackMonitorsStatusTriggered
	}
	d.sd.UpdatedAt = s.stamp()
	s.event(svc, "(deployment %s) deployment failed: tasks failed to start.", id)
	prev := svc.lastCompleted
	if !rollback || prev == nil || prev == d || d.rollbackOf != nil {
		d.d.RolloutStateReason = aws.String("ECS deployment circuit breaker: tasks failed to start.")
		if d.native != nil {
			d.native.halted = true
		}
		if d.rollbackOf != nil {
			d.rollbackOf.sd.Status = types.ServiceDeploymentStatusRollbackFailed
			d.rollbackOf.sd.FinishedAt = s.stamp()
			d.rollbackOf.sd.UpdatedAt = s.stamp()
			d.rollbackOf = nil
		} else {
			d.sd.Status = types.ServiceDeploymentStatusStopped
			d.sd.StatusReason = aws.String("ECS deployment circuit breaker: tasks failed to start.")
			d.sd.StoppedAt = s.stamp()
		}
		return
	}
	s.rollBack(svc, d, prev, "ECS deployment circuit breaker:",
		"Service deployment rolled back because the circuit breaker threshold was exceeded.")
}

// rollBack fails deployment d and makes prev, the last completed deployment, PRIMARY again: d's
// service deployment goes ROLLBACK_IN_PROGRESS until prev is steady. cause starts the status
// reasons ("ECS deployment circuit breaker:"); reason is the service deployment's Rollback.Reason.
// Under BLUE_GREEN, CANARY and LINEAR, production and test traffic go straight back to prev.
func (s *Server) rollBack(svc *service, d, prev *deployment, cause, reason string) {
	prevID := aws.ToString(prev.d.Id)
	why := cause + " rolling back to deploymentId " + prevID + "."
	d.stopReq = ""
	d.d.RolloutState = types.DeploymentRolloutStateFailed
	d.d.RolloutStateReason = aws.String(why)
	d.d.Status = aws.String(statusActive)
	d.d.UpdatedAt = s.stamp()
	d.sd.Status = types.ServiceDeploymentStatusRollbackInProgress
	d.sd.StatusReason = aws.String(why)
	d.sd.UpdatedAt = s.stamp()
	d.sd.Rollback = &types.Rollback{
		Reason:             aws.String(reason),
		ServiceRevisionArn: prev.sd.TargetServiceRevision.Arn,
		StartedAt:          s.stamp(),
	}
	if n := d.native; n != nil && !n.over {
		n.over, n.green, n.test = true, 0, false
		s.event(svc, "(deployment %s) production and test traffic shifted back to %s.", aws.ToString(d.d.Id), tdName(prev.td))
	}
	var rest []*deployment
	for _, o := range svc.deployments {
		if o != prev {
			rest = append(rest, o)
		}
	}
	prev.d.Status = aws.String(statusPrimary)
	prev.d.RolloutState = types.DeploymentRolloutStateInProgress
	prev.d.RolloutStateReason = aws.String("ECS deployment " + prevID + " in progress.")
	prev.d.DesiredCount = svc.svc.DesiredCount
	prev.d.FailedTasks = 0
	prev.steadySince = time.Time{}
	prev.d.UpdatedAt = s.stamp()
	prev.rollbackOf = d
	svc.deployments = append([]*deployment{prev}, rest...)
	svc.steady = false
	s.event(svc, "rolling back to deployment %s.", prevID)
}

// schedule is the service scheduler: launch the PRIMARY's missing tasks, stop surplus ones, drain
// older deployments as the PRIMARY's tasks become healthy, and mark the rollout COMPLETED.
//
// Under BLUE_GREEN, CANARY and LINEAR the PRIMARY is green: it launches its tasks from SCALE_UP on
// while blue keeps all of its tasks until CLEAN_UP, and its lifecycle, not the steady-state rule
// above, completes the rollout.
func (s *Server) schedule(svc *service) {
	s.runStopRequests(svc)
	primary := svc.deployments[0]
	desired := svc.svc.DesiredCount
	primary.d.DesiredCount = desired
	if primary.aborted {
		return // stopped where it was: tasks are left as they are
	}
	s.advanceLifecycle(svc, primary)
	n := primary.native
	inFlight := n != nil && !n.over
	var live, healthy []*task
	for _, t := range svc.tasks {
		if t.dep == primary && t.alive() {
			live = append(live, t)
			if t.healthy() {
				healthy = append(healthy, t)
			}
		}
	}
	if primary.d.RolloutState != types.DeploymentRolloutStateFailed && int32(len(live)) < desired &&
		(!inFlight || n.stage != stagePreScaleUp) {
		var ids []string
		for int32(len(live)) < desired {
			t := s.launch(svc, primary)
			live = append(live, t)
			ids = append(ids, "(task "+taskID(t)+")")
		}
		s.event(svc, "has started %d tasks: %s.", len(ids), strings.Join(ids, " "))
	}
	var stop []*task
	if extra := len(live) - int(desired); extra > 0 {
		// not yet running tasks go first
		for _, t := range live {
			if len(stop) < extra && !t.running() {
				stop = append(stop, t)
			}
		}
		for _, t := range live {
			if len(stop) < extra && t.running() {
				stop = append(stop, t)
			}
		}
	}
	keepOld := max(0, int(desired)-len(healthy))
	var old []*task
	for i := len(svc.deployments) - 1; i >= 1; i-- { // oldest deployment first
		for _, t := range svc.tasks {
			if t.dep == svc.deployments[i] && t.alive() {
				old = append(old, t)
			}
		}
	}
	if inFlight {
		// blue serves production until CLEAN_UP; any other older deployment goes at once
		keepBlue := n.stage != stageCleanUp || n.halted
		for _, t := range old {
			if t.dep != n.blue || !keepBlue {
				stop = append(stop, t)
			}
		}
	} else if k := len(old) - keepOld; k > 0 {
		for _, t := range old {
			if k > 0 && !t.running() {
				stop, k = append(stop, t), k-1
			}
		}
		for _, t := range old {
			if k > 0 && t.running() {
				stop, k = append(stop, t), k-1
			}
		}
	}
	if len(stop) > 0 {
		var ids []string
		for _, t := range stop {
			ids = append(ids, "(task "+taskID(t)+")")
			s.stopTask(svc, t, types.TaskStopCodeServiceSchedulerInitiated,
				"Scaling activity initiated by (deployment "+aws.ToString(primary.d.Id)+")", aws.Int32(0), "", false)
		}
		s.event(svc, "has stopped %d running tasks: %s.", len(ids), strings.Join(ids, " "))
	}
	// Drained older deployments leave the list; a failed one stays until the rollback completes.
	drained := func(d *deployment) bool {
		for _, t := range svc.tasks {
			if t.dep == d && !t.stopped() {
				return false
			}
		}
		return true
	}
	kept := svc.deployments[:1]
	allDrained := true
	for _, d := range svc.deployments[1:] {
		if !drained(d) {
			allDrained = false
			kept = append(kept, d)
		} else if d.d.RolloutState == types.DeploymentRolloutStateFailed && primary.d.RolloutState == types.DeploymentRolloutStateInProgress {
			kept = append(kept, d)
		}
	}
	svc.deployments = kept
	for _, d := range svc.deployments {
		s.count(svc, d)
		if d != primary {
			d.d.DesiredCount = 0
			for _, t := range svc.tasks {
				if t.dep == d && t.alive() {
					d.d.DesiredCount++
				}
			}
		}
	}
	nowHealthy := 0
	nowLive := 0
	for _, t := range svc.tasks {
		if t.dep == primary && t.alive() {
			nowLive++
			if t.healthy() {
				nowHealthy++
			}
		}
	}
	if inFlight {
		return // the lifecycle completes the rollout
	}
	if !allDrained || nowHealthy != int(desired) || nowLive != int(desired) {
		primary.steadySince = time.Time{}
		return
	}
	if primary.steadySince.IsZero() {
		primary.steadySince = s.now
	}
	if s.now.Sub(primary.steadySince) < s.opts.SteadyAfter {
		return
	}
	svc.deployments = svc.deployments[:1]
	if primary.d.RolloutState == types.DeploymentRolloutStateInProgress {
		id := aws.ToString(primary.d.Id)
		primary.d.RolloutState = types.DeploymentRolloutStateCompleted
		primary.d.RolloutStateReason = aws.String("ECS deployment " + id + " completed.")
		primary.d.UpdatedAt = s.stamp()
		svc.lastCompleted = primary
		if rb := primary.rollbackOf; rb != nil {
			rb.sd.Status = types.ServiceDeploymentStatusRollbackSuccessful
			rb.sd.FinishedAt, rb.sd.UpdatedAt = s.stamp(), s.stamp()
			primary.rollbackOf = nil
		} else if primary.sd.Status == types.ServiceDeploymentStatusInProgress {
			primary.sd.Status = types.ServiceDeploymentStatusSuccessful
			primary.sd.FinishedAt, primary.sd.UpdatedAt = s.stamp(), s.stamp()
		}
		s.event(svc, "(deployment %s) deployment completed.", id)
	}
	if !svc.steady && primary.d.RolloutState == types.DeploymentRolloutStateCompleted {
		svc.steady = true
		s.event(svc, "has reached a steady state.")
	}
}

// launch starts a task of deployment d in PROVISIONING.
func (s *Server) launch(svc *service, d *deployment) *task {
	td := d.td
	arn := fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", s.opts.Region, s.opts.Account, svc.cluster, randomHex(16))
	t := &task{dep: d, launched: s.now, b: s.behavior(td), unhealthyT: 90 * time.Second}
	t.t = types.Task{
		TaskArn:           aws.String(arn),
		ClusterArn:        svc.svc.ClusterArn,
		TaskDefinitionArn: td.TaskDefinitionArn,
		Group:             aws.String("service:" + aws.ToString(svc.svc.ServiceName)),
		StartedBy:         d.d.Id,
		LaunchType:        svc.svc.LaunchType,
		Cpu:               td.Cpu,
		Memory:            td.Memory,
		CreatedAt:         s.stamp(),
		DesiredStatus:     aws.String("RUNNING"),
		LastStatus:        aws.String("PROVISIONING"),
		HealthStatus:      types.HealthStatusUnknown,
		Version:           1,
		AvailabilityZone:  aws.String(s.opts.Region + "a"),
	}
	for _, c := range td.ContainerDefinitions {
		ct := types.Container{
			ContainerArn: aws.String(fmt.Sprintf("arn:aws:ecs:%s:%s:container/%s/%s/%s", s.opts.Region, s.opts.Account, svc.cluster, taskID(t), randomHex(16))),
			TaskArn:      aws.String(arn),
			Name:         c.Name,
			Image:        c.Image,
			LastStatus:   aws.String("PROVISIONING"),
			HealthStatus: types.HealthStatusUnknown,
		}
		if hc := c.HealthCheck; hc != nil {
			t.hasHealth = true
			interval, retries, start := int32(30), int32(3), int32(0)
			if hc.Interval != nil {
				interval = *hc.Interval
			}
			if hc.Retries != nil {
				retries = *hc.Retries
			}
			if hc.StartPeriod != nil {
				start = *hc.StartPeriod
			}
			t.unhealthyT = time.Duration(start+interval*retries) * time.Second
			t.healthyT = time.Duration(interval) * time.Second
		}
		t.t.Containers = append(t.t.Containers, ct)
	}
	svc.tasks = append(svc.tasks, t)
	s.tasks[arn] = t
	return t
}

func (s *Server) behavior(td *types.TaskDefinition) Behavior {
	if b, ok := s.behaviors[fmt.Sprintf("%s:%d", aws.ToString(td.Family), td.Revision)]; ok {
		return b
	}
	for _, c := range td.ContainerDefinitions {
		if b, ok := s.behaviors[aws.ToString(c.Image)]; ok {
			return b
		}
	}
	return s.opts.Default
}

func (s *Server) listTasks(in *ecs.ListTasksInput) (any, *apiError) {
	cluster, e := s.cluster(in.Cluster)
	if e != nil {
		return nil, e
	}
	var tasks []*task
	if name := aws.ToString(in.ServiceName); name != "" {
		svc := s.lookupService(cluster, name)
		if svc == nil {
			return nil, errorf(CodeServiceNotFound, "Service not found.")
		}
		tasks = svc.tasks
	} else {
		for _, svc := range s.services[cluster] {
			tasks = append(tasks, svc.tasks...)
		}
	}
	want := string(in.DesiredStatus)
	if want == "" {
		want = "RUNNING"
	}
	var arns []string
	for _, t := range tasks {
		if aws.ToString(t.t.DesiredStatus) != want {
			continue
		}
		if f := aws.ToString(in.Family); f != "" && aws.ToString(t.dep.td.Family) != f {
			continue
		}
		if by := aws.ToString(in.StartedBy); by != "" && aws.ToString(t.t.StartedBy) != by {
			continue
		}
		arns = append(arns, aws.ToString(t.t.TaskArn))
	}
	page, next, e := paginate(arns, in.NextToken, in.MaxResults)
	if e != nil {
		return nil, e
	}
	out := &ecs.ListTasksOutput{TaskArns: page, NextToken: next}
	return out, nil
}

func (s *Server) describeTasks(in *ecs.DescribeTasksInput) (any, *apiError) {
	cluster, e := s.cluster(in.Cluster)
	if e != nil {
		return nil, e
	}
	if len(in.Tasks) == 0 {
		return nil, errorf(CodeInvalidParameter, "Tasks cannot be empty.")
	}
	if len(in.Tasks) > 100 {
		return nil, errorf(CodeInvalidParameter, "Tasks can have at most 100 items.")
	}
	out := &ecs.DescribeTasksOutput{Tasks: []types.Task{}, Failures: []types.Failure{}}
	for _, ref := range in.Tasks {
		arn := ref
		if !strings.HasPrefix(ref, "arn:") {
			arn = fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", s.opts.Region, s.opts.Account, cluster, ref)
		}
		t := s.tasks[arn]
		if t == nil {
			out.Failures = append(out.Failures, types.Failure{Arn: aws.String(arn), Reason: aws.String("MISSING")})
			continue
		}
		tt := t.t
		tt.Containers = append([]types.Container(nil), t.t.Containers...)
		out.Tasks = append(out.Tasks, tt)
	}
	return out, nil
}

// paginate answers one page of a List call: nextToken is the index of the page's first item,
// maxResults 1 to 100 (default 100).
func paginate(items []string, nextToken *string, maxResults *int32) ([]string, *string, *apiError) {
	start := 0
	if tok := aws.ToString(nextToken); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(items) {
			return nil, nil, errorf(CodeInvalidParameter, "Invalid nextToken.")
		}
		start = n
	}
	size := int(aws.ToInt32(maxResults))
	if maxResults != nil && (size < 1 || size > 100) {
		return nil, nil, errorf(CodeInvalidParameter, "maxResults must be between 1 and 100.")
	}
	if size == 0 {
		size = 100
	}
	end := min(start+size, len(items))
	var next *string
	if end < len(items) {
		next = aws.String(strconv.Itoa(end))
	}
	return append([]string{}, items[start:end]...), next, nil
}
