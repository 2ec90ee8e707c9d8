package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	newSHA = "1234567890abcdef1234567890abcdef12345678"
	oldSHA = "abcdef0123456789abcdef0123456789abcdef01"
)

// reply is what the fake service answers for n polls in a row.
type reply struct {
	n      int
	status int
	body   string
}

func health(sha string) string {
	return fmt.Sprintf(`{"status":"ok","git_sha":%q,"version":"v1.2.3"}`, sha)
}

// service is a health endpoint whose answer changes over time: each reply in
// turn for its n polls, the last one for ever after.
type service struct {
	*httptest.Server
	mu      sync.Mutex
	polls   int
	headers []http.Header
	replies []reply
}

func newService(t *testing.T, replies ...reply) *service {
	t.Helper()
	s := &service{replies: replies}
	s.Server = httptest.NewServer(s)
	t.Cleanup(s.Close)
	return s
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.polls++
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	s.headers = append(s.headers, h)
	n := s.polls
	s.mu.Unlock()
	rep := s.replies[len(s.replies)-1]
	for _, x := range s.replies {
		if n <= x.n {
			rep = x
			break
		}
		n -= x.n
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	_, _ = w.Write([]byte(rep.body))
}

func (s *service) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.polls
}

// flapping answers old and new alternately, as when an old instance is still
// behind the load balancer.
func flapping(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		sha := oldSHA
		if n%2 == 0 {
			sha = newSHA
		}
		mu.Unlock()
		_, _ = w.Write([]byte(health(sha)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fast(url, sha string) Options {
	return Options{URL: url, SHA: sha, Interval: 2 * time.Millisecond, Timeout: 5 * time.Second, RequestTimeout: time.Second}
}

func outcomes(changes []Attempt) string {
	var s []string
	for _, c := range changes {
		s = append(s, fmt.Sprintf("%d:%s", c.N, c.Outcome))
	}
	return strings.Join(s, " ")
}

func TestWaitUntilVerified(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		replies     []reply
		sha         string
		field       string
		consecutive int
		attempts    int
		changes     string
		served      string
		version     string
	}{
		{
			name:     "old version for 3 polls, then new",
			replies:  []reply{{3, 200, health(oldSHA)}, {0, 200, health(newSHA)}},
			sha:      newSHA[:7],
			attempts: 5, changes: "1:old-version 4:verified", served: newSHA, version: "v1.2.3",
		},
		{
			name:     "503 while starting, then healthy",
			replies:  []reply{{2, 503, "starting"}, {0, 200, health(newSHA)}},
			sha:      newSHA,
			attempts: 4, changes: "1:unhealthy 3:verified", served: newSHA,
		},
		{
			name:     "sha- prefixed version, 8-char expected",
			replies:  []reply{{0, 200, `{"version":"sha-1234567"}`}},
			sha:      newSHA[:8],
			attempts: 2, changes: "1:verified", served: "1234567", version: "sha-1234567",
		},
		{
			name:     "bare SHA in version, upper case 40 chars served",
			replies:  []reply{{0, 200, `{"version":"` + strings.ToUpper(newSHA) + `"}`}},
			sha:      newSHA[:7],
			attempts: 2, changes: "1:verified", served: newSHA, // always lower case
		},
		{
			name:     "commit field when git_sha and version say nothing useful",
			replies:  []reply{{0, 200, `{"git_sha":"unknown","version":"dev","commit":"` + newSHA + `"}`}},
			sha:      newSHA[:7],
			attempts: 2, changes: "1:verified", served: newSHA, version: "dev",
		},
		{
			name:     "nested version-field",
			replies:  []reply{{1, 200, `{"build":{"commit":"` + oldSHA + `"}}`}, {0, 200, `{"build":{"commit":"` + newSHA + `"},"git_sha":"` + oldSHA + `"}`}},
			sha:      newSHA[:7],
			field:    "build.commit",
			attempts: 3, changes: "1:old-version 2:verified", served: newSHA,
		},
		{
			name:     "version-field indexing an array",
			replies:  []reply{{0, 200, `{"builds":[{"sha":"sha-` + newSHA[:7] + `"}]}`}},
			sha:      newSHA,
			field:    "builds.0.sha",
			attempts: 2, changes: "1:verified", served: newSHA[:7],
		},
		{
			name:        "three in a row required",
			replies:     []reply{{1, 200, health(newSHA)}, {1, 502, "bad gateway"}, {0, 200, health(newSHA)}},
			sha:         newSHA,
			consecutive: 3,
			attempts:    5, changes: "1:verified 2:unhealthy 3:verified", served: newSHA,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newService(t, tc.replies...)
			opts := fast(srv.URL, tc.sha)
			opts.VersionField, opts.Consecutive = tc.field, tc.consecutive
			var logged []string
			opts.Logf = func(f string, args ...any) { logged = append(logged, fmt.Sprintf(f, args...)) }
			res, err := Wait(t.Context(), opts)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if res.Outcome != Verified || res.Attempts != tc.attempts || outcomes(res.Changes) != tc.changes {
				t.Errorf("outcome %s after %d attempts, changes %q; want verified after %d, %q", res.Outcome, res.Attempts, outcomes(res.Changes), tc.attempts, tc.changes)
			}
			if res.ServedSHA != tc.served || tc.version != "" && res.ServedVersion != tc.version {
				t.Errorf("served %q %q, want %q %q", res.ServedSHA, res.ServedVersion, tc.served, tc.version)
			}
			// One line per change, plus the verdict: never one per poll.
			if len(logged) != len(res.Changes)+1 {
				t.Errorf("logged %d lines for %d changes:\n%s", len(logged), len(res.Changes), strings.Join(logged, "\n"))
			}
		})
	}
}

func TestWaitLogsOnlyChanges(t *testing.T) {
	t.Parallel()
	srv := newService(t, reply{20, 200, health(oldSHA)}, reply{0, 200, health(newSHA)})
	opts := fast(srv.URL, newSHA)
	var logged []string
	opts.Logf = func(f string, args ...any) { logged = append(logged, fmt.Sprintf(f, args...)) }
	res, err := Wait(t.Context(), opts)
	if err != nil || res.Attempts != 22 {
		t.Fatalf("Wait = %d attempts, %v", res.Attempts, err)
	}
	if len(logged) != 3 || !strings.Contains(logged[0], "still serves abcdef0 (want 1234567): the old version is still answering, or the new one reports another commit (attempt 1") ||
		!strings.Contains(logged[1], "serves 1234567: healthy (attempt 21") || !strings.HasPrefix(logged[2], "verified: ") {
		t.Errorf("log:\n%s", strings.Join(logged, "\n"))
	}
}

func TestWaitConnectionRefusedThenUp(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(health(newSHA)))
	}))
	t.Cleanup(srv.Close)
	opts := fast("http://"+addr, newSHA)
	opts.OnAttempt = func(a Attempt) {
		if a.N == 3 { // the service comes up after three refused polls
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("relisten %s: %v", addr, err)
				return
			}
			srv.Listener = l
			srv.Start()
		}
	}
	res, err := Wait(t.Context(), opts)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if res.Attempts != 5 || outcomes(res.Changes) != "1:unreachable 4:verified" {
		t.Errorf("attempts %d, changes %q", res.Attempts, outcomes(res.Changes))
	}
	first := res.Changes[0]
	if first.Err == nil || !strings.Contains(first.Detail, "connection refused") || first.Status != 0 {
		t.Errorf("first attempt: %+v", first)
	}
}

