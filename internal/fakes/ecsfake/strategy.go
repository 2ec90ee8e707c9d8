package ecsfake

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Lifecycle stages of BLUE_GREEN, CANARY and LINEAR deployments. The SDK has no constant for
// PRE_PRODUCTION_TRAFFIC_SHIFT, though its doc comments describe the stage.
const (
	stagePreScaleUp      = types.ServiceDeploymentLifecycleStagePreScaleUp
	stageScaleUp         = types.ServiceDeploymentLifecycleStageScaleUp
	stagePostScaleUp     = types.ServiceDeploymentLifecycleStagePostScaleUp
	stageTestShift       = types.ServiceDeploymentLifecycleStageTestTrafficShift
	stagePostTestShift   = types.ServiceDeploymentLifecycleStagePostTestTrafficShift
	stagePreProdShift    = types.ServiceDeploymentLifecycleStage("PRE_PRODUCTION_TRAFFIC_SHIFT")
	stageProdShift       = types.ServiceDeploymentLifecycleStageProductionTrafficShift
	stagePostProdShift   = types.ServiceDeploymentLifecycleStagePostProductionTrafficShift
	stageBakeTime        = types.ServiceDeploymentLifecycleStageBakeTime
	stageCleanUp         = types.ServiceDeploymentLifecycleStageCleanUp
	stageDone            = types.ServiceDeploymentLifecycleStage("") // not a stage: the rollout is over
	defaultCanaryPercent = 5.0
	defaultCanaryBake    = 10 // minutes
	defaultStepPercent   = 10.0
	defaultStepBake      = 6 // minutes
)

// lifecycle is the progress of a BLUE_GREEN, CANARY or LINEAR deployment (green) replacing blue.
type lifecycle struct {
	// blue is the deployment serving production when green started; nil when the service was
	// created, in which case there is nothing to shift from and no bake time.
	blue  *deployment
	stage types.ServiceDeploymentLifecycleStage
	since time.Time // when stage began
	green float64   // percent of production traffic routed to green
	test  bool      // the test listener routes to green
	// over is set when the rollout completed or was rolled back: traffic then follows the
	// PRIMARY alone. halted is set when the circuit breaker failed green without a rollback:
	// nothing moves any more.
	over, halted bool
}

func isNative(st types.DeploymentStrategy) bool {
	return st == types.DeploymentStrategyBlueGreen || st == types.DeploymentStrategyCanary || st == types.DeploymentStrategyLinear
}

// validateStrategy checks cfg as ECS does for the load balancers lbs the service will have, and
// fills in the defaults of canaryConfiguration and linearConfiguration.
func validateStrategy(cfg *types.DeploymentConfiguration, lbs []types.LoadBalancer) *apiError {
	if b := cfg.BakeTimeInMinutes; b != nil && (*b < 0 || *b > 1440) {
		return errorf(CodeInvalidParameter, "bakeTimeInMinutes must be between 0 and 1440, got %d.", *b)
	}
	switch cfg.Strategy {
	case types.DeploymentStrategyRolling:
		return nil
	case types.DeploymentStrategyBlueGreen, types.DeploymentStrategyCanary, types.DeploymentStrategyLinear:
	default:
		return errorf(CodeInvalidParameter, "Invalid deployment strategy %q: must be one of ROLLING, BLUE_GREEN, LINEAR, CANARY.", cfg.Strategy)
	}
	ok := false
	for _, lb := range lbs {
		if ac := lb.AdvancedConfiguration; ac != nil && aws.ToString(ac.AlternateTargetGroupArn) != "" &&
			aws.ToString(ac.ProductionListenerRule) != "" && aws.ToString(ac.RoleArn) != "" {
			ok = true
		}
	}
	if !ok {
		return errorf(CodeInvalidParameter, "The %s deployment strategy requires a load balancer with an advancedConfiguration: "+
			"specify alternateTargetGroupArn, productionListenerRule and roleArn in loadBalancers[].advancedConfiguration.", cfg.Strategy)
	}
	switch cfg.Strategy {
	case types.DeploymentStrategyCanary:
		c := types.CanaryConfiguration{CanaryPercent: aws.Float64(defaultCanaryPercent), CanaryBakeTimeInMinutes: aws.Int32(defaultCanaryBake)}
		if in := cfg.CanaryConfiguration; in != nil {
			c.CanaryPercent = cmpOr(in.CanaryPercent, c.CanaryPercent)
			c.CanaryBakeTimeInMinutes = cmpOr(in.CanaryBakeTimeInMinutes, c.CanaryBakeTimeInMinutes)
		}
		if p := *c.CanaryPercent; p < 0.1 || p > 100 {
			return errorf(CodeInvalidParameter, "canaryPercent must be between 0.1 and 100.0, got %g.", p)
		}
		if b := *c.CanaryBakeTimeInMinutes; b < 0 || b > 1440 {
			return errorf(CodeInvalidParameter, "canaryBakeTimeInMinutes must be between 0 and 1440, got %d.", b)
		}
		cfg.CanaryConfiguration = &c
	case types.DeploymentStrategyLinear:
		l := types.LinearConfiguration{StepPercent: aws.Float64(defaultStepPercent), StepBakeTimeInMinutes: aws.Int32(defaultStepBake)}
		if in := cfg.LinearConfiguration; in != nil {
			l.StepPercent = cmpOr(in.StepPercent, l.StepPercent)
			l.StepBakeTimeInMinutes = cmpOr(in.StepBakeTimeInMinutes, l.StepBakeTimeInMinutes)
		}
		if p := *l.StepPercent; p < 3 || p > 100 {
			return errorf(CodeInvalidParameter, "stepPercent must be between 3.0 and 100.0, got %g.", p)
		}
		if b := *l.StepBakeTimeInMinutes; b < 0 || b > 1440 {
			return errorf(CodeInvalidParameter, "stepBakeTimeInMinutes must be between 0 and 1440, got %d.", b)
		}
		cfg.LinearConfiguration = &l
	}
	return nil
}

