package cloudrun

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
	"github.com/gantry-dev/gantry/internal/verify"
)

const (
	sha1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	img1 = "europe-docker.pkg.dev/my-project/images/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	img2 = "europe-docker.pkg.dev/my-project/images/api@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

type env struct {
	t     *testing.T
	s     *runfake.Server
	api   Clients
	front *runfake.Frontend
	mu    sync.Mutex
	log   []string
}

func newEnv(t *testing.T, opts runfake.Options) *env {
	t.Helper()
	s := runfake.Start(t, opts)
	e := &env{t: t, s: s, front: s.Frontend("api")}
	e.api = e.clients("")
	return e
}

func (e *env) clients(token string) Clients {
	e.t.Helper()
	ctx := context.Background()
	svc, err := run.NewServicesClient(ctx, e.s.ClientOptions(token)...)
	if err != nil {
		e.t.Fatal(err)
	}
	rev, err := run.NewRevisionsClient(ctx, e.s.ClientOptions(token)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { svc.Close(); rev.Close() })
	return Clients{Services: svc, Revisions: rev}
}

func (e *env) opts(image, sha string) Options {
	front := &http.Client{Transport: e.front}
	return Options{
		HTTPClient: front,
		Project:    runfake.DefaultProject, Region: runfake.DefaultRegion, Service: "api",
		Image: image, SHA: sha, AutoRollback: true, PollInterval: time.Second, Timeout: 10 * time.Minute,
		CanarySteps: []int{10, 50, 100}, CanaryInterval: time.Minute,
		Clock: clock.Virtual{NowFunc: e.s.Now, Advance: e.s.Advance},
		Verify: func(ctx context.Context, url string, own bool) (verify.Result, error) {
			return verify.Wait(ctx, verify.Options{URL: url, SHA: sha, Client: front, Interval: 10 * time.Millisecond, Timeout: 2 * time.Second, OwnAddress: own})
		},
		Logf: func(f string, a ...any) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.log = append(e.log, fmt.Sprintf(f, a...))
		},
	}
}

func (e *env) e(format string, a ...any) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.t.Errorf(format+"\nlog:\n%s", append(a, strings.Join(e.log, "\n"))...)
}

// deployed creates service api serving img1 (sha1).
func (e *env) deployed() *Result {
	e.t.Helper()
	res, err := Deploy(context.Background(), e.api, e.opts(img1, sha1))
	if err != nil {
		e.t.Fatalf("first deploy: %v", err)
	}
	return res
}

func (e *env) traffic() string {
	p, tags := e.s.Traffic("api")
	return fmt.Sprintf("%v %v", p, tags)
}

// requested is the service's requested traffic (its spec), as "revision percent tag" targets.
func (e *env) requested() string {
	var out []string
	for _, t := range e.s.Service("api").GetTraffic() {
		rev := t.GetRevision()
		if t.GetType() == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST {
			rev = "LATEST"
		}
		out = append(out, fmt.Sprintf("%s %d %s", rev, t.GetPercent(), t.GetTag()))
	}
	return strings.Join(out, ", ")
}

func marks(r *Result) string {
	var b []string
	for _, m := range r.Timeline {
		b = append(b, m.Name)
	}
	return strings.Join(b, ", ")
}

func (e *env) updates() int { return e.s.CallCount("UpdateService") }

func TestDeployCreatesThenUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	first := e.deployed()
	if !first.Created || first.Revision != "api-sha-1111111" || first.Outcome != deploy.Success || first.URL == "" {
		e.e("first deploy = %+v", first)
	}
	res, err := Deploy(context.Background(), e.api, e.opts(img2, sha2))
	if err != nil {
		e.e("update: %v", err)
		return
	}
	if res.Revision != "api-sha-2222222" || res.PreviousRevision != "api-sha-1111111" || res.Created {
		e.e("update = %+v", res)
	}
	if got := e.traffic(); got != "map[api-sha-2222222:100] map[sha-2222222:api-sha-2222222]" {
		e.e("traffic = %s (the old sha- tag is dropped)", got)
	}
	if len(res.Verified) != 1 || !strings.HasPrefix(res.Verified[0], res.URL) {
		e.e("verified %v, want the service URL", res.Verified)
	}
	rev := e.s.Revision("api-sha-2222222")
	if rev.GetContainers()[0].GetImage() != img2 || rev.GetLabels()[LabelSHA] != sha2 {
		e.e("revision: %v", rev)
	}
	if !strings.Contains(marks(res), "revision api-sha-2222222 ready") {
		e.e("timeline: %s", marks(res))
	}
}

func TestDeployPreview(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	e.deployed()
	o := e.opts(img2, sha2)
	o.Strategy = Preview
	res, err := Deploy(context.Background(), e.api, o)
	if err != nil {
		e.e("preview: %v", err)
		return
	}
	if got := e.traffic(); got != "map[api-sha-1111111:100] map[sha-2222222:api-sha-2222222]" {
		e.e("traffic = %s, want all on the old revision and a tag on the new", got)
	}
	if res.TagURL == "" || !strings.HasPrefix(res.TagURL, "https://sha-2222222---api-") || len(res.Verified) != 1 || !strings.HasPrefix(res.Verified[0], res.TagURL) {
		e.e("tag URL %q, verified %v", res.TagURL, res.Verified)
	}
}

func TestDeployCanarySteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	e.deployed()
	before := e.updates()
	var seen []string
	o := e.opts(img2, sha2)
	o.Strategy = Canary
	verifyTag := o.Verify
	o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
		seen = append(seen, e.traffic())
		return verifyTag(ctx, url, own)
	}
	res, err := Deploy(context.Background(), e.api, o)
	if err != nil {
		e.e("canary: %v", err)
		return
	}
	if n := e.updates() - before; n != 4 {
		e.e("%d UpdateService calls, want 4 (0%%, 10%%, 50%%, 100%%)", n)
	}
	want := []string{
		"map[api-sha-1111111:100] map[sha-2222222:api-sha-2222222]",
		"map[api-sha-1111111:90 api-sha-2222222:10] map[sha-2222222:api-sha-2222222]",
		"map[api-sha-1111111:90 api-sha-2222222:10] map[sha-2222222:api-sha-2222222]", // after the interval
		"map[api-sha-1111111:50 api-sha-2222222:50] map[sha-2222222:api-sha-2222222]",
		"map[api-sha-1111111:50 api-sha-2222222:50] map[sha-2222222:api-sha-2222222]",
		"map[api-sha-2222222:100] map[sha-2222222:api-sha-2222222]",
		"map[api-sha-2222222:100] map[sha-2222222:api-sha-2222222]", // the service URL
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		e.e("traffic at each verify:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	for _, m := range []string{"10% to api-sha-2222222", "50% to api-sha-2222222", "100% to api-sha-2222222"} {
		if !strings.Contains(marks(res), m) {
			e.e("timeline lacks %q: %s", m, marks(res))
		}
	}
}

// A service whose traffic goes to LATEST (as gcloud run deploy leaves it)
// is split with the revision LATEST serves, and its rollback goes back to it.
func TestDeployCanaryFromLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	e.deployed()
	e.s.UpdateByOther(&runpb.Service{Name: "api", Traffic: []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}}})
	e.s.Advance(runfake.DefaultSettleAfter)
	var seen []string
	o := e.opts(img2, sha2)
	o.Strategy = Canary
	o.CanarySteps = []int{10, 100}
	verifyTag := o.Verify
	o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
		seen = append(seen, e.traffic())
		return verifyTag(ctx, url, own)
	}
	res, err := Deploy(context.Background(), e.api, o)
	if err != nil {
		e.e("canary: %v", err)
		return
	}
	if res.PreviousRevision != "api-sha-1111111" || len(seen) < 2 || seen[1] != "map[api-sha-1111111:90 api-sha-2222222:10] map[sha-2222222:api-sha-2222222]" {
		e.e("previous %q, traffic at each verify:\n%s", res.PreviousRevision, strings.Join(seen, "\n"))
	}
	if got := e.traffic(); got != "map[api-sha-2222222:100] map[sha-2222222:api-sha-2222222]" {
		e.e("traffic at the end: %s", got)
	}
}

func TestDeployFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(e *env, o *Options)
		want    []string
		outcome string
		traffic string
		// requested is the service's traffic spec at the end; "" checks none.
		requested string
	}{
		{
			name:      "image not found: the old revision keeps serving",
			setup:     func(e *env, o *Options) { e.s.SetBehavior(img2, runfake.ImageNotFound(img2)) },
			want:      []string{"revision api-sha-2222222 failed", "CONTAINER_MISSING", "not found", "api-sha-1111111 kept serving all traffic", "requested traffic is back on api-sha-1111111 100% (tag sha-1111111)"},
			outcome:   deploy.Failed,
			traffic:   "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]",
			requested: "api-sha-1111111 100 sha-1111111",
		},
		{
			name:      "container never listens",
			setup:     func(e *env, o *Options) { e.s.SetBehavior(img2, runfake.StartFailure(8080)) },
			want:      []string{"HEALTH_CHECK_CONTAINER_ERROR", "PORT=8080", "kept serving", "requested traffic is back"},
			outcome:   deploy.Failed,
			traffic:   "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]",
			requested: "api-sha-1111111 100 sha-1111111",
		},
		{
			name: "a canary's revision never becomes ready",
			setup: func(e *env, o *Options) {
				o.Strategy = Canary
				e.s.SetBehavior(img2, runfake.ImageNotFound(img2))
			},
			want:      []string{"CONTAINER_MISSING", "requested traffic is back"},
			outcome:   deploy.Failed,
			traffic:   "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]",
			requested: "api-sha-1111111 100 sha-1111111",
		},
		{
			name: "a revision still starting at the timeout",
			setup: func(e *env, o *Options) {
				e.s.SetBehavior(img2, runfake.Behavior{ReadyAfter: time.Hour})
				o.Timeout = time.Minute
			},
			want:      []string{"not reconciled after 1m0s", "requested traffic is back"},
			outcome:   deploy.Failed,
			traffic:   "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]",
			requested: "api-sha-1111111 100 sha-1111111",
		},
		{
			name: "canary step fails verify: traffic back",
			setup: func(e *env, o *Options) {
				o.Strategy = Canary
				inner := o.Verify
				o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
					if p, _ := e.s.Traffic("api"); p["api-sha-2222222"] == 50 {
						return verify.Result{Outcome: verify.Unhealthy}, errors.New("answers 500 at 50%")
					}
					return inner(ctx, url, own)
				}
			},
			want:    []string{"answers 500 at 50%", "traffic is back on api-sha-1111111"},
			outcome: deploy.RolledBack,
			traffic: "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111 sha-2222222:api-sha-2222222]",
		},
		{
			name: "canary error rate: 10% of requests fail at the 10% step",
			setup: func(e *env, o *Options) {
				o.Strategy = Canary
				e.front.Fail("api-sha-2222222", http.StatusInternalServerError)
				o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
					return verify.Result{Outcome: verify.Verified}, nil
				}
			},
			want:    []string{"canary at 10%", "requests failed (10.0%, limit 1.0%), last: 500 Internal Server Error", "traffic is back on api-sha-1111111"},
			outcome: deploy.RolledBack,
			traffic: "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111 sha-2222222:api-sha-2222222]",
		},
		{
			// The tag URL reaches the new revision only: verify.WrongCommitAnswers
			// answers of another commit there are enough, long before the timeout.
			name: "the new revision serves another commit at its tag URL",
			setup: func(e *env, o *Options) {
				o.Strategy = Canary
				e.front.Report("api-sha-2222222", sha1)
				client := &http.Client{Transport: e.front}
				o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
					return verify.Wait(ctx, verify.Options{URL: url, SHA: sha2, Client: client, Interval: 10 * time.Millisecond, Timeout: time.Minute, OwnAddress: own})
				}
			},
			want:    []string{"sha-2222222", "serves 1111111, not 2222222 (3 answers in a row", "another commit", "traffic is back on api-sha-1111111"},
			outcome: deploy.RolledBack,
			traffic: "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111 sha-2222222:api-sha-2222222]",
		},
		{
			name: "the service URL serves the old commit after the switch",
			setup: func(e *env, o *Options) {
				o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
					return verify.Result{Outcome: verify.OldVersion}, errors.New("still serves 1111111")
				}
			},
			want:    []string{"still serves 1111111", "traffic is back on api-sha-1111111"},
			outcome: deploy.RolledBack,
			traffic: "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111 sha-2222222:api-sha-2222222]",
		},
		{
			name: "auto-rollback off",
			setup: func(e *env, o *Options) {
				o.AutoRollback = false
				o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
					return verify.Result{}, errors.New("bad")
				}
			},
			want:    []string{"bad"},
			outcome: deploy.Abandoned,
			traffic: "map[api-sha-2222222:100] map[sha-2222222:api-sha-2222222]",
		},
		{
			name: "permission denied",
			setup: func(e *env, o *Options) {
				e.s.Inject(runfake.Fault{Method: "UpdateService", Code: codes.PermissionDenied, Message: "Permission 'run.services.update' denied", Times: 1})
			},
			want:    []string{"permission denied", "roles/run.developer"},
			outcome: deploy.Failed,
			traffic: "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, runfake.Options{})
			e.deployed()
			o := e.opts(img2, sha2)
			tc.setup(e, &o)
			res, err := Deploy(context.Background(), e.api, o)
			if err == nil {
				e.e("deploy succeeded")
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					e.e("error %q lacks %q", err, w)
				}
			}
			if res.Outcome != tc.outcome {
				e.e("outcome %s, want %s", res.Outcome, tc.outcome)
			}
			if got := e.traffic(); got != tc.traffic {
				e.e("traffic = %s, want %s", got, tc.traffic)
			}
			if got := e.requested(); tc.requested != "" && got != tc.requested {
				e.e("requested traffic = %s, want %s", got, tc.requested)
			}
		})
	}
}

