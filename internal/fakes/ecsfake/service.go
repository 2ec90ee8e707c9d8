package ecsfake

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Deployment statuses and rollout reasons as ECS words them.
const (
	statusPrimary = "PRIMARY"
	statusActive  = "ACTIVE"
	maxEvents     = 100
)

type service struct {
	svc           types.Service // static members; counts, deployments and events are filled in by view
	cluster       string
	deployments   []*deployment // PRIMARY first, then ACTIVE newest first
	events        []types.ServiceEvent
	tasks         []*task
	lastCompleted *deployment
	steady        bool
}

type deployment struct {
	d  types.Deployment
	sd types.ServiceDeployment
	td *types.TaskDefinition
	// native is the lifecycle of a BLUE_GREEN, CANARY or LINEAR deployment; nil under ROLLING.
	native *lifecycle
	// stopReq is a StopServiceDeployment request ECS has accepted and acts on at stopAt.
	stopReq types.StopServiceDeploymentStopType
	stopAt  time.Time
	// aborted is set once StopServiceDeployment stops the deployment where it is: the scheduler
	// then leaves the service's tasks alone until the next deployment.
	aborted bool
	// rollbackOf is the failed deployment whose circuit breaker made this one PRIMARY again.
	rollbackOf *deployment
	// steadySince is when the deployment last reached its desired healthy tasks with older
	// deployments drained.
	steadySince time.Time
}

type task struct {
	t          types.Task
	dep        *deployment
	b          Behavior
	launched   time.Time
	runningAt  time.Time
	hasHealth  bool
	healthyT   time.Duration // RUNNING to HEALTHY: the health check's interval
	unhealthyT time.Duration
	stopAt     time.Time
}

func (t *task) stopped() bool { return aws.ToString(t.t.LastStatus) == "STOPPED" }
func (t *task) running() bool { return aws.ToString(t.t.LastStatus) == "RUNNING" }
func (t *task) alive() bool   { return aws.ToString(t.t.DesiredStatus) == "RUNNING" }
func (t *task) healthy() bool {
	if t.hasHealth { // the scheduler waits for a container health check to pass
		return t.alive() && t.running() && t.t.HealthStatus == types.HealthStatusHealthy
	}
	return t.alive() && t.running()
}

func (s *Server) clusterArn(c string) string {
	return fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", s.opts.Region, s.opts.Account, c)
}

// cluster resolves a cluster name or ARN; "" is the default cluster.
func (s *Server) cluster(ref *string) (string, *apiError) {
	c := aws.ToString(ref)
	if c == "" {
		c = DefaultCluster
	}
	if i := strings.LastIndex(c, ":cluster/"); i >= 0 {
		c = c[i+len(":cluster/"):]
	}
	if !s.clusters[c] {
		return "", errorf(CodeClusterNotFound, "Cluster not found.")
	}
	return c, nil
}

func (s *Server) lookupService(cluster, ref string) *service {
	if i := strings.LastIndex(ref, "/"); i >= 0 && strings.HasPrefix(ref, "arn:") {
		ref = ref[i+1:]
	}
	return s.services[cluster][ref]
}

func (s *Server) stamp() *time.Time { t := s.now; return &t }

func (s *Server) event(svc *service, format string, a ...any) {
	msg := fmt.Sprintf("(service %s) ", aws.ToString(svc.svc.ServiceName)) + fmt.Sprintf(format, a...)
	svc.events = append([]types.ServiceEvent{{Id: aws.String(uuid()), CreatedAt: s.stamp(), Message: aws.String(msg)}}, svc.events...)
	if len(svc.events) > maxEvents {
		svc.events = svc.events[:maxEvents]
	}
}

// threshold is the circuit breaker's failed-task threshold: half the desired count, 3 to 200.
func threshold(desired int32) int32 {
	return int32(min(max(math.Ceil(0.5*float64(desired)), 3), 200))
}