func TestWaitTimeout(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tc := range []struct {
		name    string
		url     func(t *testing.T) string
		field   string
		outcome Outcome
		msg     string // after "after 150ms <url>"
	}{
		{
			name:    "old version",
			url:     func(t *testing.T) string { return newService(t, reply{0, 200, health(oldSHA)}).URL },
			outcome: OldVersion,
			msg:     " still serves abcdef0 (want 1234567): the old version is still answering",
		},
		{
			name:    "unhealthy",
			url:     func(t *testing.T) string { return newService(t, reply{0, 503, `{"status":"starting"}`}).URL },
			outcome: Unhealthy,
			msg:     ` answers 503 (want 200): "{\"status\":\"starting\"}"`,
		},
		{
			name:    "unreachable",
			url:     func(*testing.T) string { return closedURL },
			outcome: Unreachable,
			msg:     " is unreachable: dial tcp ",
		},
		{
			name: "no commit in the body",
			url: func(t *testing.T) string {
				return newService(t, reply{0, 200, `{"git_sha":"unknown","version":"dev"}`}).URL
			},
			outcome: Unhealthy,
			msg:     ` answers 200 but it reports no commit SHA (git_sha "unknown", version "dev"); report the commit in git_sha or set version-field`,
		},
		{
			name:    "not JSON",
			url:     func(t *testing.T) string { return newService(t, reply{0, 200, "OK"}).URL },
			outcome: Unhealthy,
			msg:     ` answers 200 but the body is not JSON: "OK"`,
		},
		{
			name:    "version-field missing",
			url:     func(t *testing.T) string { return newService(t, reply{0, 200, health(newSHA)}).URL },
			field:   "build.commit",
			outcome: Unhealthy,
			msg:     " answers 200 but the body has no field build.commit",
		},
		{
			name:    "flapping",
			url:     func(t *testing.T) string { return flapping(t).URL },
			outcome: OldVersion,
			msg:     " still serves abcdef0 (want 1234567): the old version is still answering, or the new one reports another commit; it served 1234567 in ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url(t)
			opts := fast(u, newSHA[:7])
			opts.Timeout, opts.VersionField = 150*time.Millisecond, tc.field
			res, err := Wait(t.Context(), opts)
			if err == nil {
				t.Fatalf("Wait succeeded: %+v", res)
			}
			want := "after 150ms " + u + "/health" + tc.msg
			if !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error:\n%s\nwant prefix:\n%s", err, want)
			}
			if res.Outcome != tc.outcome || res.Attempts < 2 {
				t.Errorf("outcome %s after %d attempts, want %s", res.Outcome, res.Attempts, tc.outcome)
			}
		})
	}
}

