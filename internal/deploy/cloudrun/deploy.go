// Package cloudrun deploys to Google Cloud Run through the Admin API v2: a
// revision named after the commit, created or updated with the service's etag
// (a concurrent change fails the call instead of being overwritten), watched
// with short polls until Cloud Run has reconciled it, then traffic moved all
// at once, not at all (a tagged preview) or in canary steps, each gated by
// verify, and moved back on failure.
package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/verify"
)

// Strategies.
const (
	All     = "all"     // 100% to the new revision
	Preview = "preview" // the new revision gets no traffic, only a tag URL
	Canary  = "canary"  // traffic in steps, verified between them
)

// Strategies lists the valid strategy names.
var Strategies = []string{All, Preview, Canary}

// LabelSHA is the revision label holding the commit, by which rollback finds it.
const LabelSHA = "gantry-sha"

// Defaults.
const (
	DefaultPollInterval = 2 * time.Second
	DefaultTimeout      = 10 * time.Minute
)

// Env is an environment variable of the container: a value, or a Secret
// Manager secret and version.
type Env struct {
	Name, Value           string
	Secret, SecretVersion string
}

// Settings are the container and scaling settings a deploy sets; zero values
// keep the service's.
type Settings struct {
	Env                        []Env
	CPU, Memory                string
	MinInstances, MaxInstances *int32
	Concurrency, Port          *int32
	ServiceAccount             string
	Ingress                    runpb.IngressTraffic
	Labels                     map[string]string
}

// Options is one deploy.
type Options struct {
	Project, Region, Service string
	// Image is the container image, repo@sha256:...
	Image    string
	SHA      string
	Settings Settings

	Strategy       string // default All
	CanarySteps    []int  // rising percentages ending with 100
	CanaryInterval time.Duration
	// MaxErrorRate is the share of failed requests to the service URL (probed
	// through the canary interval, HTTPClient) that stops a canary step; 0
	// means 0.01.
	MaxErrorRate float64
	HTTPClient   *http.Client
	// Tag is the new revision's traffic tag; default sha-<7 hex>.
	Tag string

	// Revision sends traffic to this existing revision (short name) instead
	// of creating one: what rollback does.
	Revision string

	// HealthPath is appended to the service and tag URLs to verify them.
	HealthPath string
	// URL, when set, is verified as well once the new revision serves all
	// traffic (e.g. a custom domain).
	URL string
	// Verify checks that url serves SHA; nil skips verification. own says
	// url reaches only the new revision (its tag URL), so a wrong commit there
	// is certain after a few answers (verify.Options.OwnAddress).
	Verify func(ctx context.Context, url string, own bool) (verify.Result, error)

	AutoRollback bool
	Timeout      time.Duration
	PollInterval time.Duration
	// LockWait is how long to wait for another change of the service that is
	// still reconciling.
	LockWait time.Duration

	Clock       clock.Clock
	Logf, Warnf func(format string, args ...any)
}

// Target is one traffic target as it was or is served.
type Target struct {
	Revision string `json:"revision"`
	Percent  int32  `json:"percent"`
	Tag      string `json:"tag,omitempty"`
	URL      string `json:"url,omitempty"`
}

// Result is what a deploy did, filled in even when it failed.
type Result struct {
	Outcome          string
	Revision         string // short name of the new (or rolled-back-to) revision
	PreviousRevision string // the revision that served most traffic before
	URL, TagURL      string
	TrafficBefore    []Target
	TrafficAfter     []Target
	Timeline         []deploy.Mark
	Verified         []string
	Warnings         []string
	Created          bool // the service did not exist
}

type deployer struct {
	api   API
	o     Options
	res   *Result
	start time.Time
	name  string // projects/P/locations/L/services/S
	etag  string
	prev  []*runpb.TrafficTarget // traffic before, as explicit revision targets
	sent  bool                   // Cloud Run accepted a change of the service
}

// ServiceName is the resource name of a service.
func ServiceName(project, region, service string) string {
	return fmt.Sprintf("projects/%s/locations/%s/services/%s", project, region, service)
}