func (s *Server) createService(in *ecs.CreateServiceInput) (any, *apiError) {
	cluster, e := s.cluster(in.Cluster)
	if e != nil {
		return nil, e
	}
	name := aws.ToString(in.ServiceName)
	if name == "" {
		return nil, errorf(CodeInvalidParameter, "Service name cannot be empty.")
	}
	if s.services[cluster][name] != nil {
		return nil, errorf(CodeInvalidParameter, "Creation of service was not idempotent.")
	}
	td := s.resolveTaskDef(aws.ToString(in.TaskDefinition), true)
	if td == nil {
		return nil, errorf(CodeClient, "TaskDefinition not found.")
	}
	desired := aws.ToInt32(in.DesiredCount)
	if desired < 0 {
		return nil, errorf(CodeInvalidParameter, "Desired count must be at least 0.")
	}
	cfg := &types.DeploymentConfiguration{
		MaximumPercent:           aws.Int32(200),
		MinimumHealthyPercent:    aws.Int32(100),
		DeploymentCircuitBreaker: &types.DeploymentCircuitBreaker{},
		Strategy:                 types.DeploymentStrategyRolling,
	}
	mergeConfig(cfg, in.DeploymentConfiguration)
	if e := validateStrategy(cfg, in.LoadBalancers); e != nil {
		return nil, e
	}
	svc := &service{cluster: cluster, svc: types.Service{
		ServiceArn:                    aws.String(fmt.Sprintf("arn:aws:ecs:%s:%s:service/%s/%s", s.opts.Region, s.opts.Account, cluster, name)),
		ServiceName:                   aws.String(name),
		ClusterArn:                    aws.String(s.clusterArn(cluster)),
		Status:                        aws.String("ACTIVE"),
		DesiredCount:                  desired,
		LaunchType:                    in.LaunchType,
		CapacityProviderStrategy:      in.CapacityProviderStrategy,
		PlatformVersion:               in.PlatformVersion,
		DeploymentConfiguration:       cfg,
		DeploymentController:          controller(in.DeploymentController),
		SchedulingStrategy:            types.SchedulingStrategyReplica,
		NetworkConfiguration:          in.NetworkConfiguration,
		LoadBalancers:                 in.LoadBalancers,
		HealthCheckGracePeriodSeconds: in.HealthCheckGracePeriodSeconds,
		EnableExecuteCommand:          in.EnableExecuteCommand,
		EnableECSManagedTags:          in.EnableECSManagedTags,
		PropagateTags:                 in.PropagateTags,
		Tags:                          in.Tags,
		CreatedAt:                     s.stamp(),
		CreatedBy:                     aws.String(fmt.Sprintf("arn:aws:iam::%s:role/deploy", s.opts.Account)),
	}}
	if svc.svc.LaunchType == "" && len(svc.svc.CapacityProviderStrategy) == 0 {
		svc.svc.LaunchType = types.LaunchTypeEc2
	}
	s.services[cluster][name] = svc
	s.deploy(svc, td)
	s.schedule(svc)
	return &ecs.CreateServiceOutput{Service: s.view(svc)}, nil
}

func mergeConfig(dst, src *types.DeploymentConfiguration) {
	if src == nil {
		return
	}
	if src.MaximumPercent != nil {
		dst.MaximumPercent = src.MaximumPercent
	}
	if src.MinimumHealthyPercent != nil {
		dst.MinimumHealthyPercent = src.MinimumHealthyPercent
	}
	if src.DeploymentCircuitBreaker != nil {
		cb := *src.DeploymentCircuitBreaker
		dst.DeploymentCircuitBreaker = &cb
	}
	if src.Alarms != nil {
		dst.Alarms = src.Alarms
	}
	if src.Strategy != "" {
		dst.Strategy = src.Strategy
	}
	if src.BakeTimeInMinutes != nil {
		dst.BakeTimeInMinutes = src.BakeTimeInMinutes
	}
	if src.CanaryConfiguration != nil {
		c := *src.CanaryConfiguration
		dst.CanaryConfiguration = &c
	}
	if src.LinearConfiguration != nil {
		l := *src.LinearConfiguration
		dst.LinearConfiguration = &l
	}
}

// UpdateByOther applies an UpdateService as if another person or pipeline made it (it is not
// recorded in Calls and ignores faults): the way to start a concurrent deployment.
func (s *Server) UpdateByOther(in *ecs.UpdateServiceInput) (*types.Service, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, e := s.updateService(in)
	if e != nil {
		return nil, e
	}
	return svc, nil
}