func TestWaitFlappingPassesWithOneInARow(t *testing.T) {
	t.Parallel()
	opts := fast(flapping(t).URL, newSHA)
	opts.Consecutive = 1
	res, err := Wait(t.Context(), opts)
	if err != nil || res.Attempts != 2 || outcomes(res.Changes) != "1:old-version 2:verified" {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
}

func TestWaitRefusesBadOptions(t *testing.T) {
	t.Parallel()
	srv := newService(t, reply{0, 200, health(newSHA)})
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"6-char SHA", Options{URL: srv.URL, SHA: "123456"}, `expected SHA "123456" is too short; want at least 7 hex characters`},
		{"empty SHA", Options{URL: srv.URL}, "expected SHA is empty"},
		{"not hex", Options{URL: srv.URL, SHA: "1234567; true"}, "is not a hex commit SHA"},
		{"no scheme", Options{URL: "api.example.com", SHA: newSHA}, "is not an http:// or https:// URL"},
		{"bad status", Options{URL: srv.URL, SHA: newSHA, ExpectStatus: 42}, "42 is not an HTTP status code"},
	} {
		if _, err := Wait(t.Context(), tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if n := srv.count(); n != 0 {
		t.Errorf("%d requests made with bad options; want none", n)
	}
}

func TestWaitSendsHeaders(t *testing.T) {
	t.Parallel()
	srv := newService(t, reply{0, 200, health(newSHA)})
	opts := fast(srv.URL+"/", newSHA)
	opts.Headers = http.Header{"Authorization": {"Bearer s3cret"}, "Host": {"api.example.com"}}
	opts.ExpectStatus = 200
	if _, err := Wait(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	h := srv.headers[0]
	if h.Get("Authorization") != "Bearer s3cret" || h.Get("Host") != "api.example.com" || h.Get("Cache-Control") != "no-cache" || !strings.HasPrefix(h.Get("User-Agent"), "gantry/") {
		t.Errorf("headers sent: %v", h)
	}
}

func TestWaitCustomStatusAndPath(t *testing.T) {
	t.Parallel()
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"commit": newSHA})
	}))
	defer srv.Close()
	opts := fast(srv.URL+"/status/ready", newSHA)
	opts.ExpectStatus, opts.Consecutive = http.StatusAccepted, 1
	res, err := Wait(t.Context(), opts)
	if err != nil || res.Status != 202 || path != "/status/ready" {
		t.Fatalf("Wait = %+v, %v; path %s", res, err, path)
	}
}

func TestWaitCancelled(t *testing.T) {
	t.Parallel()
	srv := newService(t, reply{0, 200, health(oldSHA)})
	ctx, cancel := context.WithCancel(t.Context())
	opts := fast(srv.URL, newSHA)
	opts.OnAttempt = func(a Attempt) {
		if a.N == 2 {
			cancel()
		}
	}
	res, err := Wait(ctx, opts)
	if !errors.Is(err, context.Canceled) || res.Outcome != OldVersion || res.Attempts != 2 {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
}

func TestHealthURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://vm1:8080":            "http://vm1:8080/health",
		"https://api.example.com/":   "https://api.example.com/health",
		"https://api.example.com/hz": "https://api.example.com/hz",
		" http://10.0.0.5/x?y=1 ":    "http://10.0.0.5/x?y=1",
	} {
		u, err := HealthURL(in)
		if err != nil || u.String() != want {
			t.Errorf("HealthURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "vm1:8080", "ftp://x/health", "http://"} {
		if _, err := HealthURL(bad); err == nil {
			t.Errorf("HealthURL(%q) accepted", bad)
		}
	}
}

func TestWaitCancelledDuringARequest(t *testing.T) {
	t.Parallel()
	hanging := make(chan struct{})
	var once sync.Once
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			_, _ = w.Write([]byte(health(oldSHA)))
			return
		}
		once.Do(func() { close(hanging) })
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-hanging
		cancel()
	}()
	res, err := Wait(ctx, fast(srv.URL, newSHA))
	if !errors.Is(err, context.Canceled) || res.Attempts != 1 || res.Outcome != OldVersion ||
		!strings.Contains(err.Error(), "(last: still serves abcdef0 (want 1234567)") {
		t.Fatalf("Wait = %+v, %v", res, err)
	}
}
