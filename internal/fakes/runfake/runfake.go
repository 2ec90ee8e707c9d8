// Package runfake is an in-process fake of the Google Cloud Run Admin API v2, served over gRPC on
// loopback with the SDK's own messages, for tests of code built on cloud.google.com/go/run/apiv2.
// It keeps services, revisions and long-running operations and reconciles them over a virtual
// clock that only Advance moves, so tests of deploys, traffic splits, tagged revisions and failed
// revisions never sleep.
package runfake

import (
	"context"
	"net"
	"path"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/gantry-dev/gantry/internal/fakes"
)

// Defaults the fake answers with unless Options say otherwise.
const (
	DefaultProject       = "my-project"
	DefaultProjectNumber = "123456789012"
	DefaultRegion        = "europe-west1"
	DefaultTick          = time.Second
	DefaultReadyAfter    = 5 * time.Second // a revision's creation to Ready
	// DefaultSettleAfter is the shortest reconciliation: a change that creates no revision
	// (traffic, labels) or a deletion takes this long.
	DefaultSettleAfter = 2 * time.Second
	// DefaultStartupTimeout is how long Cloud Run's default TCP startup probe waits for a
	// container to listen (timeout and period 240 s, one failure) before the revision fails.
	DefaultStartupTimeout = 240 * time.Second
)

// Bounds on the state the fake keeps, so long benchmarks with RunRealtime stay small.
const (
	MaxCalls      = 100_000 // Calls keeps the latest this many
	MaxOperations = 1_000   // the oldest finished operations are forgotten beyond this
	MaxRevisions  = 1_000   // per service, as Cloud Run; the oldest revisions serving no traffic go
)

// Options configures a Server; the zero value is usable.
type Options struct {
	Project       string // project ID in resource names; default DefaultProject
	ProjectNumber string // accepted in place of Project in requests; default DefaultProjectNumber
	Region        string // the one location served; default DefaultRegion
	// Start is the virtual clock's first reading; default the wall clock at Start.
	Start time.Time
	// Tick is the step Advance simulates in; default DefaultTick.
	Tick time.Duration
	// ReadyAfter is a revision's time from creation to Ready (or to its failure) unless its
	// Behavior says otherwise; default DefaultReadyAfter.
	ReadyAfter time.Duration
	// SettleAfter is the shortest time a change takes to reconcile, and all a change that
	// creates no revision or a deletion takes; default DefaultSettleAfter.
	SettleAfter time.Duration
	// Tokens, when set, decides which OAuth access tokens (the "authorization: Bearer X"
	// metadata) are allowed: a call without one fails with codes.Unauthenticated, one with a
	// refused token with codes.PermissionDenied. Nil checks nothing.
	Tokens func(token string) bool
	// Default is the behaviour of revisions no SetBehavior key matches (Ready after ReadyAfter).
	Default Behavior
}

// Behavior is how a revision behaves once created.
type Behavior struct {
	// ReadyAfter is the time from creation to Ready, or to failing if Fail is set; 0 means
	// Options.ReadyAfter.
	ReadyAfter time.Duration
	// Fail, if set, makes the revision's Ready condition end FAILED with this reason and message.
	Fail *Condition
}

// Condition is a failed condition's reason and message. Reason is the CamelCase (as the REST API
// shows it) or UPPER_SNAKE name of a runpb Condition_CommonReason or Condition_RevisionReason,
// e.g. "ContainerMissing" or "HealthCheckContainerError"; other reasons are reported as UNKNOWN.
type Condition struct {
	Reason, Message string
}

// ImageNotFound is the behaviour of a revision whose image does not exist in its registry.
func ImageNotFound(image string) Behavior {
	return Behavior{Fail: &Condition{
		Reason:  "ContainerMissing",
		Message: "Image '" + image + "' not found.",
	}}
}

// StartFailure is the behaviour of a revision whose container never listens on port: it fails
// once Cloud Run's default startup probe gives up (DefaultStartupTimeout).
func StartFailure(port int) Behavior {
	return Behavior{ReadyAfter: DefaultStartupTimeout, Fail: &Condition{
		Reason: "HealthCheckContainerError",
		Message: "The user-provided container failed to start and listen on the port defined " +
			"provided by the PORT=" + strconv.Itoa(port) + " environment variable within the allocated " +
			"timeout. This can happen when the container port is misconfigured or if the timeout " +
			"is too short. The health check timeout can be extended. Logs for this revision might " +
			"contain more information.",
	}}
}

