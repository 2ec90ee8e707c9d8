package githubfake

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v84/github"
)

// REST operations the fake serves, named as GitHub's REST reference (and go-github's
// meta:operation comments) name them. Fault.Op and CallCount take them.
const (
	OpGetAuthenticatedUser   = "GET /user"
	OpListComments           = "GET /repos/{owner}/{repo}/issues/{issue_number}/comments"
	OpCreateComment          = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
	OpUpdateComment          = "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}"
	OpDeleteComment          = "DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}"
	OpListDeployments        = "GET /repos/{owner}/{repo}/deployments"
	OpCreateDeployment       = "POST /repos/{owner}/{repo}/deployments"
	OpGetDeployment          = "GET /repos/{owner}/{repo}/deployments/{deployment_id}"
	OpListDeploymentStatuses = "GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses"
	OpCreateDeploymentStatus = "POST /repos/{owner}/{repo}/deployments/{deployment_id}/statuses"
	OpGetDeploymentStatus    = "GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses/{status_id}"
)

// Messages GitHub answers with, which callers recognise.
const (
	MessageNotAccessible      = "Resource not accessible by integration"
	MessageBadCredentials     = "Bad credentials"
	MessageSecondaryRateLimit = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID " + requestIDPlaceholder + "."
	MessagePrimaryRateLimit   = "API rate limit exceeded for installation ID 40000001. If you reach out to GitHub Support for help, please include the request ID " + requestIDPlaceholder + "."
)

// requestIDPlaceholder in a Fault's message becomes the request's X-GitHub-Request-Id.
const requestIDPlaceholder = "{request_id}"

// Rate limit documentation pages; go-github tells a secondary limit from the URL's fragment.
const (
	docRateLimits          = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
	docSecondaryRateLimits = docRateLimits + "#about-secondary-rate-limits"
)

// opDocs is the reference page GitHub names in an operation's errors.
var opDocs = map[string]string{
	OpGetAuthenticatedUser:   "https://docs.github.com/rest/users/users#get-the-authenticated-user",
	OpListComments:           "https://docs.github.com/rest/issues/comments#list-issue-comments",
	OpCreateComment:          "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
	OpUpdateComment:          "https://docs.github.com/rest/issues/comments#update-an-issue-comment",
	OpDeleteComment:          "https://docs.github.com/rest/issues/comments#delete-an-issue-comment",
	OpListDeployments:        "https://docs.github.com/rest/deployments/deployments#list-deployments",
	OpCreateDeployment:       "https://docs.github.com/rest/deployments/deployments#create-a-deployment",
	OpGetDeployment:          "https://docs.github.com/rest/deployments/deployments#get-a-deployment",
	OpListDeploymentStatuses: "https://docs.github.com/rest/deployments/statuses#list-deployment-statuses",
	OpCreateDeploymentStatus: "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status",
	OpGetDeploymentStatus:    "https://docs.github.com/rest/deployments/statuses#get-a-deployment-status",
}

// opScopes is the GITHUB_TOKEN permission an operation needs (any one of them); writes need it at
// "write", reads at "read" or "write". GET /user needs none.
var opScopes = map[string][]string{
	OpListComments:           {"issues", "pull-requests"},
	OpCreateComment:          {"issues", "pull-requests"},
	OpUpdateComment:          {"issues", "pull-requests"},
	OpDeleteComment:          {"issues", "pull-requests"},
	OpListDeployments:        {"deployments"},
	OpCreateDeployment:       {"deployments"},
	OpGetDeployment:          {"deployments"},
	OpListDeploymentStatuses: {"deployments"},
	OpCreateDeploymentStatus: {"deployments"},
	OpGetDeploymentStatus:    {"deployments"},
	OpListReleases:           {"contents"},
	OpCreateRelease:          {"contents"},
	OpGetRelease:             {"contents"},
	OpGetReleaseByTag:        {"contents"},
	OpUpdateRelease:          {"contents"},
	OpDeleteRelease:          {"contents"},
	OpListReleaseAssets:      {"contents"},
	OpUploadReleaseAsset:     {"contents"},
	OpDeleteReleaseAsset:     {"contents"},
	OpGetRef:                 {"contents"},
	OpCreateRef:              {"contents"},
	OpUpdateRef:              {"contents"},
	OpDeleteRef:              {"contents"},
}

const (
	firstID      = 2_000_000_001 // IDs of comments, deployments and statuses count up from here
	rateLimit    = 5000          // X-RateLimit-Limit of every token
	maxPerPage   = 100
	defaultPage  = 30
	maxBodyBytes = 4 << 20
)