// Deploy runs one deploy. On failure the previous traffic keeps (or goes
// back to) serving, unless AutoRollback is off.
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
	if o.Strategy == "" {
		o.Strategy = All
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HealthPath == "" {
		o.HealthPath = "/health"
	}
	if o.MaxErrorRate <= 0 {
		o.MaxErrorRate = 0.01
	}
	if o.Tag == "" && o.SHA != "" {
		o.Tag = commit.Tag(o.SHA)
	}
	d := &deployer{api: api, o: o, res: &Result{Outcome: deploy.Failed}, start: o.Clock.Now(), name: ServiceName(o.Project, o.Region, o.Service)}
	err := d.run(ctx)
	return d.res, err
}

func (d *deployer) mark(name string) {
	d.res.Timeline = append(d.res.Timeline, deploy.Mark{Name: name, At: d.o.Clock.Now().Sub(d.start)})
}

func (d *deployer) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.res.Warnings = append(d.res.Warnings, msg)
	d.o.Warnf("%s", msg)
}

func (d *deployer) run(ctx context.Context) error {
	o := d.o
	cur, err := d.current(ctx)
	if err != nil {
		return err
	}
	if cur == nil && o.Strategy != All {
		return fmt.Errorf("service %s does not exist yet: its first deploy takes strategy all (a %s needs a revision already serving)", o.Service, o.Strategy)
	}
	if cur == nil && o.Revision != "" {
		return fmt.Errorf("service %s does not exist: nothing to roll back", o.Service)
	}

	var svc *runpb.Service
	rev := o.Revision
	if rev == "" {
		if rev, err = d.revisionName(ctx); err != nil {
			return err
		}
		svc = d.render(cur, rev)
	} else {
		svc = proto.Clone(cur).(*runpb.Service)
	}
	d.res.Revision = rev
	first := d.firstTraffic(rev)
	svc.Traffic = first
	svc.Etag = d.etag
	verb := "updating"
	if cur == nil {
		verb = "creating"
		d.res.Created = true
	}
	o.Logf("%s service %s: revision %s (%s), strategy %s", verb, o.Service, rev, commit.Short(o.SHA), o.Strategy)
	got, err := d.update(ctx, svc, cur == nil, "revision "+rev+" ready")
	if err != nil {
		if f := d.revisionFailure(ctx, rev, err); f != nil {
			d.res.Outcome = deploy.Failed
			err = f
		}
		if d.sent && cur != nil {
			return d.restoreTraffic(ctx, err)
		}
		return err
	}
	d.served(got)

	switch {
	case o.Revision != "":
		// A rollback: traffic moved in one step.
		if err := d.verifyURL(ctx, got.GetUri()); err != nil {
			return d.recover(ctx, err)
		}
	case o.Strategy == Preview:
		if err := d.verifyURL(ctx, d.res.TagURL); err != nil {
			return d.recover(ctx, err)
		}
		d.res.Outcome = deploy.Success
		return nil
	case o.Strategy == Canary:
		if err := d.verifyURL(ctx, d.res.TagURL); err != nil {
			return d.recover(ctx, err)
		}
		for _, p := range o.CanarySteps {
			t := split(d.prev, rev, int32(p), o.Tag)
			d.etag = got.GetEtag()
			next := proto.Clone(got).(*runpb.Service)
			next.Traffic, next.Etag = t, d.etag
			if got, err = d.update(ctx, next, false, fmt.Sprintf("%d%% to %s", p, rev)); err != nil {
				return d.recover(ctx, err)
			}
			d.served(got)
			if err := d.verifyURL(ctx, d.res.TagURL); err != nil {
				return d.recover(ctx, err)
			}
			if p < 100 && o.CanaryInterval > 0 {
				if err := d.hold(ctx, got.GetUri(), p, rev); err != nil {
					return d.recover(ctx, err)
				}
				if err := d.verifyURL(ctx, d.res.TagURL); err != nil {
					return d.recover(ctx, err)
				}
			}
		}
		if err := d.verifyURL(ctx, got.GetUri()); err != nil {
			return d.recover(ctx, err)
		}
	default:
		if err := d.verifyURL(ctx, got.GetUri()); err != nil {
			return d.recover(ctx, err)
		}
	}
	if o.URL != "" {
		if err := d.verifyBase(ctx, o.URL); err != nil {
			return d.recover(ctx, err)
		}
	}
	d.res.Outcome = deploy.Success
	return nil
}

