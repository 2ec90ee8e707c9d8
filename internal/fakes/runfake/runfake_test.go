package runfake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/gantry-dev/gantry/internal/testenv"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

const (
	imageV1 = "europe-docker.pkg.dev/p/r/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	imageV2 = "europe-docker.pkg.dev/p/r/api@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

const (
	latest     = runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
	byRevision = runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
)

func servicesClient(t *testing.T, s *Server, token string) *run.ServicesClient {
	t.Helper()
	c, err := run.NewServicesClient(context.Background(), s.ClientOptions(token)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// svc is service "api" running image with traffic targets (none: 100 % to LATEST).
func svc(s *Server, revision, image string, traffic ...*runpb.TrafficTarget) *runpb.Service {
	return &runpb.Service{
		Name: s.ServiceName("api"),
		Template: &runpb.RevisionTemplate{
			Revision:   revision,
			Labels:     map[string]string{"app": "api"},
			Containers: []*runpb.Container{{Image: image}},
		},
		Traffic: traffic,
	}
}

func toRevision(rev string, percent int32, tag string) *runpb.TrafficTarget {
	return &runpb.TrafficTarget{Type: byRevision, Revision: rev, Percent: percent, Tag: tag}
}

// deploy sends want with UpdateService{AllowMissing} and polls the operation as a deployer
// would, advancing the virtual clock a second before each poll.
func deploy(t *testing.T, s *Server, c *run.ServicesClient, want *runpb.Service) (*runpb.Service, error) {
	t.Helper()
	ctx := context.Background()
	op, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: want, AllowMissing: true})
	if err != nil {
		return nil, err
	}
	for range 600 {
		s.Advance(time.Second)
		got, err := op.Poll(ctx)
		if err != nil || op.Done() {
			return got, err
		}
	}
	t.Fatalf("operation %s not done after 10 minutes", op.Name())
	return nil, nil
}

func mustDeploy(t *testing.T, s *Server, c *run.ServicesClient, want *runpb.Service) *runpb.Service {
	t.Helper()
	got, err := deploy(t, s, c, want)
	if err != nil {
		t.Fatalf("deploying %s: %v", want.Template.GetRevision(), err)
	}
	return got
}

func TestDeploy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		behaviors map[string]Behavior
		before    func(s *Server) []*runpb.Service // deployed first, each must succeed
		deploy    func(s *Server) *runpb.Service
		wantErr   string // in the operation's FailedPrecondition error
		traffic   map[string]int32
		tags      map[string]string
		check     func(t *testing.T, got *runpb.Service)
		// revision, if set, must end with its Ready condition failed for reason
		revision string
		reason   any
	}{{
		name:    "create with allow_missing",
		deploy:  func(s *Server) *runpb.Service { return svc(s, "api-blue", imageV1) },
		traffic: map[string]int32{"api-blue": 100},
		check: func(t *testing.T, got *runpb.Service) {
			if got.Generation != 1 || got.ObservedGeneration != 1 || got.Reconciling {
				t.Errorf("generation %d, observed %d, reconciling %v; want 1, 1, false", got.Generation, got.ObservedGeneration, got.Reconciling)
			}
			if got.LatestReadyRevision != got.LatestCreatedRevision || !strings.HasSuffix(got.LatestReadyRevision, "/revisions/api-blue") {
				t.Errorf("latest ready %q, latest created %q", got.LatestReadyRevision, got.LatestCreatedRevision)
			}
			if !strings.HasPrefix(got.Uri, "https://api-") || !strings.HasSuffix(got.Uri, "-ew.a.run.app") {
				t.Errorf("uri %q", got.Uri)
			}
			if c := got.TerminalCondition; c.Type != "Ready" || c.State != runpb.Condition_CONDITION_SUCCEEDED {
				t.Errorf("terminal condition %v", c)
			}
		},
	}, {
		name:    "new revision takes all traffic",
		before:  func(s *Server) []*runpb.Service { return []*runpb.Service{svc(s, "", imageV1)} },
		deploy:  func(s *Server) *runpb.Service { return svc(s, "", imageV2) },
		traffic: map[string]int32{"api-00002-": 100}, // prefix: the suffix is random
		check: func(t *testing.T, got *runpb.Service) {
			if got.Generation != 2 || got.ObservedGeneration != 2 {
				t.Errorf("generation %d, observed %d; want 2, 2", got.Generation, got.ObservedGeneration)
			}
			if ts := got.TrafficStatuses; len(ts) != 1 || ts[0].Type != latest || ts[0].Percent != 100 {
				t.Errorf("traffic statuses %v; want 100 %% to LATEST", ts)
			}
		},
	}, {
		name:   "tagged revision without traffic",
		before: func(s *Server) []*runpb.Service { return []*runpb.Service{svc(s, "api-blue", imageV1)} },
		deploy: func(s *Server) *runpb.Service {
			return svc(s, "api-green", imageV2, toRevision("api-blue", 100, ""), toRevision("api-green", 0, "green"))
		},
		traffic: map[string]int32{"api-blue": 100},
		tags:    map[string]string{"green": "api-green"},
		check: func(t *testing.T, got *runpb.Service) {
			var uri string
			for _, ts := range got.TrafficStatuses {
				if ts.Tag == "green" {
					uri = ts.Uri
				}
			}
			if want := "https://green---" + strings.TrimPrefix(got.Uri, "https://"); uri != want {
				t.Errorf("tag URI %q; want %q", uri, want)
			}
		},
	}, {
		name: "traffic split 10/90",
		before: func(s *Server) []*runpb.Service {
			return []*runpb.Service{svc(s, "api-blue", imageV1)}
		},
		deploy: func(s *Server) *runpb.Service {
			return svc(s, "api-green", imageV2, toRevision("api-blue", 90, ""), toRevision("api-green", 10, "green"))
		},
		traffic: map[string]int32{"api-blue": 90, "api-green": 10},
		tags:    map[string]string{"green": "api-green"},
	}, {
		name:      "image not found",
		behaviors: map[string]Behavior{imageV2: ImageNotFound(imageV2)},
		before:    func(s *Server) []*runpb.Service { return []*runpb.Service{svc(s, "api-blue", imageV1)} },
		deploy:    func(s *Server) *runpb.Service { return svc(s, "api-green", imageV2) },
		wantErr:   "Revision 'api-green' is not ready and cannot serve traffic. Image '" + imageV2 + "' not found.",
		traffic:   map[string]int32{"api-blue": 100},
		check: func(t *testing.T, got *runpb.Service) {
			if c := got.TerminalCondition; c.State != runpb.Condition_CONDITION_FAILED || !strings.Contains(c.Message, "not found") {
				t.Errorf("terminal condition %v", c)
			}
			if !strings.HasSuffix(got.LatestReadyRevision, "/api-blue") || !strings.HasSuffix(got.LatestCreatedRevision, "/api-green") {
				t.Errorf("latest ready %q, latest created %q", got.LatestReadyRevision, got.LatestCreatedRevision)
			}
			if got.ObservedGeneration != got.Generation || got.Reconciling {
				t.Errorf("observed %d of %d, reconciling %v", got.ObservedGeneration, got.Generation, got.Reconciling)
			}
		},
		revision: "api-green",
		reason:   &runpb.Condition_Reason{Reason: runpb.Condition_CONTAINER_MISSING},
	}, {
		name:      "first revision fails",
		behaviors: map[string]Behavior{imageV1: ImageNotFound(imageV1)},
		deploy:    func(s *Server) *runpb.Service { return svc(s, "api-blue", imageV1) },
		wantErr:   "Image '" + imageV1 + "' not found.",
		traffic:   map[string]int32{},
		check: func(t *testing.T, got *runpb.Service) {
			if got.LatestReadyRevision != "" || len(got.TrafficStatuses) != 0 || got.TerminalCondition.State != runpb.Condition_CONDITION_FAILED {
				t.Errorf("latest ready %q, traffic statuses %v, terminal %v", got.LatestReadyRevision, got.TrafficStatuses, got.TerminalCondition)
			}
		},
	}, {
		name:      "container fails to start",
		behaviors: map[string]Behavior{"api-green": StartFailure(8080)},
		before:    func(s *Server) []*runpb.Service { return []*runpb.Service{svc(s, "api-blue", imageV1)} },
		deploy: func(s *Server) *runpb.Service {
			return svc(s, "api-green", imageV2, toRevision("api-blue", 100, ""), toRevision("api-green", 0, "green"))
		},
		wantErr:  "failed to start and listen on the port defined provided by the PORT=8080 environment variable",
		traffic:  map[string]int32{"api-blue": 100},
		tags:     map[string]string{},
		revision: "api-green",
		reason:   &runpb.Condition_RevisionReason_{RevisionReason: runpb.Condition_HEALTH_CHECK_CONTAINER_ERROR},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{})
			for k, b := range tc.behaviors {
				s.SetBehavior(k, b)
			}
			c := servicesClient(t, s, "")
			if tc.before != nil {
				for _, want := range tc.before(s) {
					mustDeploy(t, s, c, want)
				}
			}
			start := s.Now()
			got, err := deploy(t, s, c, tc.deploy(s))
			if tc.wantErr == "" && err != nil {
				t.Fatalf("deploy: %v", err)
			}
			if tc.wantErr != "" {
				if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("deploy error %v; want FailedPrecondition with %q", err, tc.wantErr)
				}
				got, err = c.GetService(context.Background(), &runpb.GetServiceRequest{Name: s.ServiceName("api")})
				if err != nil {
					t.Fatal(err)
				}
			} else if took := s.Now().Sub(start); took < DefaultReadyAfter || took > DefaultReadyAfter+2*time.Second {
				t.Errorf("deploy took %v of virtual time; want about %v", took, DefaultReadyAfter)
			}
			traffic, tags := s.Traffic("api")
			if !sameTraffic(traffic, tc.traffic) {
				t.Errorf("traffic %v; want %v", traffic, tc.traffic)
			}
			if tc.tags != nil && !maps.Equal(tags, tc.tags) {
				t.Errorf("tags %v; want %v", tags, tc.tags)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
			if tc.revision != "" {
				rev := s.Revision(tc.revision)
				ready := rev.GetConditions()[0]
				if ready.Type != "Ready" || ready.State != runpb.Condition_CONDITION_FAILED || !proto.Equal(ready, withReasons(ready, tc.reason)) {
					t.Errorf("revision %s Ready condition %v; want FAILED with %v", tc.revision, ready, tc.reason)
				}
			}
		})
	}
}