// hookAPI runs before ahead of the first UpdateService.
type hookAPI struct {
	API
	once   *sync.Once
	before func()
}

func (h hookAPI) UpdateService(ctx context.Context, svc *runpb.Service, allowMissing bool) (Operation, error) {
	h.once.Do(h.before)
	return h.API.UpdateService(ctx, svc, allowMissing)
}

func TestConcurrentChangeIsNeverOverwritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	e.deployed()
	other := "europe-docker.pkg.dev/my-project/images/api@sha256:" + strings.Repeat("9", 64)
	api := hookAPI{API: e.api, once: &sync.Once{}, before: func() {
		e.s.UpdateByOther(&runpb.Service{Name: "api", Template: &runpb.RevisionTemplate{Revision: "api-by-hand", Containers: []*runpb.Container{{Image: other}}}})
	}}
	_, err := Deploy(context.Background(), api, e.opts(img2, sha2))
	if err == nil || !strings.Contains(err.Error(), "changed by someone else") || !strings.Contains(err.Error(), "nothing was overwritten") {
		e.e("err = %v", err)
	}
	if img := e.s.Service("api").GetTemplate().GetContainers()[0].GetImage(); img != other {
		e.e("the other change was overwritten: template image %s", img)
	}
	if e.s.Revision("api-sha-2222222") != nil {
		e.e("a revision was created")
	}
}

