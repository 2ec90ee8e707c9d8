package runfake

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/genproto/googleapis/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Condition types of a service and a revision.
const (
	condReady               = "Ready"
	condRoutesReady         = "RoutesReady"
	condConfigurationsReady = "ConfigurationsReady"
	condResourcesAvailable  = "ResourcesAvailable"
	condContainerHealthy    = "ContainerHealthy"
)

// Template defaults Cloud Run fills in.
const (
	defaultRequestTimeout = 300 * time.Second
	defaultConcurrency    = 80
	defaultMaxInstances   = 100
	defaultPort           = 8080
)

// reservedPrefixes are label and annotation namespaces the v2 API rejects.
var reservedPrefixes = []string{"run.googleapis.com/", "cloud.googleapis.com/", "serving.knative.dev/", "autoscaling.knative.dev/"}

// outputOnly are the Service fields the server sets; requests' values are ignored.
var outputOnly = []protoreflect.Name{
	"name", "uid", "generation", "create_time", "update_time", "delete_time", "expire_time", "creator",
	"last_modifier", "urls", "observed_generation", "terminal_condition", "conditions",
	"latest_ready_revision", "latest_created_revision", "traffic_statuses", "uri", "satisfies_pzs",
	"threat_detection_enabled", "reconciling", "etag",
}

type service struct {
	id     string
	spec   *runpb.Service // the fields users set, defaults filled in; output-only fields clear
	status *runpb.Service // only the output-only fields
	// settleAt is the earliest time the current reconciliation may end.
	settleAt time.Time
	revs     []*revision // oldest first
}

// view is the service as the API returns it.
func (sv *service) view() *runpb.Service {
	v := proto.Clone(sv.spec).(*runpb.Service)
	proto.Merge(v, sv.status)
	return v
}

type revision struct {
	id       string
	service  string // service ID
	rev      *runpb.Revision
	template *runpb.RevisionTemplate // normalized, Revision cleared: compared with later templates
	behavior Behavior
	readyAt  time.Time
	done     bool // Ready or failed
	failed   bool
}

// failure is the message Cloud Run gives for a service whose revision r failed.
func (r *revision) failure() string {
	return fmt.Sprintf("Revision '%s' is not ready and cannot serve traffic. %s", r.id, r.behavior.Fail.Message)
}

// specOf returns a copy of in without its output-only fields.
func specOf(in *runpb.Service) *runpb.Service {
	out := proto.Clone(in).(*runpb.Service)
	m := out.ProtoReflect()
	fields := m.Descriptor().Fields()
	for _, n := range outputOnly {
		m.Clear(fields.ByName(n))
	}
	return out
}

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// normalize validates a service's spec and fills in Cloud Run's defaults.
func (s *Server) normalize(id string, spec *runpb.Service) error {
	if err := checkMetadata("service", spec.Labels, spec.Annotations); err != nil {
		return err
	}
	if spec.LaunchStage == api.LaunchStage_LAUNCH_STAGE_UNSPECIFIED {
		spec.LaunchStage = api.LaunchStage_GA
	}
	if spec.Ingress == runpb.IngressTraffic_INGRESS_TRAFFIC_UNSPECIFIED {
		spec.Ingress = runpb.IngressTraffic_INGRESS_TRAFFIC_ALL
	}
	t := spec.Template
	if t == nil {
		return invalid("service.template: the revision template is required.")
	}
	if err := checkMetadata("service.template", t.Labels, t.Annotations); err != nil {
		return err
	}
	if t.Revision != "" {
		if !dnsLabelPattern.MatchString(t.Revision) || len(t.Revision) > 63 {
			return invalid("service.template.revision: '%s' is not a valid revision name: use at most 63 lowercase letters, digits and hyphens, starting with a letter.", t.Revision)
		}
		if !strings.HasPrefix(t.Revision, id+"-") {
			return invalid("service.template.revision: revision name '%s' must be prefixed by the service name '%s-'.", t.Revision, id)
		}
	}
	if len(t.Containers) == 0 {
		return invalid("service.template.containers: at least one container is required.")
	}
	ingress := -1
	for i, c := range t.Containers {
		if c.Image == "" {
			return invalid("service.template.containers[%d].image: an image is required.", i)
		}
		if len(c.Ports) > 0 {
			if ingress >= 0 {
				return invalid("service.template.containers: only one container may declare ports (the ingress container); containers %d and %d do.", ingress, i)
			}
			ingress = i
		}
	}
	if ingress < 0 && len(t.Containers) > 1 {
		return invalid("service.template.containers: exactly one container must declare a port (the ingress container); none does.")
	}
	s.templateDefaults(t, ingress)
	if len(spec.Traffic) == 0 {
		spec.Traffic = []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}}
	}
	for _, tt := range spec.Traffic {
		if tt.Type == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED && tt.Revision != "" {
			tt.Type = runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
		}
	}
	return nil
}