// withReasons is a copy of c with reason (a runpb.Condition reasons oneof value).
func withReasons(c *runpb.Condition, reason any) *runpb.Condition {
	c = proto.Clone(c).(*runpb.Condition)
	switch r := reason.(type) {
	case *runpb.Condition_Reason:
		c.Reasons = r
	case *runpb.Condition_RevisionReason_:
		c.Reasons = r
	}
	return c
}

// sameTraffic compares traffic maps, a wanted key ending in "-" matching a revision name prefix.
func sameTraffic(got, want map[string]int32) bool {
	if len(got) != len(want) {
		return false
	}
	for k, p := range want {
		found := false
		for g, gp := range got {
			if (g == k || strings.HasSuffix(k, "-") && strings.HasPrefix(g, k)) && gp == p {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestReconcilingState(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := servicesClient(t, s, "")
	ctx := context.Background()
	mustDeploy(t, s, c, svc(s, "api-blue", imageV1))
	op, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: svc(s, "api-green", imageV2)})
	if err != nil {
		t.Fatal(err)
	}
	meta, err := op.Metadata()
	if err != nil || meta.GetGeneration() != 2 {
		t.Fatalf("operation metadata %v, %v; want the service at generation 2", meta, err)
	}
	if !strings.HasPrefix(op.Name(), "projects/my-project/locations/europe-west1/operations/") || op.Done() {
		t.Errorf("operation %s done=%v", op.Name(), op.Done())
	}
	s.Advance(2 * time.Second)
	got, err := c.GetService(ctx, &runpb.GetServiceRequest{Name: s.ServiceName("api")})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Reconciling || got.ObservedGeneration != 1 || got.TerminalCondition.State != runpb.Condition_CONDITION_RECONCILING {
		t.Errorf("mid-deploy: reconciling %v, observed %d, terminal %v", got.Reconciling, got.ObservedGeneration, got.TerminalCondition)
	}
	if traffic, _ := s.Traffic("api"); traffic["api-blue"] != 100 {
		t.Errorf("mid-deploy traffic %v; want all on api-blue", traffic)
	}
	rc, err := run.NewRevisionsClient(ctx, s.ClientOptions("")...)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rev, err := rc.GetRevision(ctx, &runpb.GetRevisionRequest{Name: s.ServiceName("api") + "/revisions/api-green"})
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Reconciling || rev.Containers[0].Image != imageV2 || rev.Labels["app"] != "api" || rev.CreateTime == nil {
		t.Errorf("pending revision %v", rev)
	}
	s.Advance(3 * time.Second)
	if _, err := op.Poll(ctx); err != nil || !op.Done() {
		t.Fatalf("after 5 s: done=%v, %v", op.Done(), err)
	}
	it := rc.ListRevisions(ctx, &runpb.ListRevisionsRequest{Parent: s.ServiceName("api")})
	var names []string
	for {
		r, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, shortName(r.Name))
	}
	if strings.Join(names, ",") != "api-green,api-blue" {
		t.Errorf("revisions %v; want newest first", names)
	}
	_, err = rc.DeleteRevision(ctx, &runpb.DeleteRevisionRequest{Name: s.ServiceName("api") + "/revisions/api-green"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("deleting the serving revision: %v; want FailedPrecondition", err)
	}
	dop, err := rc.DeleteRevision(ctx, &runpb.DeleteRevisionRequest{Name: s.ServiceName("api") + "/revisions/api-blue"})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(DefaultSettleAfter)
	if _, err := dop.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Revision("api-blue") != nil {
		t.Error("api-blue still there after DeleteRevision")
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		call func(s *Server, c *run.ServicesClient) error
		code codes.Code
		msg  string
	}{{
		name: "etag mismatch",
		call: func(s *Server, c *run.ServicesClient) error {
			cur, err := c.GetService(context.Background(), &runpb.GetServiceRequest{Name: s.ServiceName("api")})
			if err != nil {
				return err
			}
			s.UpdateByOther(&runpb.Service{Name: "api", Labels: map[string]string{"owner": "someone-else"}})
			cur.Template.Containers[0].Image = imageV2
			_, err = c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: cur})
			return err
		},
		code: codes.Aborted,
		msg:  "does not match the current etag",
	}, {
		name: "revision name reused with another image",
		call: func(s *Server, c *run.ServicesClient) error {
			_, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: svc(s, "api-blue", imageV2)})
			return err
		},
		code: codes.AlreadyExists,
		msg:  "Revision named 'api-blue' with different configuration already exists.",
	}, {
		name: "traffic to a missing revision",
		call: func(s *Server, c *run.ServicesClient) error {
			_, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: svc(s, "", imageV1, toRevision("api-nope", 100, ""))})
			return err
		},
		code: codes.InvalidArgument,
		msg:  "Revision 'api-nope' referenced in traffic not found.",
	}, {
		name: "traffic not summing to 100",
		call: func(s *Server, c *run.ServicesClient) error {
			_, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: svc(s, "", imageV1,
				toRevision("api-blue", 50, ""), &runpb.TrafficTarget{Type: latest, Percent: 40})})
			return err
		},
		code: codes.InvalidArgument,
		msg:  "sum to 90",
	}, {
		name: "duplicate tag",
		call: func(s *Server, c *run.ServicesClient) error {
			_, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: svc(s, "", imageV1,
				toRevision("api-blue", 100, "x"), &runpb.TrafficTarget{Type: latest, Tag: "x"})})
			return err
		},
		code: codes.InvalidArgument,
		msg:  "Multiple definitions for tag 'x'",
	}, {
		name: "missing service without allow_missing",
		call: func(s *Server, c *run.ServicesClient) error {
			in := svc(s, "", imageV1)
			in.Name = s.ServiceName("other")
			_, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: in})
			return err
		},
		code: codes.NotFound,
		msg:  "Resource 'other' of kind 'SERVICE' in region 'europe-west1' in project 'my-project' does not exist.",
	}, {
		name: "create existing",
		call: func(s *Server, c *run.ServicesClient) error {
			in := svc(s, "", imageV1)
			in.Name = ""
			_, err := c.CreateService(context.Background(), &runpb.CreateServiceRequest{Parent: s.Parent(), ServiceId: "api", Service: in})
			return err
		},
		code: codes.AlreadyExists,
	}, {
		name: "unavailable UpdateService is not retried",
		call: func(s *Server, c *run.ServicesClient) error {
			s.Inject(Unavailable("UpdateService", 1))
			before := s.CallCount("UpdateService")
			_, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: svc(s, "", imageV2)})
			if n := s.CallCount("UpdateService") - before; n != 1 {
				return fmt.Errorf("UpdateService was called %d times", n)
			}
			return err
		},
		code: codes.Unavailable,
		msg:  "The service is currently unavailable.",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{})
			c := servicesClient(t, s, "")
			mustDeploy(t, s, c, svc(s, "api-blue", imageV1))
			err := tc.call(s, c)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v; want %v with %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestSameRevisionNameSameTemplate(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := servicesClient(t, s, "")
	first := mustDeploy(t, s, c, svc(s, "api-blue", imageV1))
	again := mustDeploy(t, s, c, svc(s, "api-blue", imageV1))
	if again.Generation != first.Generation || again.Etag != first.Etag {
		t.Errorf("redeploying the same template changed generation %d -> %d", first.Generation, again.Generation)
	}
	// a traffic change alone bumps the generation without a new revision
	tagged := mustDeploy(t, s, c, svc(s, "api-blue", imageV1, toRevision("api-blue", 100, "stable")))
	if tagged.Generation != first.Generation+1 || tagged.LatestCreatedRevision != first.LatestCreatedRevision {
		t.Errorf("traffic change: generation %d, latest created %s", tagged.Generation, tagged.LatestCreatedRevision)
	}
	// update_mask limits the change to the named fields
	ctx := context.Background()
	op, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{
		Service:    &runpb.Service{Name: s.ServiceName("api"), Labels: map[string]string{"team": "x"}, Template: &runpb.RevisionTemplate{}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(DefaultSettleAfter)
	got, err := op.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["team"] != "x" || got.Template.Containers[0].Image != imageV1 || got.LatestCreatedRevision != first.LatestCreatedRevision {
		t.Errorf("masked update gave labels %v, image %s, latest %s", got.Labels, got.Template.Containers[0].Image, got.LatestCreatedRevision)
	}
}

func TestUnavailableIsRetried(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := servicesClient(t, s, "")
	ctx := context.Background()
	op, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: svc(s, "", imageV1), AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(DefaultReadyAfter)
	// op.Poll uses the operations client, whose GetOperation retries Unavailable
	s.Inject(Unavailable("GetOperation", 1))
	if _, err := op.Poll(ctx); err != nil || !op.Done() {
		t.Fatalf("Poll: done=%v, %v", op.Done(), err)
	}
	s.Inject(Unavailable("GetService", 1))
	if _, err := c.GetService(ctx, &runpb.GetServiceRequest{Name: s.ServiceName("api")}); err != nil {
		t.Fatalf("GetService after one Unavailable: %v", err)
	}
	var codesSeen []codes.Code
	for _, call := range s.Calls() {
		if call.Method == "GetService" || call.Method == "GetOperation" {
			codesSeen = append(codesSeen, call.Code)
		}
	}
	want := []codes.Code{codes.Unavailable, codes.OK, codes.Unavailable, codes.OK}
	if len(codesSeen) != len(want) {
		t.Fatalf("calls %v; want %v", codesSeen, want)
	}
	for i := range want {
		if codesSeen[i] != want[i] {
			t.Fatalf("calls %v; want %v", codesSeen, want)
		}
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Tokens: func(tok string) bool { return tok == "good" }})
	tests := []struct {
		token string
		code  codes.Code
		msg   string
	}{
		{"", codes.Unauthenticated, "missing required authentication credential"},
		{"bad", codes.PermissionDenied, "Permission 'run.services.get' denied on resource 'projects/my-project/locations/europe-west1/services/api' (or it may not exist)."},
		{"good", codes.NotFound, "does not exist"},
	}
	for _, tc := range tests {
		t.Run("token="+tc.token, func(t *testing.T) {
			c := servicesClient(t, s, tc.token)
			_, err := c.GetService(context.Background(), &runpb.GetServiceRequest{Name: s.ServiceName("api")})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("GetService: %v; want %v with %q", err, tc.code, tc.msg)
			}
		})
	}
}