func TestDeployDetails(t *testing.T) {
	t.Parallel()
	t.Run("same commit twice gets a suffix", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, runfake.Options{})
		e.deployed()
		res, err := Deploy(context.Background(), e.api, e.opts(img1, sha1))
		if err != nil || res.Revision != "api-sha-1111111-2" {
			e.e("second deploy of one commit: %v, %+v", err, res)
		}
	})
	t.Run("unavailable is retried", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, runfake.Options{})
		e.deployed()
		e.s.Inject(runfake.Unavailable("GetService", 1))
		if _, err := Deploy(context.Background(), e.api, e.opts(img2, sha2)); err != nil {
			e.e("deploy after one Unavailable: %v", err)
		}
	})
	t.Run("preview of a missing service", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, runfake.Options{})
		o := e.opts(img1, sha1)
		o.Strategy = Preview
		_, err := Deploy(context.Background(), e.api, o)
		if err == nil || !strings.Contains(err.Error(), "does not exist yet") || e.updates() != 0 {
			e.e("err = %v, %d updates", err, e.updates())
		}
	})
	t.Run("waits for a change still reconciling", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, runfake.Options{})
		e.deployed()
		e.s.UpdateByOther(&runpb.Service{Name: "api", Labels: map[string]string{"team": "x"}})
		o := e.opts(img2, sha2)
		o.LockWait = 0
		if _, err := Deploy(context.Background(), e.api, o); err == nil || !strings.Contains(err.Error(), "still reconciling") {
			e.e("lock-wait 0: %v", err)
		}
		o.LockWait = time.Minute
		res, err := Deploy(context.Background(), e.api, o)
		if err != nil || !strings.Contains(marks(res), "waiting for generation") {
			e.e("lock-wait 1m: %v %s", err, marks(res))
		}
		if e.s.Service("api").GetLabels()["team"] != "x" {
			e.e("the other change's label is gone")
		}
	})
	t.Run("settings reach the revision", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, runfake.Options{})
		o := e.opts(img1, sha1)
		one, eighty := int32(1), int32(80)
		o.Settings = Settings{Env: []Env{{Name: "A", Value: "b"}, {Name: "DB", Secret: "db-password", SecretVersion: "3"}}, CPU: "2", Memory: "1Gi",
			MinInstances: &one, Concurrency: &eighty, ServiceAccount: "run@my-project.iam.gserviceaccount.com", Labels: map[string]string{"team": "pay"}}
		if _, err := Deploy(context.Background(), e.api, o); err != nil {
			t.Fatal(err)
		}
		r := e.s.Revision("api-sha-1111111")
		c := r.GetContainers()[0]
		if c.GetResources().GetLimits()["memory"] != "1Gi" || c.GetResources().GetLimits()["cpu"] != "2" || len(c.GetEnv()) != 2 ||
			c.GetEnv()[1].GetValueSource().GetSecretKeyRef().GetSecret() != "db-password" || r.GetScaling().GetMinInstanceCount() != 1 ||
			r.GetMaxInstanceRequestConcurrency() != 80 || r.GetServiceAccount() != "run@my-project.iam.gserviceaccount.com" || r.GetLabels()["team"] != "pay" {
			e.e("revision = %v", r)
		}
	})
}

func TestRollbackToEarlierRevision(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	e.deployed()
	if _, err := Deploy(context.Background(), e.api, e.opts(img2, sha2)); err != nil {
		t.Fatal(err)
	}
	o := e.opts("", "")
	for _, tc := range []struct{ to, rev, err string }{
		{"previous", "api-sha-1111111", ""},
		{sha1[:7], "api-sha-1111111", ""},
		{"abcdef0", "", "no ready revision of commit abcdef0"},
	} {
		rev, sha, err := FindRevision(context.Background(), e.api, o, tc.to)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				e.e("FindRevision(%s) err = %v", tc.to, err)
			}
			continue
		}
		if err != nil || rev != tc.rev || sha != sha1 {
			e.e("FindRevision(%s) = %s %s %v", tc.to, rev, sha, err)
		}
	}
	ro := e.opts("", sha1)
	ro.Revision = "api-sha-1111111"
	res, err := Deploy(context.Background(), e.api, ro)
	if err != nil || res.Outcome != deploy.Success {
		e.e("rollback: %v", err)
	}
	if got := e.traffic(); got != "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]" {
		e.e("traffic = %s", got)
	}
	if n := len(e.listRevisions()); n != 2 {
		e.e("%d revisions, want 2 (a rollback creates none)", n)
	}
}