func checkMetadata(field string, labels, annotations map[string]string) error {
	for what, m := range map[string]map[string]string{"labels": labels, "annotations": annotations} {
		for k := range m {
			for _, p := range reservedPrefixes {
				if strings.HasPrefix(k, p) {
					return invalid("%s.%s: the key '%s' is in the reserved namespace '%s'; Cloud Run API v2 rejects it (use the matching field of the resource instead).", field, what, k, p)
				}
			}
		}
	}
	return nil
}

// templateDefaults fills in what Cloud Run fills in a revision template; ingress is the
// index of the container that declares ports, or -1.
func (s *Server) templateDefaults(t *runpb.RevisionTemplate, ingress int) {
	if t.Timeout == nil {
		t.Timeout = durationpb.New(defaultRequestTimeout)
	}
	if t.MaxInstanceRequestConcurrency == 0 {
		t.MaxInstanceRequestConcurrency = defaultConcurrency
	}
	if t.ServiceAccount == "" {
		t.ServiceAccount = s.opts.ProjectNumber + "-compute@developer.gserviceaccount.com"
	}
	if t.Scaling == nil {
		t.Scaling = &runpb.RevisionScaling{MaxInstanceCount: defaultMaxInstances}
	}
	if ingress < 0 && len(t.Containers) == 1 {
		ingress = 0
		t.Containers[0].Ports = []*runpb.ContainerPort{{Name: "http1", ContainerPort: defaultPort}}
	}
	for i, c := range t.Containers {
		if c.Resources == nil {
			c.Resources = &runpb.ResourceRequirements{Limits: map[string]string{"cpu": "1000m", "memory": "512Mi"}, CpuIdle: true}
		}
		if i != ingress {
			continue
		}
		for _, p := range c.Ports {
			if p.ContainerPort == 0 {
				p.ContainerPort = defaultPort
			}
		}
		if c.StartupProbe == nil {
			c.StartupProbe = &runpb.Probe{
				TimeoutSeconds:   int32(DefaultStartupTimeout / time.Second),
				PeriodSeconds:    int32(DefaultStartupTimeout / time.Second),
				FailureThreshold: 1,
				ProbeType:        &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: c.Ports[0].ContainerPort}},
			}
		}
	}
}

// sameTemplate reports whether two normalized templates describe the same revision, ignoring
// the revision name.
func sameTemplate(a, b *runpb.RevisionTemplate) bool {
	a = proto.Clone(a).(*runpb.RevisionTemplate)
	b = proto.Clone(b).(*runpb.RevisionTemplate)
	a.Revision, b.Revision = "", ""
	return proto.Equal(a, b)
}

// validateTraffic checks traffic targets as Cloud Run does; pending is the name of the revision
// the same request creates, if it names one.
func (s *Server) validateTraffic(sv *service, targets []*runpb.TrafficTarget, pending string) error {
	var sum int32
	tags := map[string]bool{}
	for i, t := range targets {
		field := fmt.Sprintf("service.traffic[%d]", i)
		switch t.Type {
		case runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST:
			if t.Revision != "" {
				return invalid("%s.revision: a target of type TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST must not name a revision (got '%s').", field, t.Revision)
			}
		case runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION:
			if t.Revision == "" {
				return invalid("%s.revision: a target of type TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION must name a revision.", field)
			}
			if r := s.revisions[t.Revision]; t.Revision != pending && (r == nil || r.service != sv.id) {
				return invalid("%s.revision: Revision '%s' referenced in traffic not found.", field, t.Revision)
			}
		default:
			return invalid("%s.type: must be TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST or TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION.", field)
		}
		if t.Percent < 0 || t.Percent > 100 {
			return invalid("%s.percent: %d is not between 0 and 100.", field, t.Percent)
		}
		sum += t.Percent
		if t.Tag == "" {
			continue
		}
		if !dnsLabelPattern.MatchString(t.Tag) {
			return invalid("%s.tag: '%s' is not a valid tag: use lowercase letters, digits and hyphens, starting with a letter.", field, t.Tag)
		}
		if host := s.serviceHost(t.Tag, sv.id); len(host) > 63 {
			return invalid("%s.tag: the tag and service name are too long together: the URL host label '%s' has %d characters, at most 63 are allowed.", field, host, len(host))
		}
		if tags[t.Tag] {
			return invalid("%s.tag: Multiple definitions for tag '%s'.", field, t.Tag)
		}
		tags[t.Tag] = true
	}
	if sum != 100 {
		return invalid("service.traffic: the traffic percentages sum to %d; they must sum to 100.", sum)
	}
	return nil
}

