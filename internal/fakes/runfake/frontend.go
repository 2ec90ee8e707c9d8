package runfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Frontend is Google's front end for the named services as an http.RoundTripper: a request to a
// service's URL or to one of its tag URLs is answered by the revision the traffic (or the tag)
// sends it to, as /health of a sample app would: {"status":"ok","git_sha":<the revision's
// gantry-sha label>}. Traffic splits are served in weighted round robin, so 10% of requests
// reach a 10% canary. Other hosts get a connection error, as an unknown name would.
func (s *Server) Frontend(services ...string) *Frontend {
	return &Frontend{s: s, services: services, served: map[string]int{}, fail: map[string]int{}, commit: map[string]string{}}
}

// Frontend answers HTTP requests to the services' URLs; see Server.Frontend.
type Frontend struct {
	s        *Server
	services []string

	mu     sync.Mutex
	served map[string]int    // revision -> requests answered, for the round robin
	fail   map[string]int    // revision -> status it answers with
	commit map[string]string // revision -> commit it reports instead of its label
}

// Fail makes revision answer every request with status (e.g. 500), as a broken release would.
func (f *Frontend) Fail(revision string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[revision] = status
}

// Report makes revision report sha as its commit, as an image built from
// another commit than the deploy says would.
func (f *Frontend) Report(revision, sha string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commit[revision] = sha
}

// RoundTrip implements http.RoundTripper.
func (f *Frontend) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	rev, ok := f.route(r.URL)
	if !ok {
		return nil, &url.Error{Op: r.Method, URL: r.URL.String(), Err: errNoSuchHost}
	}
	if rev == "" {
		return respond(r, http.StatusServiceUnavailable, `{"error":"no revision serves traffic"}`), nil
	}
	f.mu.Lock()
	code, sha := f.fail[rev], f.commit[rev]
	f.mu.Unlock()
	if code != 0 {
		return respond(r, code, `{"error":"internal error"}`), nil
	}
	if rv := f.s.Revision(rev); rv != nil && sha == "" {
		sha = rv.GetLabels()["gantry-sha"]
	}
	body, _ := json.Marshal(map[string]string{"status": "ok", "git_sha": sha, "revision": rev})
	return respond(r, http.StatusOK, string(body)), nil
}

type noSuchHost struct{}

func (noSuchHost) Error() string { return "dial tcp: lookup: no such host" }

var errNoSuchHost error = noSuchHost{}

// route finds the revision that answers u: "" when the service serves nothing; false for a host
// that is none of the services'.
func (f *Frontend) route(u *url.URL) (string, bool) {
	for _, id := range f.services {
		svc := f.s.Service(id)
		if svc == nil {
			continue
		}
		percent, tags := f.s.Traffic(id)
		if host(svc.GetUri()) == u.Host {
			return f.pick(percent), true
		}
		for _, st := range svc.GetTrafficStatuses() {
			if st.GetUri() != "" && host(st.GetUri()) == u.Host {
				return tags[st.GetTag()], true
			}
		}
	}
	return "", false
}

// pick chooses the revision whose share of requests so far lags its traffic share most.
func (f *Frontend) pick(percent map[string]int32) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	revs := make([]string, 0, len(percent))
	total := 0
	for r := range percent {
		revs = append(revs, r)
		total += f.served[r]
	}
	sort.Strings(revs)
	best, bestLag := "", -1.0
	for _, r := range revs {
		lag := float64(percent[r])/100*float64(total+1) - float64(f.served[r])
		if best == "" || lag > bestLag {
			best, bestLag = r, lag
		}
	}
	if best != "" {
		f.served[best]++
	}
	return best
}

func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

func respond(r *http.Request, code int, body string) *http.Response {
	return &http.Response{
		StatusCode: code, Status: strconv.Itoa(code) + " " + http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": []string{"application/json"}},
		Body:    io.NopCloser(strings.NewReader(body)),
		Request: r, ContentLength: int64(len(body)),
	}
}