// hold keeps a canary step for the canary interval, probing the service URL
// (which splits requests as the traffic does) for its error rate when the
// deploy verifies.
func (d *deployer) hold(ctx context.Context, uri string, p int, rev string) error {
	o := d.o
	if o.Verify == nil || uri == "" {
		o.Logf("holding %d%% on %s for %s", p, rev, o.CanaryInterval)
		return o.Clock.Sleep(ctx, o.CanaryInterval)
	}
	url := strings.TrimSuffix(uri, "/") + o.HealthPath
	o.Logf("holding %d%% on %s for %s, probing %s", p, rev, o.CanaryInterval, url)
	res, err := verify.Probe(ctx, o.HTTPClient, o.Clock, url, probeInterval, o.CanaryInterval)
	if err != nil {
		return err
	}
	o.Logf("canary at %d%%: %d of %d requests to %s failed (%.1f%%)", p, res.Failed, res.Total, url, res.Rate()*100)
	d.mark(fmt.Sprintf("%d%% held %s: %d/%d requests failed", p, o.CanaryInterval, res.Failed, res.Total))
	return res.Check(fmt.Sprintf("canary at %d%%: %s", p, url), o.MaxErrorRate)
}

// probeInterval is the pace of the error-rate probe during a canary step.
const probeInterval = 200 * time.Millisecond

// current reads the service (nil when it does not exist) and waits for a
// change that is still reconciling.
func (d *deployer) current(ctx context.Context) (*runpb.Service, error) {
	started := d.o.Clock.Now()
	waited := false
	for {
		cur, err := d.api.GetService(ctx, d.name)
		if status.Code(err) == codes.NotFound {
			return nil, nil
		}
		if err != nil {
			return nil, explain("GetService", d.o, err)
		}
		if !cur.GetReconciling() {
			d.etag = cur.GetEtag()
			st := resolveLatest(cur)
			d.prev = explicit(st)
			d.res.TrafficBefore = targets(st)
			d.res.PreviousRevision = mostTraffic(st)
			d.res.URL = cur.GetUri()
			return cur, nil
		}
		if d.o.Clock.Now().Sub(started) >= d.o.LockWait {
			return nil, fmt.Errorf("service %s is still reconciling generation %d (another deploy or change is under way); gantry never stacks changes: wait for it, or raise lock-wait (now %s)", d.o.Service, cur.GetGeneration(), d.o.LockWait)
		}
		if !waited {
			waited = true
			d.o.Logf("service %s is reconciling generation %d; waiting up to %s", d.o.Service, cur.GetGeneration(), d.o.LockWait)
			d.mark(fmt.Sprintf("waiting for generation %d", cur.GetGeneration()))
		}
		if err := d.o.Clock.Sleep(ctx, d.o.PollInterval); err != nil {
			return nil, err
		}
	}
}

// revisionName is <service>-sha-<7 hex>, with -2, -3, ... when a revision of
// that name exists (a second deploy of one commit).
func (d *deployer) revisionName(ctx context.Context) (string, error) {
	base := d.o.Service + "-" + commit.Tag(d.o.SHA)
	for i := 1; i <= 50; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		_, err := d.api.GetRevision(ctx, d.name+"/revisions/"+name)
		if status.Code(err) == codes.NotFound {
			return name, nil
		}
		if err != nil {
			return "", explain("GetRevision", d.o, err)
		}
	}
	return "", fmt.Errorf("50 revisions of commit %s exist already; delete some (gcloud run revisions delete) or deploy another commit", commit.Short(d.o.SHA))
}