func cmpOr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func minutes(m *int32) time.Duration { return time.Duration(aws.ToInt32(m)) * time.Minute }

// advanceLifecycle moves green deployment d through the stages whose time is up, several in one
// tick if they are.
func (s *Server) advanceLifecycle(svc *service, d *deployment) {
	n := d.native
	if n == nil || n.over || n.halted || d.stopReq != "" || d.aborted {
		return
	}
	for {
		next := s.nextStage(svc, d, n)
		if next == n.stage {
			return
		}
		s.enterStage(svc, d, n, next)
		if next == stageDone {
			return
		}
	}
}

// nextStage is the stage d moves to now: n.stage itself while the current one lasts.
func (s *Server) nextStage(svc *service, d *deployment, n *lifecycle) types.ServiceDeploymentLifecycleStage {
	cfg := d.sd.DeploymentConfiguration
	el, after := s.now.Sub(n.since), s.opts.StageAfter
	hold := after
	var next types.ServiceDeploymentLifecycleStage
	switch n.stage {
	case stagePreScaleUp:
		next = stageScaleUp
	case stageScaleUp:
		if !s.greenReady(svc, d) {
			return n.stage // traffic stages start with every green task healthy
		}
		next = stagePostScaleUp
	case stagePostScaleUp:
		next = stageTestShift
	case stageTestShift:
		next = stagePostTestShift
	case stagePostTestShift:
		next = stagePreProdShift
	case stagePreProdShift:
		next = stageProdShift
	case stageProdShift:
		next = stagePostProdShift
		if n.green < 100 {
			next = stagePreProdShift
			if cfg.Strategy == types.DeploymentStrategyCanary {
				hold += minutes(cfg.CanaryConfiguration.CanaryBakeTimeInMinutes)
			} else {
				hold += minutes(cfg.LinearConfiguration.StepBakeTimeInMinutes)
			}
		}
	case stagePostProdShift:
		next = stageBakeTime
	case stageBakeTime:
		hold = 0
		if n.blue != nil {
			hold = minutes(cfg.BakeTimeInMinutes)
		}
		next = stageCleanUp
	case stageCleanUp:
		for _, t := range svc.tasks {
			if t.dep != d && !t.stopped() {
				return n.stage // blue is still draining
			}
		}
		next = stageDone
	}
	if el < hold {
		return n.stage
	}
	return next
}

// greenReady reports whether every desired task of d runs and is healthy.
func (s *Server) greenReady(svc *service, d *deployment) bool {
	live, healthy := 0, 0
	for _, t := range svc.tasks {
		if t.dep == d && t.alive() {
			live++
			if t.healthy() {
				healthy++
			}
		}
	}
	return live == int(svc.svc.DesiredCount) && healthy == live
}

// nextShare is green's share of production traffic after the next PRODUCTION_TRAFFIC_SHIFT.
func nextShare(cfg *types.DeploymentConfiguration, n *lifecycle) float64 {
	if n.blue == nil {
		return 100 // nothing to shift from
	}
	var p float64
	switch cfg.Strategy {
	case types.DeploymentStrategyCanary:
		p = 100
		if n.green == 0 {
			p = *cfg.CanaryConfiguration.CanaryPercent
		}
	case types.DeploymentStrategyLinear:
		p = n.green + *cfg.LinearConfiguration.StepPercent
	default:
		p = 100
	}
	p = math.Round(p*10) / 10 // ECS takes percentages in steps of 0.1
	return min(p, 100)
}