func TestRunRealtime(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{ReadyAfter: 200 * time.Millisecond, SettleAfter: 100 * time.Millisecond, Tick: 20 * time.Millisecond})
	c := servicesClient(t, s, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v0, w0 := s.Now(), time.Now()
	go func() {
		defer close(done)
		s.RunRealtime(ctx, 20*time.Millisecond)
	}()
	op, err := c.UpdateService(context.Background(), &runpb.UpdateServiceRequest{Service: svc(s, "", imageV1), AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	// the revision becomes Ready in 200 ms of wall time without a call to Advance
	if !testenv.Eventually(5*time.Second, 20*time.Millisecond, func() bool {
		if _, err := op.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		return op.Done()
	}) {
		t.Fatal("not deployed after 5 s of wall time")
	}
	cancel()
	<-done
	virtual, wall := s.Now().Sub(v0), time.Since(w0)
	if virtual > wall || virtual < wall-250*time.Millisecond {
		t.Errorf("virtual clock moved %v in %v of wall time", virtual, wall)
	}
}

func TestDeleteServiceAndWaitOperation(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	c := servicesClient(t, s, "")
	ctx := context.Background()
	mustDeploy(t, s, c, svc(s, "api-blue", imageV1))
	op, err := c.DeleteService(ctx, &runpb.DeleteServiceRequest{Name: s.ServiceName("api")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetService(ctx, &runpb.GetServiceRequest{Name: s.ServiceName("api")}); status.Code(err) != codes.NotFound {
		t.Errorf("GetService after DeleteService: %v; want NotFound", err)
	}
	waited := make(chan error, 1)
	go func() {
		got, err := c.WaitOperation(ctx, &longrunningpb.WaitOperationRequest{Name: op.Name(), Timeout: durationpb.New(10 * time.Second)})
		if err == nil && !got.Done {
			err = errors.New("WaitOperation returned before the operation was done")
		}
		waited <- err
	}()
	for i := 0; ; i++ {
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				t.Error("WaitOperation returned before the clock moved")
			}
			deleted, err := op.Poll(ctx)
			if err != nil || deleted.GetDeleteTime() == nil {
				t.Fatalf("Poll: %v, %v; want the deleted service", deleted, err)
			}
			it := c.ListServices(ctx, &runpb.ListServicesRequest{Parent: s.Parent()})
			if _, err := it.Next(); !errors.Is(err, iterator.Done) {
				t.Errorf("ListServices after deletion: %v; want none", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
			s.Advance(time.Second)
		}
	}
}