// render is the service with the new revision's template.
func (d *deployer) render(cur *runpb.Service, rev string) *runpb.Service {
	o := d.o
	svc := &runpb.Service{Name: d.name}
	if cur != nil {
		svc = proto.Clone(cur).(*runpb.Service)
	}
	if svc.Template == nil {
		svc.Template = &runpb.RevisionTemplate{}
	}
	t := svc.Template
	t.Revision = rev
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[LabelSHA] = strings.ToLower(o.SHA)
	if len(t.Containers) == 0 {
		t.Containers = []*runpb.Container{{}}
	}
	c := t.Containers[0]
	c.Image = o.Image
	s := o.Settings
	for _, e := range s.Env {
		v := &runpb.EnvVar{Name: e.Name}
		if e.Secret != "" {
			v.Values = &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{SecretKeyRef: &runpb.SecretKeySelector{Secret: e.Secret, Version: e.SecretVersion}}}
		} else {
			v.Values = &runpb.EnvVar_Value{Value: e.Value}
		}
		replaced := false
		for i, x := range c.Env {
			if x.GetName() == e.Name {
				c.Env[i], replaced = v, true
			}
		}
		if !replaced {
			c.Env = append(c.Env, v)
		}
	}
	if s.CPU != "" || s.Memory != "" {
		if c.Resources == nil {
			c.Resources = &runpb.ResourceRequirements{}
		}
		if c.Resources.Limits == nil {
			c.Resources.Limits = map[string]string{}
		}
		if s.CPU != "" {
			c.Resources.Limits["cpu"] = s.CPU
		}
		if s.Memory != "" {
			c.Resources.Limits["memory"] = s.Memory
		}
	}
	if s.Port != nil {
		c.Ports = []*runpb.ContainerPort{{ContainerPort: *s.Port}}
	}
	if s.MinInstances != nil || s.MaxInstances != nil {
		if t.Scaling == nil {
			t.Scaling = &runpb.RevisionScaling{}
		}
		if s.MinInstances != nil {
			t.Scaling.MinInstanceCount = *s.MinInstances
		}
		if s.MaxInstances != nil {
			t.Scaling.MaxInstanceCount = *s.MaxInstances
		}
	}
	if s.Concurrency != nil {
		t.MaxInstanceRequestConcurrency = *s.Concurrency
	}
	if s.ServiceAccount != "" {
		t.ServiceAccount = s.ServiceAccount
	}
	if s.Ingress != runpb.IngressTraffic_INGRESS_TRAFFIC_UNSPECIFIED {
		svc.Ingress = s.Ingress
	}
	for k, v := range s.Labels {
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		svc.Labels[k] = v
		t.Labels[k] = v
	}
	return svc
}

// firstTraffic is the traffic of the first update: the new revision tagged,
// with 100% (all, rollback) or 0% beside the previous traffic (preview, canary).
func (d *deployer) firstTraffic(rev string) []*runpb.TrafficTarget {
	if d.o.Strategy == All || d.o.Revision != "" {
		out := []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: rev, Percent: 100, Tag: d.o.Tag}}
		return append(out, userTags(d.prev, rev, d.o.Tag)...)
	}
	return split(d.prev, rev, 0, d.o.Tag)
}

// split gives the new revision p percent (tagged) and the previous targets
// the rest in their proportions; tags of other revisions stay at 0%.
func split(prev []*runpb.TrafficTarget, rev string, p int32, tag string) []*runpb.TrafficTarget {
	out := []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: rev, Percent: p, Tag: tag}}
	var serving []*runpb.TrafficTarget
	total := int32(0)
	for _, t := range prev {
		if t.Revision != rev && t.Percent > 0 {
			serving = append(serving, t)
			total += t.Percent
		}
	}
	rest := 100 - p
	given := int32(0)
	for i, t := range serving {
		share := rest * t.Percent / total
		if i == len(serving)-1 {
			share = rest - given // rounding goes to the last
		}
		given += share
		if kept := keepTag(t.Tag, tag); share > 0 || kept != "" {
			out = append(out, &runpb.TrafficTarget{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: t.Revision, Percent: share, Tag: kept})
		}
	}
	return append(out, userTags(prev, rev, tag)...)
}

// userTags keeps the 0% tagged targets of other revisions, except gantry's own
// sha- tags of earlier deploys, which would pile up.
func userTags(prev []*runpb.TrafficTarget, rev, tag string) []*runpb.TrafficTarget {
	var out []*runpb.TrafficTarget
	for _, t := range prev {
		if t.Percent == 0 && t.Tag != "" && t.Revision != rev && !strings.HasPrefix(t.Tag, "sha-") && t.Tag != tag {
			out = append(out, &runpb.TrafficTarget{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: t.Revision, Tag: t.Tag})
		}
	}
	return out
}