// Identity is who a token acts as and what it may do.
type Identity struct {
	User *github.User
	// Permissions is the job's `permissions:` block (scope → "read" or "write"), checked as
	// GITHUB_TOKEN is checked: a call without its scope fails with 403 "Resource not accessible by
	// integration". Nil grants everything.
	Permissions map[string]string
}

// Call is one REST request the fake answered.
type Call struct {
	Op     string // e.g. OpCreateComment; "" for a path the fake does not serve
	Method string
	Path   string // as requested, without the query
	Login  string // whom the token acts as; "" when it was not accepted
	Status int
}

// Fault makes REST calls fail the way GitHub fails them; MissingPermission, SecondaryRateLimit,
// PrimaryRateLimit and ServerError build the usual ones. Faults apply after the token is checked.
type Fault struct {
	Op      string // operation, e.g. OpCreateComment; "" matches every REST call
	Status  int
	Message string // default: the status text
	// RetryAfter, when positive, is sent as the Retry-After header (whole seconds).
	RetryAfter time.Duration
	// RateLimitReset, when set, answers as a spent primary rate limit: X-RateLimit-Remaining 0
	// and X-RateLimit-Reset at this time.
	RateLimitReset   time.Time
	DocumentationURL string // default: the operation's reference page
	// Applied carries the call out before failing it, as when GitHub answers 502 after the
	// write went through: a client that repeats the write blindly does it twice.
	Applied bool
	Times   int // calls to fail; 0 fails every call until ClearFaults
}

// MissingPermission fails calls as GitHub does when GITHUB_TOKEN lacks the permission (or is the
// read-only token of a pull request from a fork).
func MissingPermission(op string, times int) Fault {
	return Fault{Op: op, Status: http.StatusForbidden, Message: MessageNotAccessible, Times: times}
}

// SecondaryRateLimit fails calls as GitHub's secondary (abuse) rate limit does: status 403 or 429,
// with Retry-After.
func SecondaryRateLimit(op string, status int, retryAfter time.Duration, times int) Fault {
	return Fault{Op: op, Status: status, Message: MessageSecondaryRateLimit, RetryAfter: retryAfter,
		DocumentationURL: docSecondaryRateLimits, Times: times}
}

// PrimaryRateLimit fails calls as a spent hourly quota does: 403 with X-RateLimit-Remaining 0
// until reset.
func PrimaryRateLimit(op string, reset time.Time, times int) Fault {
	return Fault{Op: op, Status: http.StatusForbidden, Message: MessagePrimaryRateLimit, RateLimitReset: reset,
		DocumentationURL: docRateLimits, Times: times}
}

// ServerError fails calls with a 5xx status, as GitHub does now and then.
func ServerError(op string, status, times int) Fault {
	return Fault{Op: op, Status: status, Message: "Server Error", Times: times}
}

// apiError is GitHub's error body.
type apiError struct {
	Message          string         `json:"message"`
	Errors           []github.Error `json:"errors,omitempty"`
	DocumentationURL string         `json:"documentation_url"`
	Status           string         `json:"status"`
}

// request is one authenticated REST call being served.
type request struct {
	r      *http.Request
	op     string
	id     Identity
	base   string      // the API's base URL as the client sees it, without a trailing slash
	header http.Header // response headers the handler adds

	requestID string // X-GitHub-Request-Id
}

// response is what a handler answers: a status and a body to encode (nil: none).
type response struct {
	status int
	body   any
}

func (rq *request) fail(status int, message string, errs ...github.Error) response {
	return response{status, apiError{Message: message, Errors: errs, DocumentationURL: opDocs[rq.op], Status: strconv.Itoa(status)}}
}

func (rq *request) notFound() response { return rq.fail(http.StatusNotFound, "Not Found") }

// decode reads the JSON request body into v; ok false carries GitHub's answer to a bad body.
func (rq *request) decode(v any) (response, bool) {
	body, err := io.ReadAll(io.LimitReader(rq.r.Body, maxBodyBytes))
	if err != nil || json.Unmarshal(body, v) != nil {
		return rq.fail(http.StatusBadRequest, "Problems parsing JSON"), false
	}
	return response{}, true
}