func (s *Server) updateService(in *ecs.UpdateServiceInput) (*types.Service, *apiError) {
	cluster, e := s.cluster(in.Cluster)
	if e != nil {
		return nil, e
	}
	svc := s.lookupService(cluster, aws.ToString(in.Service))
	if svc == nil {
		return nil, errorf(CodeServiceNotFound, "Service not found.")
	}
	primary := svc.deployments[0]
	td := primary.td
	if ref := aws.ToString(in.TaskDefinition); ref != "" {
		td = s.resolveTaskDef(ref, false)
		if td == nil {
			return nil, errorf(CodeClient, "TaskDefinition not found.")
		}
		if td.Status != types.TaskDefinitionStatusActive {
			return nil, errorf(CodeClient, "TaskDefinition is inactive")
		}
	}
	if in.DesiredCount != nil && *in.DesiredCount < 0 {
		return nil, errorf(CodeInvalidParameter, "Desired count must be at least 0.")
	}
	cfg := *svc.svc.DeploymentConfiguration
	mergeConfig(&cfg, in.DeploymentConfiguration)
	lbs := svc.svc.LoadBalancers
	if in.LoadBalancers != nil {
		lbs = in.LoadBalancers
	}
	if e := validateStrategy(&cfg, lbs); e != nil {
		return nil, e
	}
	svc.svc.DeploymentConfiguration = &cfg
	svc.svc.LoadBalancers = lbs
	if in.DesiredCount != nil {
		if *in.DesiredCount != svc.svc.DesiredCount {
			svc.steady = false
		}
		svc.svc.DesiredCount = *in.DesiredCount
		primary.d.DesiredCount = *in.DesiredCount
	}
	if in.NetworkConfiguration != nil {
		svc.svc.NetworkConfiguration = in.NetworkConfiguration
	}
	if in.HealthCheckGracePeriodSeconds != nil {
		svc.svc.HealthCheckGracePeriodSeconds = in.HealthCheckGracePeriodSeconds
	}
	if td != primary.td || in.ForceNewDeployment {
		s.deploy(svc, td)
	}
	s.schedule(svc)
	return s.view(svc), nil
}

// deploy starts a new PRIMARY deployment of td; the previous PRIMARY becomes ACTIVE.
func (s *Server) deploy(svc *service, td *types.TaskDefinition) {
	s.seq++
	id := fmt.Sprintf("ecs-svc/%d", s.seq)
	cluster, name := svc.cluster, aws.ToString(svc.svc.ServiceName)
	cfg := *svc.svc.DeploymentConfiguration
	cb := &types.ServiceDeploymentCircuitBreaker{Status: types.ServiceDeploymentRollbackMonitorsStatusDisabled}
	if cfg.DeploymentCircuitBreaker != nil && cfg.DeploymentCircuitBreaker.Enable {
		cb = &types.ServiceDeploymentCircuitBreaker{Status: types.ServiceDeploymentRollbackMonitorsStatusMonitoring, Threshold: threshold(svc.svc.DesiredCount)}
	}
	dep := &deployment{td: td}
	if isNative(cfg.Strategy) {
		blue := s.productionDeployment(svc)
		dep.native = &lifecycle{blue: blue, stage: stagePreScaleUp, since: s.now}
	}
	dep.d = types.Deployment{
		Id:                   aws.String(id),
		Status:               aws.String(statusPrimary),
		TaskDefinition:       td.TaskDefinitionArn,
		DesiredCount:         svc.svc.DesiredCount,
		CreatedAt:            s.stamp(),
		UpdatedAt:            s.stamp(),
		LaunchType:           svc.svc.LaunchType,
		PlatformVersion:      svc.svc.PlatformVersion,
		NetworkConfiguration: svc.svc.NetworkConfiguration,
		RolloutState:         types.DeploymentRolloutStateInProgress,
		RolloutStateReason:   aws.String("ECS deployment " + id + " in progress."),
	}
	dep.sd = types.ServiceDeployment{
		ServiceDeploymentArn:     aws.String(fmt.Sprintf("arn:aws:ecs:%s:%s:service-deployment/%s/%s/%d", s.opts.Region, s.opts.Account, cluster, name, s.seq)),
		ServiceArn:               svc.svc.ServiceArn,
		ClusterArn:               svc.svc.ClusterArn,
		CreatedAt:                s.stamp(),
		StartedAt:                s.stamp(),
		UpdatedAt:                s.stamp(),
		Status:                   types.ServiceDeploymentStatusInProgress,
		DeploymentConfiguration:  &cfg,
		DeploymentCircuitBreaker: cb,
		TargetServiceRevision: &types.ServiceRevisionSummary{
			Arn: aws.String(fmt.Sprintf("arn:aws:ecs:%s:%s:service-revision/%s/%s/%d", s.opts.Region, s.opts.Account, cluster, name, s.seq)),
		},
	}
	for _, old := range svc.deployments {
		if old.d.Status != nil && *old.d.Status == statusPrimary {
			old.d.Status = aws.String(statusActive)
			old.d.UpdatedAt = s.stamp()
			switch old.sd.Status {
			case types.ServiceDeploymentStatusInProgress, types.ServiceDeploymentStatusPending,
				types.ServiceDeploymentStatusRollbackRequested, types.ServiceDeploymentStatusStopRequested:
				old.stopReq = ""
				old.sd.Status = types.ServiceDeploymentStatusStopped
				old.sd.StatusReason = aws.String("Service deployment stopped by a newer service deployment " + aws.ToString(dep.sd.ServiceDeploymentArn) + ".")
				old.sd.StoppedAt = s.stamp()
				old.sd.UpdatedAt = s.stamp()
			}
		}
		dep.sd.SourceServiceRevisions = append(dep.sd.SourceServiceRevisions, types.ServiceRevisionSummary{Arn: old.sd.TargetServiceRevision.Arn})
	}
	svc.deployments = append([]*deployment{dep}, svc.deployments...)
	svc.svc.CurrentServiceDeployment = dep.sd.ServiceDeploymentArn
	svc.steady = false
	s.sds[aws.ToString(dep.sd.ServiceDeploymentArn)] = dep
	if dep.native != nil {
		dep.sd.LifecycleStage = stagePreScaleUp
		s.event(svc, "(deployment %s) deployment started with the %s strategy.", id, cfg.Strategy)
		s.event(svc, "(deployment %s) deployment lifecycle stage %s started.", id, stagePreScaleUp)
	}
}