func keepTag(t, newTag string) string {
	if t == newTag || strings.HasPrefix(t, "sha-") {
		return ""
	}
	return t
}

// resolveLatest returns the service's traffic statuses with the revision a
// LATEST target serves filled in where the status leaves it empty, as for a
// service created by gcloud run deploy (100 % to LATEST): without it such a
// service has no previous revision to split a canary with or go back to.
func resolveLatest(svc *runpb.Service) []*runpb.TrafficTargetStatus {
	latest := base(svc.GetLatestReadyRevision())
	var out []*runpb.TrafficTargetStatus
	for _, s := range svc.GetTrafficStatuses() {
		if s.GetRevision() == "" && s.GetType() == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST && latest != "" {
			s = proto.Clone(s).(*runpb.TrafficTargetStatus)
			s.Revision = latest
		}
		out = append(out, s)
	}
	return out
}

// explicit turns traffic statuses into targets naming their revisions.
func explicit(st []*runpb.TrafficTargetStatus) []*runpb.TrafficTarget {
	var out []*runpb.TrafficTarget
	for _, s := range st {
		if s.GetRevision() == "" {
			continue
		}
		out = append(out, &runpb.TrafficTarget{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: s.GetRevision(), Percent: s.GetPercent(), Tag: s.GetTag()})
	}
	return out
}

func targets(st []*runpb.TrafficTargetStatus) []Target {
	var out []Target
	for _, s := range st {
		out = append(out, Target{Revision: s.GetRevision(), Percent: s.GetPercent(), Tag: s.GetTag(), URL: s.GetUri()})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Percent > out[j].Percent })
	return out
}

func mostTraffic(st []*runpb.TrafficTargetStatus) string {
	best, rev := int32(-1), ""
	for _, s := range st {
		if s.GetPercent() > best && s.GetRevision() != "" {
			best, rev = s.GetPercent(), s.GetRevision()
		}
	}
	return rev
}

// served records the traffic and URLs of a reconciled service.
func (d *deployer) served(svc *runpb.Service) {
	d.res.URL = svc.GetUri()
	d.res.TrafficAfter = targets(svc.GetTrafficStatuses())
	for _, s := range svc.GetTrafficStatuses() {
		if s.GetTag() == d.o.Tag && s.GetRevision() == d.res.Revision && s.GetUri() != "" {
			d.res.TagURL = s.GetUri()
		}
	}
}

// update sends svc and waits with short polls until Cloud Run has reconciled it.
func (d *deployer) update(ctx context.Context, svc *runpb.Service, create bool, doneMark string) (*runpb.Service, error) {
	op, err := d.api.UpdateService(ctx, svc, create)
	if err != nil {
		return nil, explain("UpdateService", d.o, err)
	}
	d.sent = true
	got, err := d.await(ctx, op)
	if err != nil {
		return nil, err
	}
	if got == nil {
		if got, err = d.api.GetService(ctx, d.name); err != nil {
			return nil, explain("GetService", d.o, err)
		}
	}
	if why := notReconciled(got, svc.GetTraffic()); why != "" {
		return nil, fmt.Errorf("service %s: the operation finished but %s", d.o.Service, why)
	}
	d.etag = got.GetEtag()
	d.mark(doneMark)
	return got, nil
}

// await polls op until it is done or the timeout has passed.
func (d *deployer) await(ctx context.Context, op Operation) (*runpb.Service, error) {
	deadline := d.o.Clock.Now().Add(d.o.Timeout)
	for {
		got, err := op.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &opError{err: err}
		}
		if op.Done() {
			return got, nil
		}
		if !d.o.Clock.Now().Before(deadline) {
			return nil, fmt.Errorf("service %s not reconciled after %s; raise timeout if revisions take longer to start", d.o.Service, d.o.Timeout)
		}
		if err := d.o.Clock.Sleep(ctx, d.o.PollInterval); err != nil {
			return nil, err
		}
	}
}