func (e *env) listRevisions() []*runpb.Revision {
	e.t.Helper()
	revs, err := e.api.ListRevisions(context.Background(), e.s.ServiceName("api"))
	if err != nil {
		e.t.Fatal(err)
	}
	return revs
}

func TestSplit(t *testing.T) {
	t.Parallel()
	rev := func(name string, p int32, tag string) *runpb.TrafficTarget {
		return &runpb.TrafficTarget{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, Revision: name, Percent: p, Tag: tag}
	}
	for _, tc := range []struct {
		name string
		prev []*runpb.TrafficTarget
		p    int32
		want string
	}{
		{"one previous", []*runpb.TrafficTarget{rev("a", 100, "sha-aaaaaaa")}, 10, "new 10 sha-new, a 90"},
		{"two previous keep their proportions", []*runpb.TrafficTarget{rev("a", 90, ""), rev("b", 10, "")}, 10, "new 10 sha-new, a 81, b 9"},
		{"rounding goes to the last", []*runpb.TrafficTarget{rev("a", 50, ""), rev("b", 50, "")}, 33, "new 33 sha-new, a 33, b 34"},
		{"all to the new one keeps user tags", []*runpb.TrafficTarget{rev("a", 100, "stable"), rev("c", 0, "qa")}, 100, "new 100 sha-new, a 0 stable, c 0 qa"},
		{"preview", []*runpb.TrafficTarget{rev("a", 100, "")}, 0, "new 0 sha-new, a 100"},
	} {
		var got []string
		for _, t := range split(tc.prev, "new", tc.p, "sha-new") {
			s := fmt.Sprintf("%s %d", t.Revision, t.Percent)
			if t.Tag != "" {
				s += " " + t.Tag
			}
			got = append(got, s)
		}
		if strings.Join(got, ", ") != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, strings.Join(got, ", "), tc.want)
		}
	}
}

// A service routed 100% to LATEST (as gcloud run deploy leaves it) rolls back to the revision
// before the one LATEST serves, never to the one already serving.
func TestRollbackFromLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, runfake.Options{})
	e.deployed()
	if _, err := Deploy(context.Background(), e.api, e.opts(img2, sha2)); err != nil {
		t.Fatal(err)
	}
	e.s.UpdateByOther(&runpb.Service{Name: "api", Traffic: []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}}})
	e.s.Advance(runfake.DefaultSettleAfter)
	if got := e.traffic(); got != "map[api-sha-2222222:100] map[]" {
		t.Fatalf("traffic before the rollback = %s, want all on LATEST = api-sha-2222222", got)
	}
	rev, sha, err := FindRevision(context.Background(), e.api, e.opts("", ""), "previous")
	if err != nil || rev != "api-sha-1111111" || sha != sha1 {
		e.e("FindRevision(previous) = %s %s %v, want api-sha-1111111 %s", rev, sha, err, sha1)
		return
	}
	ro := e.opts("", sha)
	ro.Revision = rev
	res, err := Deploy(context.Background(), e.api, ro)
	if err != nil || res.Outcome != deploy.Success || res.PreviousRevision != "api-sha-2222222" {
		e.e("rollback: %v, previous %s", err, res.PreviousRevision)
	}
	if got := e.traffic(); got != "map[api-sha-1111111:100] map[sha-1111111:api-sha-1111111]" {
		e.e("traffic = %s", got)
	}
}