// view renders svc as DescribeServices shows it.
func (s *Server) view(svc *service) *types.Service {
	out := svc.svc
	out.TaskDefinition = svc.deployments[0].td.TaskDefinitionArn
	out.RunningCount, out.PendingCount = 0, 0
	for _, d := range svc.deployments {
		s.count(svc, d)
		out.Deployments = append(out.Deployments, d.d)
		out.RunningCount += d.d.RunningCount
		out.PendingCount += d.d.PendingCount
	}
	out.Events = append([]types.ServiceEvent(nil), svc.events...)
	cfg := *svc.svc.DeploymentConfiguration
	out.DeploymentConfiguration = &cfg
	return &out
}

func (s *Server) count(svc *service, d *deployment) {
	d.d.RunningCount, d.d.PendingCount = 0, 0
	for _, t := range svc.tasks {
		if t.dep != d {
			continue
		}
		switch aws.ToString(t.t.LastStatus) {
		case "RUNNING":
			d.d.RunningCount++
		case "PROVISIONING", "PENDING":
			d.d.PendingCount++
		}
	}
	r := d.sd.TargetServiceRevision
	r.RunningTaskCount, r.PendingTaskCount, r.RequestedTaskCount = d.d.RunningCount, d.d.PendingCount, d.d.DesiredCount
}

func (s *Server) describeServices(in *ecs.DescribeServicesInput) (any, *apiError) {
	cluster, e := s.cluster(in.Cluster)
	if e != nil {
		return nil, e
	}
	if len(in.Services) == 0 || len(in.Services) > 10 {
		return nil, errorf(CodeInvalidParameter, "services should have between 1 and 10 items.")
	}
	out := &ecs.DescribeServicesOutput{Services: []types.Service{}, Failures: []types.Failure{}}
	for _, ref := range in.Services {
		svc := s.lookupService(cluster, ref)
		if svc == nil {
			arn := ref
			if !strings.HasPrefix(ref, "arn:") {
				arn = fmt.Sprintf("arn:aws:ecs:%s:%s:service/%s/%s", s.opts.Region, s.opts.Account, cluster, ref)
			}
			out.Failures = append(out.Failures, types.Failure{Arn: aws.String(arn), Reason: aws.String("MISSING")})
			continue
		}
		out.Services = append(out.Services, *s.view(svc))
	}
	return out, nil
}