// ActionsBot returns the user GITHUB_TOKEN acts as.
func ActionsBot() *github.User {
	return &github.User{
		Login:     github.Ptr("github-actions[bot]"),
		ID:        github.Ptr(int64(41898282)),
		NodeID:    github.Ptr("MDM6Qm90NDE4OTgyODI="),
		AvatarURL: github.Ptr("https://avatars.githubusercontent.com/in/15368?v=4"),
		HTMLURL:   github.Ptr("https://github.com/apps/github-actions"),
		URL:       github.Ptr("https://api.github.com/users/github-actions%5Bbot%5D"),
		Type:      github.Ptr("Bot"),
		SiteAdmin: github.Ptr(false),
	}
}

// User returns a person's account with a stable made-up ID, for AddToken and AddComment.
func User(login string) *github.User {
	h := fnv.New32a()
	h.Write([]byte(login))
	id := int64(h.Sum32()%90_000_000) + 1_000_000
	return &github.User{
		Login:     github.Ptr(login),
		ID:        github.Ptr(id),
		NodeID:    github.Ptr("U_fake" + strconv.FormatInt(id, 36)),
		AvatarURL: github.Ptr(fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", id)),
		HTMLURL:   github.Ptr("https://github.com/" + login),
		URL:       github.Ptr("https://api.github.com/users/" + login),
		Type:      github.Ptr("User"),
		SiteAdmin: github.Ptr(false),
	}
}

// APIURL is the REST API's base URL, the value of GITHUB_API_URL.
func (s *Server) APIURL() string { return s.URL + s.opts.APIPrefix }

// APIToken is the token the REST API accepts by default (Options.APIToken).
func (s *Server) APIToken() string { return s.opts.APIToken }

// AddToken makes the REST API accept token, acting as id.
func (s *Server) AddToken(token string, id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = id
}

// Inject adds a REST fault; faults are consulted in the order added.
func (s *Server) Inject(f Fault) { s.faults.Add(f.Op, f.Times, f) }

// Calls returns the REST calls answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallCount counts the calls of op, failed ones included.
func (s *Server) CallCount(op string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Op == op {
			n++
		}
	}
	return n
}

func (s *Server) registerREST() {
	s.route(OpGetAuthenticatedUser, s.getAuthenticatedUser)
	s.route(OpListComments, s.listComments)
	s.route(OpCreateComment, s.createComment)
	s.route(OpUpdateComment, s.updateComment)
	s.route(OpDeleteComment, s.deleteComment)
	s.route(OpListDeployments, s.listDeployments)
	s.route(OpCreateDeployment, s.createDeployment)
	s.route(OpGetDeployment, s.getDeployment)
	s.route(OpListDeploymentStatuses, s.listDeploymentStatuses)
	s.route(OpCreateDeploymentStatus, s.createDeploymentStatus)
	s.route(OpGetDeploymentStatus, s.getDeploymentStatus)
	s.registerReleases()
	// Anything else under the API answers as GitHub does for an unknown path.
	s.route("", func(rq *request) response { return rq.notFound() })
}

// route serves op (or, for "", every other path under the API prefix): it checks the token,
// applies injected faults, checks the token's permission and calls h under the server's lock.
func (s *Server) route(op string, h func(*request) response) {
	path := ""
	if op != "" {
		_, path, _ = strings.Cut(op, " ")
	}
	s.routeAt(op, path, h)
}

// routeAt is route with the path pattern given, for an operation whose own path would conflict
// with another's in http.ServeMux.
func (s *Server) routeAt(op, path string, h func(*request) response) {
	pattern := s.opts.APIPrefix + "/"
	if op != "" {
		method, _, _ := strings.Cut(op, " ")
		pattern = method + " " + s.opts.APIPrefix + path
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rq := &request{r: r, op: op, base: "http://" + r.Host + s.opts.APIPrefix, header: http.Header{},
			requestID: strings.ToUpper(randomHex(4) + ":" + randomHex(6))}
		resp, login := s.serveREST(rq, h)
		s.mu.Lock()
		s.calls = append(s.calls, Call{Op: op, Method: r.Method, Path: r.URL.Path, Login: login, Status: resp.status})
		s.requests++
		used := s.requests
		s.mu.Unlock()

		hd := w.Header()
		for k, v := range rq.header {
			hd[k] = v
		}
		hd.Set("X-GitHub-Request-Id", rq.requestID)
		hd.Set("X-GitHub-Media-Type", "github.v3; format=json")
		if login != "" && hd.Get("X-RateLimit-Remaining") == "" {
			hd.Set("X-RateLimit-Limit", strconv.Itoa(rateLimit))
			hd.Set("X-RateLimit-Remaining", strconv.Itoa(max(rateLimit-used, 1)))
			hd.Set("X-RateLimit-Used", strconv.Itoa(min(used, rateLimit-1)))
			hd.Set("X-RateLimit-Reset", strconv.FormatInt(s.opts.Now().Add(time.Hour).Truncate(time.Hour).Unix(), 10))
			hd.Set("X-RateLimit-Resource", "core")
		}
		if resp.body == nil {
			w.WriteHeader(resp.status)
			return
		}
		writeJSON(w, resp.status, resp.body)
	})
}

