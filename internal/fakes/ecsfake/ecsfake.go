// Package ecsfake is an in-process fake of Amazon ECS speaking its awsJson1.1 wire protocol with the
// SDK's own types, for tests of code built on aws-sdk-go-v2/service/ecs. It keeps task definitions,
// services, deployments and tasks, and moves them over a virtual clock that only Advance moves, so
// tests of rolling, blue/green, canary and linear rollouts, crashing tasks, circuit-breaker
// rollbacks and StopServiceDeployment never sleep; Traffic shows where the load balancer routes.
package ecsfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/gantry-dev/gantry/internal/fakes"
)

// TargetPrefix is the X-Amz-Target prefix of ECS's awsJson1.1 API.
const TargetPrefix = "AmazonEC2ContainerServiceV20141113."

// Defaults the fake answers with unless Options say otherwise.
const (
	DefaultAccount     = "123456789012"
	DefaultRegion      = "us-east-1"
	DefaultCluster     = "default"
	DefaultStartAfter  = 10 * time.Second // PROVISIONING to RUNNING
	DefaultTick        = time.Second
	DefaultStopAfter   = 30 * time.Second // STOPPING to STOPPED for tasks the scheduler stops
	DefaultSteadyAfter = 10 * time.Second // steady that long before a rollout is COMPLETED
	DefaultStageAfter  = 5 * time.Second  // length of a lifecycle stage that waits for nothing
)

// Error codes the fake answers with; tests inject some of them with Inject.
const (
	CodeThrottling            = "ThrottlingException" // the SDK retries it
	CodeAccessDenied          = "AccessDeniedException"
	CodeClient                = "ClientException"
	CodeInvalidParameter      = "InvalidParameterException"
	CodeClusterNotFound       = "ClusterNotFoundException"
	CodeServiceNotFound       = "ServiceNotFoundException"
	CodeServer                = "ServerException"
	CodeMissingAuthentication = "MissingAuthenticationTokenException"
	CodeSerialization         = "SerializationException"
	CodeUnknownOperation      = "UnknownOperationException"
	// CodeConflict answers StopServiceDeployment of a service deployment that is no longer
	// PENDING or IN_PROGRESS (nor already being stopped or rolled back).
	CodeConflict                  = "ConflictException"
	CodeServiceDeploymentNotFound = "ServiceDeploymentNotFoundException"
)

// Options configures a Server; the zero value is usable.
type Options struct {
	Account  string   // default DefaultAccount
	Region   string   // region in ARNs; default DefaultRegion
	Clusters []string // existing clusters; default [DefaultCluster]
	// Start is the virtual clock's first reading; default the wall clock at New.
	Start time.Time
	// Tick is the step Advance simulates in; default DefaultTick.
	Tick time.Duration
	// StopAfter is how long a running task the scheduler stops (scale-in, replaced by a newer
	// deployment) stays STOPPING; default DefaultStopAfter.
	StopAfter time.Duration
	// SteadyAfter is how long a deployment must hold its desired healthy tasks, older deployments
	// drained, before ECS marks it COMPLETED; default DefaultSteadyAfter.
	SteadyAfter time.Duration
	// StageAfter is how long each lifecycle stage of a BLUE_GREEN, CANARY or LINEAR deployment
	// lasts that waits for nothing else (PRE_SCALE_UP, TEST_TRAFFIC_SHIFT, ...), and how long a
	// StopServiceDeployment request stays ROLLBACK_REQUESTED or STOP_REQUESTED; default
	// DefaultStageAfter.
	StageAfter time.Duration
	// Default is the behaviour of tasks no SetBehavior key matches (a healthy task).
	Default Behavior
	// AccessKeys, when set, are the only access key IDs the fake accepts (others get
	// UnrecognizedClientException, as AWS answers unknown keys); nil accepts any.
	AccessKeys func(id string) bool
}