// latest is the service's latest created revision, or nil.
func (s *Server) latest(sv *service) *revision {
	if sv.status.LatestCreatedRevision == "" {
		return nil
	}
	return s.revisions[shortName(sv.status.LatestCreatedRevision)]
}

// apply makes want the service's spec: it validates it, creates a revision if the template
// changed, bumps the generation and starts reconciling. A new service (isNew) is added; a
// change that changes nothing bumps nothing unless force is set. It returns the operation.
func (s *Server) apply(sv *service, isNew bool, want *runpb.Service, validateOnly, force bool) (*operationState, error) {
	if err := s.normalize(sv.id, want); err != nil {
		return nil, err
	}
	latest := s.latest(sv)
	name := want.Template.Revision
	newRev := latest == nil || (name != "" && name != latest.id) || !sameTemplate(latest.template, want.Template)
	pending := ""
	if newRev && name != "" {
		if _, ok := s.revisions[name]; ok {
			return nil, status.Errorf(codes.AlreadyExists, "Revision named '%s' with different configuration already exists.", name)
		}
		pending = name
	}
	if err := s.validateTraffic(sv, want.Traffic, pending); err != nil {
		return nil, err
	}
	if validateOnly {
		v := proto.Clone(want).(*runpb.Service)
		proto.Merge(v, sv.status)
		return s.doneOperation(v, v), nil
	}
	if !isNew && !newRev && !force && proto.Equal(want, sv.spec) {
		return s.serviceOperation(sv), nil // nothing to change: follow the current reconciliation
	}
	now := s.now
	st := sv.status
	st.Generation++
	st.Etag = newEtag()
	st.UpdateTime = timestamppb.New(now)
	sv.spec = want
	if isNew {
		s.services[sv.id] = sv
	}
	if newRev {
		st.LatestCreatedRevision = s.newRevision(sv, want.Template).rev.Name
	}
	st.Reconciling = true
	st.TerminalCondition = s.condition(st.TerminalCondition, condReady, runpb.Condition_CONDITION_RECONCILING)
	config := runpb.Condition_CONDITION_SUCCEEDED
	if newRev {
		config = runpb.Condition_CONDITION_RECONCILING
	}
	st.Conditions = setConditions(st.Conditions,
		s.condition(findCondition(st.Conditions, condRoutesReady), condRoutesReady, runpb.Condition_CONDITION_RECONCILING),
		s.condition(findCondition(st.Conditions, condConfigurationsReady), condConfigurationsReady, config))
	sv.settleAt = now.Add(s.opts.SettleAfter)
	s.trimRevisions(sv)
	return s.serviceOperation(sv), nil
}

// newRevision creates the revision of template t at the service's current generation.
func (s *Server) newRevision(sv *service, t *runpb.RevisionTemplate) *revision {
	id := t.Revision
	for id == "" || s.revisions[id] != nil {
		id = fmt.Sprintf("%s-%05d-%s", sv.id, sv.status.Generation, letters(3))
	}
	b := s.behaviorFor(id, t)
	after := b.ReadyAfter
	if after <= 0 {
		after = s.opts.ReadyAfter
	}
	tmpl := proto.Clone(t).(*runpb.RevisionTemplate)
	tmpl.Revision = ""
	now := timestamppb.New(s.now)
	name := s.ServiceName(sv.id) + "/revisions/" + id
	c := proto.Clone(tmpl).(*runpb.RevisionTemplate)
	rev := &runpb.Revision{
		Name:                          name,
		Uid:                           uuid(),
		Generation:                    1,
		Labels:                        c.Labels,
		Annotations:                   c.Annotations,
		CreateTime:                    now,
		UpdateTime:                    now,
		LaunchStage:                   sv.spec.LaunchStage,
		Service:                       s.ServiceName(sv.id),
		Scaling:                       c.Scaling,
		VpcAccess:                     c.VpcAccess,
		MaxInstanceRequestConcurrency: c.MaxInstanceRequestConcurrency,
		Timeout:                       c.Timeout,
		ServiceAccount:                c.ServiceAccount,
		Containers:                    c.Containers,
		Volumes:                       c.Volumes,
		ExecutionEnvironment:          c.ExecutionEnvironment,
		EncryptionKey:                 c.EncryptionKey,
		ServiceMesh:                   c.ServiceMesh,
		EncryptionKeyRevocationAction: c.EncryptionKeyRevocationAction,
		EncryptionKeyShutdownDuration: c.EncryptionKeyShutdownDuration,
		SessionAffinity:               c.SessionAffinity,
		NodeSelector:                  c.NodeSelector,
		GpuZonalRedundancyDisabled:    c.GpuZonalRedundancyDisabled,
		Reconciling:                   true,
		ObservedGeneration:            1,
		LogUri: fmt.Sprintf("https://console.cloud.google.com/logs/viewer?project=%s&resource=cloud_run_revision/service_name/%s/revision_name/%s",
			s.opts.Project, sv.id, id),
		Etag: newEtag(),
	}
	for _, typ := range []string{condReady, condResourcesAvailable, condContainerHealthy} {
		rev.Conditions = append(rev.Conditions, s.condition(nil, typ, runpb.Condition_CONDITION_RECONCILING))
	}
	r := &revision{id: id, service: sv.id, rev: rev, template: tmpl, behavior: b, readyAt: s.now.Add(after)}
	s.revisions[id] = r
	sv.revs = append(sv.revs, r)
	return r
}