// restoreTraffic puts the previous traffic back in the service's spec after the first update
// failed (a revision that never became ready, a timeout): Cloud Run kept serving the old
// revisions, but the spec still asked for the new one. A failed latest revision fails the
// operation even so; what counts is that the traffic serves as requested again.
func (d *deployer) restoreTraffic(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if len(d.prev) == 0 {
		return err
	}
	cur, gerr := d.api.GetService(ctx, d.name)
	if gerr != nil {
		return fmt.Errorf("%w; and reading the service to restore its traffic failed: %v", err, explain("GetService", d.o, gerr))
	}
	back := proto.Clone(cur).(*runpb.Service)
	back.Traffic = make([]*runpb.TrafficTarget, len(d.prev))
	for i, t := range d.prev {
		back.Traffic[i] = proto.Clone(t).(*runpb.TrafficTarget)
	}
	back.Etag = cur.GetEtag()
	d.o.Logf("restoring the requested traffic: %s", trafficText(targetsOf(d.prev)))
	op, uerr := d.api.UpdateService(ctx, back, false)
	if uerr != nil {
		return fmt.Errorf("%w; and restoring the previous traffic in the service's spec failed: %v", err, explain("UpdateService", d.o, uerr))
	}
	var oe *opError
	if _, werr := d.await(ctx, op); werr != nil && !errors.As(werr, &oe) {
		return fmt.Errorf("%w; the service's requested traffic is back on %s, but Cloud Run has not applied it yet: %v", err, trafficText(targetsOf(d.prev)), werr)
	}
	got, gerr := d.api.GetService(ctx, d.name)
	if gerr != nil {
		return fmt.Errorf("%w; and reading the service after restoring its traffic failed: %v", err, explain("GetService", d.o, gerr))
	}
	if why := trafficShows(got, back.Traffic); why != "" || got.GetReconciling() || got.GetObservedGeneration() != got.GetGeneration() {
		return fmt.Errorf("%w; and restoring the previous traffic in the service's spec did not take (%s)", err, orText(why, "still reconciling"))
	}
	d.etag = got.GetEtag()
	d.served(got)
	d.mark("traffic spec back on " + d.res.PreviousRevision)
	return fmt.Errorf("%w; the service's requested traffic is back on %s", err, trafficText(targetsOf(d.prev)))
}

func orText(s, other string) string {
	if s == "" {
		return other
	}
	return s
}

// opError is a failed long-running operation.
type opError struct{ err error }

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// notReconciled says what is not done yet in svc, or "".
func notReconciled(svc *runpb.Service, want []*runpb.TrafficTarget) string {
	switch {
	case svc.GetReconciling():
		return "it is still reconciling"
	case svc.GetObservedGeneration() != svc.GetGeneration():
		return fmt.Sprintf("observed generation %d is not generation %d", svc.GetObservedGeneration(), svc.GetGeneration())
	case svc.GetTerminalCondition().GetState() != runpb.Condition_CONDITION_SUCCEEDED:
		return fmt.Sprintf("its Ready condition is %s: %s", svc.GetTerminalCondition().GetState(), svc.GetTerminalCondition().GetMessage())
	case svc.GetLatestReadyRevision() != svc.GetLatestCreatedRevision():
		return fmt.Sprintf("the latest created revision %s is not the latest ready %s", base(svc.GetLatestCreatedRevision()), base(svc.GetLatestReadyRevision()))
	}
	return trafficShows(svc, want)
}

// trafficShows says which of the requested revision targets svc's traffic statuses do not show, or "".
func trafficShows(svc *runpb.Service, want []*runpb.TrafficTarget) string {
	have := map[string]int32{}
	for _, s := range svc.GetTrafficStatuses() {
		have[base(s.GetRevision())+"#"+s.GetTag()] += s.GetPercent()
	}
	for _, t := range want {
		if t.GetType() == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION && have[base(t.GetRevision())+"#"+t.GetTag()] != t.GetPercent() {
			return fmt.Sprintf("its traffic statuses do not show the requested %d%% to %s", t.GetPercent(), t.GetRevision())
		}
	}
	return ""
}