func (s *Server) serveREST(rq *request, h func(*request) response) (response, string) {
	scheme, token, _ := strings.Cut(rq.r.Header.Get("Authorization"), " ")
	if scheme == "" {
		return rq.fail(http.StatusUnauthorized, "Requires authentication"), ""
	}
	s.mu.Lock()
	id, ok := s.tokens[strings.TrimSpace(token)]
	s.mu.Unlock()
	if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "token")) {
		return rq.fail(http.StatusUnauthorized, MessageBadCredentials), ""
	}
	rq.id = id
	login := id.User.GetLogin()
	f, faulty := s.faults.Take(rq.op)
	if faulty && !f.Applied {
		return s.faultResponse(rq, f), login
	}
	if !permitted(id.Permissions, rq.op, rq.r.Method) {
		return rq.fail(http.StatusForbidden, MessageNotAccessible), login
	}
	s.mu.Lock()
	resp := h(rq)
	s.mu.Unlock()
	if faulty {
		rq.header = http.Header{}
		return s.faultResponse(rq, f), login
	}
	return resp, login
}

func (s *Server) faultResponse(rq *request, f Fault) response {
	msg := strings.ReplaceAll(f.Message, requestIDPlaceholder, rq.requestID)
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	resp := rq.fail(f.Status, msg)
	if f.DocumentationURL != "" {
		e := resp.body.(apiError)
		e.DocumentationURL = f.DocumentationURL
		resp.body = e
	}
	if f.RetryAfter > 0 {
		rq.header.Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
	}
	if !f.RateLimitReset.IsZero() {
		rq.header.Set("X-RateLimit-Limit", strconv.Itoa(rateLimit))
		rq.header.Set("X-RateLimit-Remaining", "0")
		rq.header.Set("X-RateLimit-Used", strconv.Itoa(rateLimit))
		rq.header.Set("X-RateLimit-Reset", strconv.FormatInt(f.RateLimitReset.Unix(), 10))
		rq.header.Set("X-RateLimit-Resource", "core")
	}
	return resp
}

// permitted reports whether a job's permissions allow op.
func permitted(perms map[string]string, op, method string) bool {
	scopes, ok := opScopes[op]
	if perms == nil || !ok {
		return true
	}
	for _, scope := range scopes {
		switch perms[scope] {
		case "write":
			return true
		case "read":
			if method == http.MethodGet || method == http.MethodHead {
				return true
			}
		}
	}
	return false
}

// getAuthenticatedUser answers GET /user: the user a personal token belongs to; an installation
// token (GITHUB_TOKEN, a GitHub App) has no user and gets 403.
func (s *Server) getAuthenticatedUser(rq *request) response {
	if rq.id.User.GetType() == "Bot" {
		return rq.fail(http.StatusForbidden, MessageNotAccessible)
	}
	return response{http.StatusOK, rq.id.User}
}

// paginate returns the page of items the request asks for (page, per_page) and sets the Link
// header GitHub sends, with next, last, first and prev relations.
func paginate[T any](rq *request, items []T) []T {
	q := rq.r.URL.Query()
	perPage, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || perPage < 1 {
		perPage = defaultPage
	}
	perPage = min(perPage, maxPerPage)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	last := max((len(items)+perPage-1)/perPage, 1)
	link := func(p int, rel string) string {
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(perPage))
		u := url.URL{Scheme: "http", Host: rq.r.Host, Path: rq.r.URL.Path, RawQuery: q.Encode()}
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"), link(min(page-1, last), "prev"))
	}
	if len(links) > 0 {
		rq.header.Set("Link", strings.Join(links, ", "))
	}
	start := min((page-1)*perPage, len(items))
	end := min(start+perPage, len(items))
	return items[start:end]
}

// timestamp is now in GitHub's resolution (seconds, UTC).
func (s *Server) timestamp() *github.Timestamp {
	return &github.Timestamp{Time: s.opts.Now().UTC().Truncate(time.Second)}
}

func (s *Server) newID() int64 {
	id := s.nextID
	s.nextID++
	return id
}