func (s *Server) enterStage(svc *service, d *deployment, n *lifecycle, next types.ServiceDeploymentLifecycleStage) {
	id := aws.ToString(d.d.Id)
	n.since = s.now
	d.sd.UpdatedAt = s.stamp()
	if next == stageDone {
		n.over, n.green, n.test = true, 100, true
		d.d.RolloutState = types.DeploymentRolloutStateCompleted
		d.d.RolloutStateReason = aws.String("ECS deployment " + id + " completed.")
		d.d.UpdatedAt = s.stamp()
		d.sd.Status = types.ServiceDeploymentStatusSuccessful
		d.sd.FinishedAt = s.stamp()
		svc.lastCompleted = d
		s.event(svc, "(deployment %s) deployment completed.", id)
		svc.steady = true
		s.event(svc, "has reached a steady state.")
		return
	}
	n.stage = next
	d.sd.LifecycleStage = next
	s.event(svc, "(deployment %s) deployment lifecycle stage %s started.", id, next)
	switch next {
	case stagePostTestShift:
		n.test = true
		s.event(svc, "(deployment %s) test traffic shifted: 100%% to %s.", id, tdName(d.td))
	case stageProdShift:
		n.green = nextShare(d.sd.DeploymentConfiguration, n)
		if n.blue != nil && n.green < 100 {
			s.event(svc, "(deployment %s) production traffic shifted: %g%% to %s, %g%% to %s.", id, n.green, tdName(d.td), 100-n.green, tdName(n.blue.td))
		} else {
			s.event(svc, "(deployment %s) production traffic shifted: 100%% to %s.", id, tdName(d.td))
		}
	}
}

func tdName(td *types.TaskDefinition) string {
	return fmt.Sprintf("%s:%d", aws.ToString(td.Family), td.Revision)
}

// routes is where svc's listeners send traffic: percent of production traffic per deployment, and
// the deployment the test listener routes to (nil for none).
func (s *Server) routes(svc *service) (map[*deployment]float64, *deployment) {
	prod := map[*deployment]float64{}
	if len(svc.deployments) == 0 {
		return prod, nil
	}
	p := svc.deployments[0]
	if n := p.native; n != nil {
		if n.over {
			prod[p] = 100
			return prod, p
		}
		if n.blue != nil && n.green < 100 {
			prod[n.blue] = 100 - n.green
		}
		if n.green > 0 {
			prod[p] += n.green
		}
		if n.test {
			return prod, p
		}
		return prod, n.blue
	}
	// ROLLING: the target group balances over the healthy tasks of every revision.
	total := 0
	for _, d := range svc.deployments {
		for _, t := range svc.tasks {
			if t.dep == d && t.healthy() {
				prod[d]++
				total++
			}
		}
	}
	var test *deployment
	for _, d := range svc.deployments {
		prod[d] = prod[d] * 100 / float64(total)
		if prod[d] == 0 {
			delete(prod, d)
		} else if test == nil || prod[d] > prod[test] {
			test = d
		}
	}
	return prod, test
}

// productionDeployment is the deployment with the largest share of production traffic, nil if
// none has any.
func (s *Server) productionDeployment(svc *service) *deployment {
	prod, _ := s.routes(svc)
	var best *deployment
	for _, d := range svc.deployments { // in order, so the PRIMARY wins a tie
		if w, ok := prod[d]; ok && (best == nil || w > prod[best]) {
			best = d
		}
	}
	return best
}

// Traffic reports where the load balancer of service sends traffic: production maps task
// definition ARNs to their percent of production traffic, and test is the task definition ARN the
// test listener routes to ("" for none). Under ROLLING, production traffic is split in proportion
// to the healthy tasks of each revision and test follows the largest production share; under
// BLUE_GREEN, CANARY and LINEAR it follows the deployment's lifecycle stages. An unknown cluster
// or service has no traffic.
func (s *Server) Traffic(cluster, service string) (production map[string]float64, test string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	production = map[string]float64{}
	c, e := s.cluster(&cluster)
	if e != nil {
		return production, ""
	}
	svc := s.lookupService(c, service)
	if svc == nil {
		return production, ""
	}
	prod, t := s.routes(svc)
	for d, w := range prod {
		production[aws.ToString(d.td.TaskDefinitionArn)] += w
	}
	if t != nil {
		test = aws.ToString(t.td.TaskDefinitionArn)
	}
	return production, test
}

// serviceOf returns the service deployment d belongs to.
func (s *Server) serviceOf(d *deployment) *service {
	for _, svcs := range s.services {
		for _, svc := range svcs {
			if aws.ToString(svc.svc.ServiceArn) == aws.ToString(d.sd.ServiceArn) {
				return svc
			}
		}
	}
	return nil
}