func (s *Server) describeServiceDeployments(in *ecs.DescribeServiceDeploymentsInput) (any, *apiError) {
	if len(in.ServiceDeploymentArns) == 0 || len(in.ServiceDeploymentArns) > 20 {
		return nil, errorf(CodeInvalidParameter, "serviceDeploymentArns should have between 1 and 20 items.")
	}
	out := &ecs.DescribeServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeployment{}, Failures: []types.Failure{}}
	for _, arn := range in.ServiceDeploymentArns {
		d := s.sds[arn]
		if d == nil {
			out.Failures = append(out.Failures, types.Failure{Arn: aws.String(arn), Reason: aws.String("MISSING")})
			continue
		}
		out.ServiceDeployments = append(out.ServiceDeployments, s.sdView(d))
	}
	return out, nil
}

func (s *Server) sdView(d *deployment) types.ServiceDeployment {
	sd := d.sd
	r := *sd.TargetServiceRevision
	sd.TargetServiceRevision = &r
	if sd.DeploymentCircuitBreaker != nil {
		cb := *sd.DeploymentCircuitBreaker
		sd.DeploymentCircuitBreaker = &cb
	}
	sd.SourceServiceRevisions = slices.Clone(sd.SourceServiceRevisions)
	if n := d.native; n != nil {
		prod, test := n.green, 0.0
		if n.test {
			test = 100
		}
		r.RequestedProductionTrafficWeight, r.RequestedTestTrafficWeight = aws.Float64(prod), aws.Float64(test)
		for i := range sd.SourceServiceRevisions {
			src := &sd.SourceServiceRevisions[i]
			if n.blue != nil && aws.ToString(src.Arn) == aws.ToString(n.blue.sd.TargetServiceRevision.Arn) {
				src.RequestedProductionTrafficWeight, src.RequestedTestTrafficWeight = aws.Float64(100-prod), aws.Float64(100-test)
			}
		}
	}
	return sd
}

func (s *Server) listServiceDeployments(in *ecs.ListServiceDeploymentsInput) (any, *apiError) {
	cluster, e := s.cluster(in.Cluster)
	if e != nil {
		return nil, e
	}
	svc := s.lookupService(cluster, aws.ToString(in.Service))
	if svc == nil {
		return nil, errorf(CodeServiceNotFound, "Service not found.")
	}
	out := &ecs.ListServiceDeploymentsOutput{ServiceDeployments: []types.ServiceDeploymentBrief{}}
	var all []*deployment
	for _, d := range s.sds {
		if d.sd.ServiceArn == svc.svc.ServiceArn {
			all = append(all, d)
		}
	}
	// newest first: the sequence number ends the ARN
	seqOf := func(d *deployment) int64 {
		a := aws.ToString(d.sd.ServiceDeploymentArn)
		n, _ := strconv.ParseInt(a[strings.LastIndex(a, "/")+1:], 10, 64)
		return n
	}
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && seqOf(all[j]) > seqOf(all[j-1]); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	for _, d := range all {
		if len(in.Status) > 0 && !slices.Contains(in.Status, d.sd.Status) {
			continue
		}
		out.ServiceDeployments = append(out.ServiceDeployments, types.ServiceDeploymentBrief{
			ServiceDeploymentArn: d.sd.ServiceDeploymentArn, ServiceArn: d.sd.ServiceArn, ClusterArn: d.sd.ClusterArn,
			CreatedAt: d.sd.CreatedAt, StartedAt: d.sd.StartedAt, FinishedAt: d.sd.FinishedAt,
			Status: d.sd.Status, StatusReason: d.sd.StatusReason, TargetServiceRevisionArn: d.sd.TargetServiceRevision.Arn,
		})
	}
	return out, nil
}

// controller is the service's deployment controller; ECS when the request names none.
func controller(c *types.DeploymentController) *types.DeploymentController {
	if c == nil || c.Type == "" {
		return &types.DeploymentController{Type: types.DeploymentControllerTypeEcs}
	}
	cp := *c
	return &cp
}