// behaviorFor is the behaviour SetBehavior set for revision id or one of its images.
func (s *Server) behaviorFor(id string, t *runpb.RevisionTemplate) Behavior {
	if b, ok := s.behaviors[id]; ok {
		return b
	}
	for _, c := range t.Containers {
		if b, ok := s.behaviors[c.Image]; ok {
			return b
		}
	}
	return s.opts.Default
}

// settleRevision ends a revision's start: Ready, or failed as its behaviour says.
func (s *Server) settleRevision(r *revision) {
	r.done = true
	rev := r.rev
	rev.Reconciling = false
	rev.UpdateTime = timestamppb.New(s.now)
	if f := r.behavior.Fail; f != nil {
		r.failed = true
		rev.Conditions = setConditions(rev.Conditions,
			s.failedCondition(condReady, f.Reason, f.Message),
			s.condition(findCondition(rev.Conditions, condResourcesAvailable), condResourcesAvailable, runpb.Condition_CONDITION_SUCCEEDED),
			s.failedCondition(condContainerHealthy, f.Reason, f.Message))
		return
	}
	for _, typ := range []string{condReady, condResourcesAvailable, condContainerHealthy} {
		rev.Conditions = setConditions(rev.Conditions, s.condition(findCondition(rev.Conditions, typ), typ, runpb.Condition_CONDITION_SUCCEEDED))
	}
}

// reconcile ends a service's reconciliation once the revisions it needs are Ready or failed
// and SettleAfter has passed: traffic moves only if every revision it names is Ready.
func (s *Server) reconcile(sv *service) {
	if s.now.Before(sv.settleAt) {
		return
	}
	latest := s.latest(sv)
	var routes []*revision
	for _, t := range sv.spec.Traffic {
		if t.Type == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST {
			routes = append(routes, latest)
		} else {
			routes = append(routes, s.revisions[t.Revision])
		}
	}
	for _, r := range append(routes, latest) {
		if r != nil && !r.done {
			return
		}
	}
	var routeFail, configFail *revision
	for _, r := range routes {
		if r != nil && r.failed && routeFail == nil {
			routeFail = r
		}
	}
	if latest != nil && latest.failed {
		configFail = latest
	}
	st := sv.status
	st.Reconciling = false
	st.ObservedGeneration = st.Generation
	routes0 := s.condition(findCondition(st.Conditions, condRoutesReady), condRoutesReady, runpb.Condition_CONDITION_SUCCEEDED)
	if routeFail != nil {
		routes0 = s.serviceFailure(condRoutesReady, routeFail)
	} else {
		st.TrafficStatuses = s.trafficStatuses(sv)
	}
	config := s.condition(findCondition(st.Conditions, condConfigurationsReady), condConfigurationsReady, runpb.Condition_CONDITION_SUCCEEDED)
	if configFail != nil {
		config = s.serviceFailure(condConfigurationsReady, configFail)
	} else if latest != nil {
		st.LatestReadyRevision = latest.rev.Name
	}
	st.Conditions = setConditions(st.Conditions, routes0, config)
	switch {
	case configFail != nil:
		st.TerminalCondition = s.serviceFailure(condReady, configFail)
	case routeFail != nil:
		st.TerminalCondition = s.serviceFailure(condReady, routeFail)
	default:
		st.TerminalCondition = s.condition(st.TerminalCondition, condReady, runpb.Condition_CONDITION_SUCCEEDED)
	}
	s.finishOperations(sv)
}