// Call is one gRPC call the fake answered.
type Call struct {
	Method  string        // the RPC's name, e.g. "UpdateService" or "GetOperation"
	Request proto.Message // a copy of the request, e.g. *runpb.UpdateServiceRequest
	Code    codes.Code    // codes.OK when the call succeeded
}

// Fault makes calls fail with a gRPC status, after the authorization check.
type Fault struct {
	Method  string     // e.g. "UpdateService"; "" matches every method
	Code    codes.Code // e.g. codes.Unavailable
	Message string     // default: a message like Google's for Code
	Times   int        // calls to fail; 0 fails every call until ClearFaults
}

// Unavailable fails the next times calls of method with codes.Unavailable. The GAPIC clients
// retry it only for GetService and ListServices, and for the operations client's GetOperation,
// ListOperations and DeleteOperation (which op.Poll and op.Wait use); the other methods, among
// them CreateService, UpdateService, DeleteService and ServicesClient.GetOperation, return it.
func Unavailable(method string, times int) Fault {
	return Fault{Method: method, Code: codes.Unavailable, Times: times}
}

// Server is a fake of the Cloud Run Admin API v2. Point run.NewServicesClient (or
// NewRevisionsClient) at it with ClientOptions.
type Server struct {
	// Addr is the host:port the fake listens on (127.0.0.1).
	Addr string

	opts Options
	tb   testing.TB

	mu        sync.Mutex
	now       time.Time
	services  map[string]*service  // service ID -> service
	revisions map[string]*revision // revision ID -> revision (names are unique in a region)
	ops       map[string]*operationState
	opOrder   []string
	behaviors map[string]Behavior
	calls     []Call
	changed   chan struct{} // closed and replaced whenever the clock moves
	faults    fakes.Faults[Fault]
}

// Start serves a new fake on 127.0.0.1 until tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Project == "" {
		opts.Project = DefaultProject
	}
	if opts.ProjectNumber == "" {
		opts.ProjectNumber = DefaultProjectNumber
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.ReadyAfter <= 0 {
		opts.ReadyAfter = DefaultReadyAfter
	}
	if opts.SettleAfter <= 0 {
		opts.SettleAfter = DefaultSettleAfter
	}
	s := &Server{
		opts:      opts,
		tb:        tb,
		now:       opts.Start.Truncate(time.Millisecond),
		services:  map[string]*service{},
		revisions: map[string]*revision{},
		ops:       map[string]*operationState{},
		behaviors: map[string]Behavior{},
		changed:   make(chan struct{}),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("runfake: listening on 127.0.0.1: %v", err)
	}
	gs := grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	runpb.RegisterServicesServer(gs, servicesAPI{s: s})
	runpb.RegisterRevisionsServer(gs, revisionsAPI{s: s})
	longrunningpb.RegisterOperationsServer(gs, operationsAPI{s: s})
	go func() { _ = gs.Serve(lis) }()
	tb.Cleanup(gs.Stop)
	s.Addr = lis.Addr().String()
	return s
}