// Behavior is how a task of some task definition or image behaves once launched.
type Behavior struct {
	// StartAfter is the time from launch (PROVISIONING) to RUNNING; PENDING is reached halfway.
	// 0 means DefaultStartAfter.
	StartAfter time.Duration
	// CrashAfter, ExitCode or Reason make the essential container exit CrashAfter after RUNNING
	// (0: at once) with ExitCode; the task stops with stopCode EssentialContainerExited.
	CrashAfter time.Duration
	ExitCode   int32
	// Reason, if set, is the task's stoppedReason and the container's reason (e.g.
	// "CannotPullContainerError: ..."); default "Essential container in task exited".
	Reason string
	// HealthCheckFails makes a RUNNING task UNHEALTHY after its health check's startPeriod +
	// interval × retries (30 s × 3 without one), after which ECS stops it
	// ("Task failed container health checks").
	HealthCheckFails bool
}

func (b Behavior) crashes() bool { return b.CrashAfter > 0 || b.ExitCode != 0 || b.Reason != "" }

// Call is one request the fake answered.
type Call struct {
	Operation string // e.g. "UpdateService"
	// Input is the decoded request, e.g. *ecs.UpdateServiceInput (nil if it did not decode).
	Input     any
	ErrorCode string // "" when the call succeeded
}

// Fault makes calls fail the way ECS fails them.
type Fault struct {
	Operation string // "" matches every operation
	Code      string // e.g. CodeThrottling
	Message   string // default: a message like ECS's for Code
	Times     int    // calls to fail; 0 fails every call until ClearFaults
}

// Throttle fails the next times calls of operation with ThrottlingException ("Rate exceeded").
func Throttle(operation string, times int) Fault {
	return Fault{Operation: operation, Code: CodeThrottling, Message: "Rate exceeded", Times: times}
}

// AccessDenied denies the next times calls of operation as IAM does.
func AccessDenied(operation string, times int) Fault {
	return Fault{Operation: operation, Code: CodeAccessDenied, Times: times}
}

// Server is a fake of ECS: an http.Handler, served on loopback by Start. Point the SDK at URL
// (ecs.Options.BaseEndpoint, or AWS_ENDPOINT_URL_ECS; see Env).
type Server struct {
	// URL is the base URL of the running server (set by Start).
	URL string

	opts Options

	mu        sync.Mutex
	now       time.Time
	clusters  map[string]bool
	families  map[string][]*types.TaskDefinition // family -> revisions, index = revision-1
	services  map[string]map[string]*service     // cluster -> name -> service
	behaviors map[string]Behavior
	tasks     map[string]*task       // task ARN -> task
	tdTags    map[string][]types.Tag // task definition ARN -> tags given at registration
	sds       map[string]*deployment
	calls     []Call
	faults    fakes.Faults[Fault]
	seq       int64
}