func (s *Server) stopServiceDeployment(in *ecs.StopServiceDeploymentInput) (any, *apiError) {
	arn := aws.ToString(in.ServiceDeploymentArn)
	if arn == "" {
		return nil, errorf(CodeInvalidParameter, "serviceDeploymentArn can not be blank.")
	}
	stop := in.StopType
	if stop == "" {
		stop = types.StopServiceDeploymentStopTypeRollback
	}
	if stop != types.StopServiceDeploymentStopTypeRollback && stop != types.StopServiceDeploymentStopTypeAbort {
		return nil, errorf(CodeInvalidParameter, "Invalid stopType %q: must be ABORT or ROLLBACK.", stop)
	}
	d := s.sds[arn]
	if d == nil {
		return nil, errorf(CodeServiceDeploymentNotFound, "The service deployment %s does not exist.", arn)
	}
	svc := s.serviceOf(d)
	out := &ecs.StopServiceDeploymentOutput{ServiceDeploymentArn: aws.String(arn)}
	switch d.sd.Status {
	case types.ServiceDeploymentStatusPending, types.ServiceDeploymentStatusInProgress:
	case types.ServiceDeploymentStatusStopRequested, types.ServiceDeploymentStatusRollbackRequested,
		types.ServiceDeploymentStatusRollbackInProgress:
		return out, nil // already stopping: ECS carries on
	default:
		e := errorf(CodeConflict, "The service deployment %s cannot be stopped because its status is %s; only PENDING and IN_PROGRESS service deployments can be stopped.", arn, d.sd.Status)
		e.resourceIds = []string{arn}
		return nil, e
	}
	d.stopReq, d.stopAt = stop, s.now.Add(s.opts.StageAfter)
	d.sd.UpdatedAt = s.stamp()
	id := aws.ToString(d.d.Id)
	if stop == types.StopServiceDeploymentStopTypeAbort {
		d.sd.Status = types.ServiceDeploymentStatusStopRequested
		s.event(svc, "(deployment %s) stop requested.", id)
	} else {
		d.sd.Status = types.ServiceDeploymentStatusRollbackRequested
		s.event(svc, "(deployment %s) rollback requested.", id)
	}
	return out, nil
}

// runStopRequests carries out the StopServiceDeployment requests on svc whose time has come.
func (s *Server) runStopRequests(svc *service) {
	for _, d := range svc.deployments {
		if d.stopReq == "" || s.now.Before(d.stopAt) {
			continue
		}
		req := d.stopReq
		d.stopReq = ""
		id := aws.ToString(d.d.Id)
		prev := svc.lastCompleted
		switch {
		case d != svc.deployments[0]:
			// no longer PRIMARY: a newer deployment or the circuit breaker already replaced it
		case req == types.StopServiceDeploymentStopTypeRollback && prev != nil && prev != d:
			s.rollBack(svc, d, prev, "Service deployment stopped by StopServiceDeployment:",
				"Service deployment rolled back because a rollback was requested by StopServiceDeployment.")
		default:
			d.aborted = true
			d.d.RolloutState = types.DeploymentRolloutStateFailed
			d.d.UpdatedAt = s.stamp()
			d.sd.UpdatedAt = s.stamp()
			if req == types.StopServiceDeploymentStopTypeAbort {
				d.d.RolloutStateReason = aws.String("ECS deployment " + id + " stopped by StopServiceDeployment.")
				d.sd.Status = types.ServiceDeploymentStatusStopped
				d.sd.StatusReason = aws.String("Service deployment stopped by StopServiceDeployment.")
				d.sd.StoppedAt = s.stamp()
				s.event(svc, "(deployment %s) deployment stopped.", id)
			} else {
				why := "Service deployment rollback requested by StopServiceDeployment failed: there is no previous service revision to roll back to."
				d.d.RolloutStateReason = aws.String(why)
				d.sd.Status = types.ServiceDeploymentStatusRollbackFailed
				d.sd.StatusReason = aws.String(why)
				d.sd.FinishedAt = s.stamp()
				s.event(svc, "(deployment %s) rollback failed: no previous deployment to roll back to.", id)
			}
		}
		return // one change to the deployment list per call
	}
}

// Health is the /health of the app behind service's load balancer, as a
// test's stand-in for the load balancer serves it: git_sha is the gantry.sha
// tag of the revision the production listener sends most traffic to or,
// with test, of the revision the test listener routes to ("" for none).
func (s *Server) Health(cluster, service string, test bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prod, arn := s.Traffic(cluster, service)
		if !test {
			arn = ""
			best := -1.0
			for a, pct := range prod {
				if pct > best {
					arn, best = a, pct
				}
			}
		}
		s.mu.Lock()
		sha := ""
		for _, tag := range s.tdTags[arn] {
			if aws.ToString(tag.Key) == "gantry.sha" {
				sha = aws.ToString(tag.Value)
			}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "git_sha": sha})
	})
}