// trafficStatuses is the service's requested traffic as served, with the URLs of tags.
func (s *Server) trafficStatuses(sv *service) []*runpb.TrafficTargetStatus {
	var out []*runpb.TrafficTargetStatus
	for _, t := range sv.spec.Traffic {
		ts := &runpb.TrafficTargetStatus{Type: t.Type, Revision: t.Revision, Percent: t.Percent, Tag: t.Tag}
		if t.Tag != "" {
			ts.Uri = s.serviceURI(t.Tag, sv.id)
		}
		out = append(out, ts)
	}
	return out
}

// serving reports why revision r may not be deleted, or "" if it may.
func (s *Server) serving(sv *service, r *revision) string {
	if sv.status.LatestCreatedRevision == r.rev.Name {
		return fmt.Sprintf("Revision '%s' is the latest created revision of service '%s' and cannot be deleted.", r.id, sv.id)
	}
	latestReady := shortName(sv.status.LatestReadyRevision)
	refers := func(typ runpb.TrafficTargetAllocationType, rev string) bool {
		if typ == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST {
			return latestReady == r.id
		}
		return rev == r.id
	}
	for _, t := range sv.spec.Traffic {
		if refers(t.Type, t.Revision) {
			return fmt.Sprintf("Revision '%s' is referenced by the traffic of service '%s' and cannot be deleted.", r.id, sv.id)
		}
	}
	for _, t := range sv.status.TrafficStatuses {
		if refers(t.Type, t.Revision) {
			return fmt.Sprintf("Revision '%s' is serving traffic of service '%s' and cannot be deleted.", r.id, sv.id)
		}
	}
	return ""
}

// trimRevisions forgets a service's oldest revisions serving no traffic beyond MaxRevisions.
func (s *Server) trimRevisions(sv *service) {
	for i := 0; len(sv.revs) > MaxRevisions && i < len(sv.revs); {
		r := sv.revs[i]
		if s.serving(sv, r) != "" {
			i++
			continue
		}
		s.removeRevision(sv, r)
	}
}

func (s *Server) removeRevision(sv *service, r *revision) {
	delete(s.revisions, r.id)
	sv.revs = slices.DeleteFunc(sv.revs, func(x *revision) bool { return x == r })
}

// condition returns a condition of type typ in state st, keeping old's transition time when
// old (which may be nil) was already in st.
func (s *Server) condition(old *runpb.Condition, typ string, st runpb.Condition_State) *runpb.Condition {
	c := &runpb.Condition{Type: typ, State: st, LastTransitionTime: timestamppb.New(s.now)}
	if old != nil && old.State == st {
		c.LastTransitionTime = old.LastTransitionTime
	}
	return c
}

// failedCondition is a FAILED condition with a reason named as in Condition.Reason.
func (s *Server) failedCondition(typ, reason, msg string) *runpb.Condition {
	c := &runpb.Condition{Type: typ, State: runpb.Condition_CONDITION_FAILED, Message: msg,
		LastTransitionTime: timestamppb.New(s.now), Severity: runpb.Condition_ERROR}
	key := reason
	if strings.ToUpper(key) != key {
		key = upperSnake(key)
	}
	if v, ok := runpb.Condition_CommonReason_value[key]; ok {
		c.Reasons = &runpb.Condition_Reason{Reason: runpb.Condition_CommonReason(v)}
	} else if v, ok := runpb.Condition_RevisionReason_value[key]; ok {
		c.Reasons = &runpb.Condition_RevisionReason_{RevisionReason: runpb.Condition_RevisionReason(v)}
	} else {
		c.Reasons = &runpb.Condition_Reason{Reason: runpb.Condition_UNKNOWN}
	}
	return c
}

// serviceFailure is a service condition failed because revision r failed.
func (s *Server) serviceFailure(typ string, r *revision) *runpb.Condition {
	return s.failedCondition(typ, runpb.Condition_REVISION_FAILED.String(), r.failure())
}

func upperSnake(camel string) string {
	var b strings.Builder
	for i, c := range camel {
		if c >= 'A' && c <= 'Z' && i > 0 {
			b.WriteByte('_')
		}
		b.WriteRune(c)
	}
	return strings.ToUpper(b.String())
}

func findCondition(list []*runpb.Condition, typ string) *runpb.Condition {
	for _, c := range list {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

// setConditions replaces or appends conditions by type.
func setConditions(list []*runpb.Condition, cs ...*runpb.Condition) []*runpb.Condition {
	for _, c := range cs {
		i := slices.IndexFunc(list, func(x *runpb.Condition) bool { return x.Type == c.Type })
		if i < 0 {
			list = append(list, c)
		} else {
			list[i] = c
		}
	}
	return list
}