// revisionFailure explains why the new revision did not become ready, or
// returns nil when that is not why err happened.
func (d *deployer) revisionFailure(ctx context.Context, rev string, err error) error {
	var oe *opError
	if !errors.As(err, &oe) {
		return nil
	}
	r, gerr := d.api.GetRevision(ctx, d.name+"/revisions/"+rev)
	reason := status.Convert(oe.err).Message()
	if gerr == nil {
		for _, c := range r.GetConditions() {
			if c.GetState() == runpb.Condition_CONDITION_FAILED {
				reason = conditionText(c)
				break
			}
		}
	}
	d.mark("revision " + rev + " failed")
	prev := d.res.PreviousRevision
	if prev == "" {
		return fmt.Errorf("revision %s failed: %s", rev, reason)
	}
	return fmt.Errorf("revision %s failed: %s; %s kept serving all traffic", rev, reason, prev)
}

func conditionText(c *runpb.Condition) string {
	var why string
	switch r := c.GetReasons().(type) {
	case *runpb.Condition_RevisionReason_:
		why = r.RevisionReason.String()
	case *runpb.Condition_Reason:
		why = r.Reason.String()
	case *runpb.Condition_ExecutionReason_:
		why = r.ExecutionReason.String()
	}
	if why == "" || strings.HasSuffix(why, "UNDEFINED") {
		return c.GetType() + ": " + c.GetMessage()
	}
	return why + ": " + c.GetMessage()
}

// verifyURL checks base + the health path.
func (d *deployer) verifyURL(ctx context.Context, base string) error {
	if base == "" {
		return nil
	}
	return d.verifyBase(ctx, strings.TrimSuffix(base, "/")+d.o.HealthPath)
}

func (d *deployer) verifyBase(ctx context.Context, url string) error {
	if d.o.Verify == nil {
		return nil
	}
	// The tag URL reaches the new revision only; the service URL may reach
	// the previous one.
	own := d.res.TagURL != "" && url == strings.TrimSuffix(d.res.TagURL, "/")+d.o.HealthPath
	if _, err := d.o.Verify(ctx, url, own); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.mark("verify failed: " + url)
		return fmt.Errorf("verify %s: %w", url, err)
	}
	d.res.Verified = append(d.res.Verified, url)
	d.mark("verified " + url)
	return nil
}

// recover puts the previous traffic back after a failure past the first
// update.
func (d *deployer) recover(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	if d.res.Created || len(d.prev) == 0 {
		return fmt.Errorf("%w; the service has no earlier traffic to go back to", err)
	}
	if !d.o.AutoRollback {
		d.res.Outcome = deploy.Abandoned
		d.warn("auto-rollback is off: traffic stays as it is (%s)", trafficText(d.res.TrafficAfter))
		return err
	}
	d.mark("rollback")
	d.o.Logf("sending traffic back: %s", trafficText(targetsOf(d.prev)))
	cur, gerr := d.api.GetService(ctx, d.name)
	if gerr != nil {
		return fmt.Errorf("%w; and reading the service to roll back failed: %v", err, explain("GetService", d.o, gerr))
	}
	back := proto.Clone(cur).(*runpb.Service)
	back.Traffic = append(d.prev[:len(d.prev):len(d.prev)], d.keepNewTagged()...)
	back.Etag = cur.GetEtag()
	got, uerr := d.update(ctx, back, false, "traffic back on "+d.res.PreviousRevision)
	if uerr != nil {
		return fmt.Errorf("%w; and the rollback failed: %v", err, uerr)
	}
	d.served(got)
	d.res.Outcome = deploy.RolledBack
	return fmt.Errorf("%w; traffic is back on %s", err, d.res.PreviousRevision)
}

// keepNewTagged keeps the failed revision reachable at its tag (0%) for debugging.
func (d *deployer) keepNewTagged() []*runpb.TrafficTarget {
	if d.res.Revision == "" || d.o.Revision != "" {
		return nil
	}
	for _, t := range d.prev {
		if t.Revision == d.res.Revision {
			return nil
		}
	}
	return []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: d.res.Revision, Tag: d.o.Tag}}
}