// ClientOptions point a client of cloud.google.com/go/run/apiv2 at the fake over plaintext gRPC,
// sending token as the OAuth access token if it is set (the Google auth library sends its own
// tokens only over TLS).
func (s *Server) ClientOptions(token string) []option.ClientOption {
	opts := []option.ClientOption{
		option.WithEndpoint(s.Addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
	if token != "" {
		opts = append(opts, option.WithGRPCDialOption(grpc.WithPerRPCCredentials(bearer(token))))
	}
	return opts
}

// bearer is an access token sent as "authorization: Bearer" metadata without TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// Parent is the location's resource name, "projects/P/locations/L".
func (s *Server) Parent() string {
	return "projects/" + s.opts.Project + "/locations/" + s.opts.Region
}

// ServiceName is the resource name of the service with ID id.
func (s *Server) ServiceName(id string) string { return s.Parent() + "/services/" + id }

// Now is the virtual clock's reading.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the virtual clock by d, reconciling every service in steps of Options.Tick.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := s.now.Add(d)
	for s.now.Before(end) {
		next := s.now.Add(s.opts.Tick)
		if next.After(end) {
			next = end
		}
		s.now = next
		s.step()
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// RunRealtime moves the virtual clock with the wall clock until ctx ends: every step (default
// Options.Tick) it advances by the wall time elapsed since the last step, and once more when ctx
// ends. It is for benchmarks that time a deployer against the fake in real time; tests should
// call Advance, which never sleeps.
func (s *Server) RunRealtime(ctx context.Context, step time.Duration) {
	if step <= 0 {
		step = s.opts.Tick
	}
	fakes.RunRealtime(ctx, step, s.Advance)
}

// SetBehavior sets how revisions behave that are named key (the revision ID, e.g.
// "api-00002-abc" or a template.revision) or, failing that, one of whose containers runs image
// key, exactly as in the template. It applies to revisions created afterwards.
func (s *Server) SetBehavior(key string, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behaviors[key] = b
}

// Inject queues a fault.
func (s *Server) Inject(f Fault) { s.faults.Add(f.Method, f.Times, f) }

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// Calls returns the calls answered so far (the latest MaxCalls), oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallCount counts the calls of method answered so far, failed ones included.
func (s *Server) CallCount(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Method == method {
			n++
		}
	}
	return n
}

// Service returns a copy of the service named id or by its resource name, or nil.
func (s *Server) Service(name string) *runpb.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv := s.services[shortName(name)]; sv != nil {
		return sv.view()
	}
	return nil
}

// Revision returns a copy of the revision named id or by its resource name, or nil.
func (s *Server) Revision(name string) *runpb.Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.revisions[shortName(name)]; r != nil {
		return proto.Clone(r.rev).(*runpb.Revision)
	}
	return nil
}

// Traffic is where a service's traffic goes now (its traffic_statuses): percent maps each
// revision ID that gets traffic to its share, LATEST resolved to the latest ready revision;
// tags maps each tag to its revision ID. Both are empty for an unknown service.
func (s *Server) Traffic(service string) (percent map[string]int32, tags map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	percent, tags = map[string]int32{}, map[string]string{}
	sv := s.services[shortName(service)]
	if sv == nil {
		return percent, tags
	}
	for _, t := range sv.status.TrafficStatuses {
		rev := t.Revision
		if t.Type == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST {
			rev = shortName(sv.status.LatestReadyRevision)
		}
		if t.Percent > 0 {
			percent[rev] += t.Percent
		}
		if t.Tag != "" {
			tags[t.Tag] = rev
		}
	}
	return percent, tags
}

// UpdateByOther changes a service as another client would, between the calls of the code under
// test: the fields svc sets (its Name names the service by ID or resource name) replace the
// service's, its generation and etag change even if nothing else does, and a changed template
// makes a new revision. A change the API would refuse fails the test.
func (s *Server) UpdateByOther(svc *runpb.Service) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.services[shortName(svc.GetName())]
	if sv == nil {
		s.tb.Errorf("runfake: UpdateByOther: no service %q", svc.GetName())
		return
	}
	want := proto.Clone(sv.spec).(*runpb.Service)
	in := specOf(svc)
	w := want.ProtoReflect()
	in.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		w.Set(fd, v)
		return true
	})
	if _, err := s.apply(sv, false, want, false, true); err != nil {
		s.tb.Errorf("runfake: UpdateByOther(%s): %v", sv.id, err)
	}
}

// intercept authorizes, injects faults into and records every call.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	msg, _ := req.(proto.Message)
	call := Call{Method: method}
	if msg != nil {
		call.Request = proto.Clone(msg)
	}
	resp, err := s.serve(ctx, method, msg, func() (any, error) { return handler(ctx, req) })
	call.Code = status.Code(err)
	s.mu.Lock()
	if len(s.calls) >= MaxCalls {
		s.calls = append(s.calls[:0], s.calls[len(s.calls)-MaxCalls/2:]...)
	}
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	return resp, err
}

func (s *Server) serve(ctx context.Context, method string, req proto.Message, handle func() (any, error)) (any, error) {
	if err := s.authorize(ctx, method, req); err != nil {
		return nil, err
	}
	if f, ok := s.faults.Take(method); ok {
		msg := f.Message
		if msg == "" {
			msg = s.defaultMessage(f.Code, method, s.resourceOf(req))
		}
		return nil, status.Error(f.Code, msg)
	}
	return handle()
}