// New returns a fake ECS handler; use Start to serve it.
func New(opts Options) *Server {
	if opts.Account == "" {
		opts.Account = DefaultAccount
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if len(opts.Clusters) == 0 {
		opts.Clusters = []string{DefaultCluster}
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.StopAfter <= 0 {
		opts.StopAfter = DefaultStopAfter
	}
	if opts.SteadyAfter <= 0 {
		opts.SteadyAfter = DefaultSteadyAfter
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.StageAfter <= 0 {
		opts.StageAfter = DefaultStageAfter
	}
	s := &Server{
		opts:      opts,
		now:       opts.Start.Truncate(time.Millisecond),
		clusters:  map[string]bool{},
		families:  map[string][]*types.TaskDefinition{},
		services:  map[string]map[string]*service{},
		behaviors: map[string]Behavior{},
		tasks:     map[string]*task{},
		tdTags:    map[string][]types.Tag{},
		sds:       map[string]*deployment{},
		seq:       7_000_000_000_000_000_000,
	}
	for _, c := range opts.Clusters {
		s.clusters[c] = true
		s.services[c] = map[string]*service{}
	}
	return s
}

// Start serves a new fake on loopback until tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	s.URL = fakes.Serve(tb, s)
	return s
}

// Env returns the endpoint override that points the SDK's ECS client at the fake.
func (s *Server) Env() map[string]string { return map[string]string{"AWS_ENDPOINT_URL_ECS": s.URL} }

// Now is the virtual clock's reading.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the virtual clock by d, simulating every service in steps of Options.Tick.
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
}

// RunRealtime moves the virtual clock with the wall clock until ctx ends: every step (default
// Options.Tick) it advances by the wall time elapsed since the last step, and once more when ctx
// ends, so the two clocks keep the distance they had when it was called. It is for benchmarks that
// time a deployer against the fake in real time; tests should call Advance, which never sleeps.
func (s *Server) RunRealtime(ctx context.Context, step time.Duration) {
	if step <= 0 {
		step = s.opts.Tick
	}
	fakes.RunRealtime(ctx, step, s.Advance)
}

// SetBehavior sets how tasks behave whose task definition is key ("family:revision") or, failing
// that, one of whose containers runs image key (exactly as in the container definition).
func (s *Server) SetBehavior(key string, b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behaviors[key] = b
}

// Inject queues a fault.
func (s *Server) Inject(f Fault) { s.faults.Add(f.Operation, f.Times, f) }

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// Calls returns the calls answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallCount counts the calls of operation answered so far, failed ones included.
func (s *Server) CallCount(operation string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Operation == operation {
			n++
		}
	}
	return n
}

// apiError is an ECS error answer; resourceIds is ConflictException's member of that name.
type apiError struct {
	code, msg   string
	resourceIds []string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(code, format string, a ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, a...)}
}