func targetsOf(ts []*runpb.TrafficTarget) []Target {
	var out []Target
	for _, t := range ts {
		out = append(out, Target{Revision: t.Revision, Percent: t.Percent, Tag: t.Tag})
	}
	return out
}

// TrafficText is a traffic split in one line, e.g. "api-sha-abc1234 90%, api-sha-def5678 10%".
func trafficText(ts []Target) string {
	var parts []string
	for _, t := range ts {
		if t.Percent == 0 && t.Tag == "" {
			continue
		}
		p := fmt.Sprintf("%s %d%%", base(t.Revision), t.Percent)
		if t.Tag != "" {
			p += " (tag " + t.Tag + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// TrafficText is trafficText for callers.
func TrafficText(ts []Target) string { return trafficText(ts) }

func base(rev string) string {
	if i := strings.LastIndex(rev, "/"); i >= 0 {
		return rev[i+1:]
	}
	return rev
}

// explain words a Cloud Run API error with what to check.
func explain(op string, o Options, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("cloud run %s: %w", op, err)
	}
	switch st.Code() {
	case codes.PermissionDenied:
		return fmt.Errorf("cloud run %s: permission denied (%s); grant the deploying identity roles/run.developer on project %s (and roles/iam.serviceAccountUser on the runtime service account)", op, st.Message(), o.Project)
	case codes.Unauthenticated:
		return fmt.Errorf("cloud run %s: not authenticated (%s); check gcp-workload-identity-provider / GOOGLE_APPLICATION_CREDENTIALS", op, st.Message())
	case codes.NotFound:
		return fmt.Errorf("cloud run %s: not found (%s); check project %s and region %s", op, st.Message(), o.Project, o.Region)
	case codes.Aborted:
		return fmt.Errorf("cloud run %s: service %s was changed by someone else since gantry read it (%s); nothing was overwritten: re-run the deploy", op, o.Service, st.Message())
	case codes.InvalidArgument, codes.FailedPrecondition:
		return fmt.Errorf("cloud run %s: Cloud Run refused the change (%s: %s)", op, st.Code(), st.Message())
	}
	return fmt.Errorf("cloud run %s: %s: %s", op, st.Code(), st.Message())
}

// FindRevision finds the revision to roll back to among the service's
// revisions: for to = "previous", the newest ready revision of another commit
// than the one serving most traffic; else the newest ready revision of commit
// to (7+ hex), by the gantry-sha label gantry puts on revisions. It returns the
// revision's short name and commit.
func FindRevision(ctx context.Context, api API, o Options, to string) (rev, sha string, err error) {
	name := ServiceName(o.Project, o.Region, o.Service)
	svc, err := api.GetService(ctx, name)
	if err != nil {
		return "", "", explain("GetService", o, err)
	}
	revs, err := api.ListRevisions(ctx, name)
	if err != nil {
		return "", "", explain("ListRevisions", o, err)
	}
	sort.SliceStable(revs, func(i, j int) bool { return revs[i].GetCreateTime().AsTime().After(revs[j].GetCreateTime().AsTime()) })
	serving := mostTraffic(resolveLatest(svc))
	current := ""
	for _, r := range revs {
		if base(r.GetName()) == base(serving) {
			current = r.GetLabels()[LabelSHA]
		}
	}
	for _, r := range revs {
		s := r.GetLabels()[LabelSHA]
		if s == "" || !ready(r) {
			continue
		}
		if to == "previous" && !commit.Matches(s, current) && base(r.GetName()) != base(serving) {
			return base(r.GetName()), s, nil
		}
		if to != "previous" && commit.Matches(s, to) {
			return base(r.GetName()), s, nil
		}
	}
	if to == "previous" {
		return "", "", fmt.Errorf("service %s has no ready revision of another commit than the serving one (%s)", o.Service, orNone(current))
	}
	return "", "", fmt.Errorf("service %s has no ready revision of commit %s (revisions carry a %s label when gantry deployed them)", o.Service, to, LabelSHA)
}

func ready(r *runpb.Revision) bool {
	for _, c := range r.GetConditions() {
		if c.GetType() == "Ready" {
			return c.GetState() == runpb.Condition_CONDITION_SUCCEEDED
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "no gantry-sha label"
	}
	return s
}