// ServeHTTP answers one awsJson1.1 call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := strings.TrimPrefix(target, TargetPrefix)
	call := Call{Operation: op}
	fail := func(e *apiError) {
		call.ErrorCode = e.code
		s.record(call)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Requestid", uuid())
		w.WriteHeader(http.StatusBadRequest)
		body := map[string]any{"__type": e.code, "message": e.msg}
		if len(e.resourceIds) > 0 {
			body["resourceIds"] = e.resourceIds
		}
		_ = json.NewEncoder(w).Encode(body)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail(errorf(CodeSerialization, "reading the request: %v", err))
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(target, TargetPrefix) {
		fail(errorf(CodeUnknownOperation, "unknown operation %q", target))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		fail(errorf(CodeSerialization, "Content-Type must be application/x-amz-json-1.1, got %q", ct))
		return
	}
	if e := checkAuth(r.Header.Get("Authorization"), s.opts.Region, s.opts.AccessKeys); e != nil {
		fail(e)
		return
	}
	in := newInput(op)
	if in == nil {
		fail(errorf(CodeUnknownOperation, "the fake does not implement %s", op))
		return
	}
	// encoding/json matches the camelCase wire names to the SDK's PascalCase fields.
	if len(body) > 0 {
		if err := json.Unmarshal(body, in); err != nil {
			fail(errorf(CodeSerialization, "cannot decode %s request: %v", op, err))
			return
		}
	}
	call.Input = in
	if f, ok := s.faults.Take(op); ok {
		msg := f.Message
		if msg == "" {
			msg = defaultMessage(f.Code, op, s.opts.Account)
		}
		fail(&apiError{code: f.Code, msg: msg})
		return
	}
	s.mu.Lock()
	out, e := s.dispatch(in)
	s.mu.Unlock()
	if e != nil {
		fail(e)
		return
	}
	s.record(call)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", uuid())
	_ = json.NewEncoder(w).Encode(fakes.AWSJSON(out))
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// checkAuth requires a SigV4 Authorization header scoped to service ecs in the fake's region, by
// an accepted access key; the signature itself is not verified.
func checkAuth(h, region string, keys func(string) bool) *apiError {
	const prefix = "AWS4-HMAC-SHA256 Credential="
	if !strings.HasPrefix(h, prefix) {
		return errorf(CodeMissingAuthentication, "Missing Authentication Token")
	}
	cred, _, _ := strings.Cut(strings.TrimPrefix(h, prefix), ",")
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return errorf(CodeMissingAuthentication, "Authorization header has a malformed credential %q", cred)
	}
	if parts[3] != "ecs" {
		return errorf("InvalidSignatureException", "Credential should be scoped to correct service: 'ecs'. ")
	}
	if parts[2] != region {
		return errorf("InvalidSignatureException", "Credential should be scoped to a valid region. ")
	}
	if keys != nil && !keys(parts[0]) {
		return errorf("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	return nil
}

func defaultMessage(code, op, account string) string {
	switch code {
	case CodeThrottling:
		return "Rate exceeded"
	case CodeAccessDenied:
		return fmt.Sprintf("User: arn:aws:sts::%s:assumed-role/deploy/gantry is not authorized to perform: ecs:%s on resource: * because no identity-based policy allows the ecs:%s action", account, op, op)
	case CodeServer:
		return "Service Unavailable. Please try again later."
	}
	return code
}

func newInput(op string) any {
	switch op {
	case "RegisterTaskDefinition":
		return &ecs.RegisterTaskDefinitionInput{}
	case "DescribeTaskDefinition":
		return &ecs.DescribeTaskDefinitionInput{}
	case "DeregisterTaskDefinition":
		return &ecs.DeregisterTaskDefinitionInput{}
	case "CreateService":
		return &ecs.CreateServiceInput{}
	case "UpdateService":
		return &ecs.UpdateServiceInput{}
	case "DescribeServices":
		return &ecs.DescribeServicesInput{}
	case "ListTasks":
		return &ecs.ListTasksInput{}
	case "DescribeTasks":
		return &ecs.DescribeTasksInput{}
	case "DescribeServiceDeployments":
		return &ecs.DescribeServiceDeploymentsInput{}
	case "ListServiceDeployments":
		return &ecs.ListServiceDeploymentsInput{}
	case "StopServiceDeployment":
		return &ecs.StopServiceDeploymentInput{}
	case "ListTaskDefinitions":
		return &ecs.ListTaskDefinitionsInput{}
	case "TagResource":
		return &ecs.TagResourceInput{}
	}
	return nil
}

func (s *Server) dispatch(in any) (any, *apiError) {
	switch in := in.(type) {
	case *ecs.RegisterTaskDefinitionInput:
		return s.registerTaskDefinition(in)
	case *ecs.DescribeTaskDefinitionInput:
		return s.describeTaskDefinition(in)
	case *ecs.DeregisterTaskDefinitionInput:
		return s.deregisterTaskDefinition(in)
	case *ecs.CreateServiceInput:
		return s.createService(in)
	case *ecs.UpdateServiceInput:
		svc, e := s.updateService(in)
		if e != nil {
			return nil, e
		}
		return &ecs.UpdateServiceOutput{Service: svc}, nil
	case *ecs.DescribeServicesInput:
		return s.describeServices(in)
	case *ecs.ListTasksInput:
		return s.listTasks(in)
	case *ecs.DescribeTasksInput:
		return s.describeTasks(in)
	case *ecs.DescribeServiceDeploymentsInput:
		return s.describeServiceDeployments(in)
	case *ecs.ListServiceDeploymentsInput:
		return s.listServiceDeployments(in)
	case *ecs.StopServiceDeploymentInput:
		return s.stopServiceDeployment(in)
	case *ecs.ListTaskDefinitionsInput:
		return s.listTaskDefinitions(in)
	case *ecs.TagResourceInput:
		return s.tagResource(in)
	}
	return nil, errorf(CodeUnknownOperation, "unknown input %T", in)
}
