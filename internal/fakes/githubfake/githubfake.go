// Package githubfake is an in-process fake of the GitHub endpoints gantry talks to: the Actions
// OIDC token endpoint, and the parts of the REST API gantry calls (issue comments on pull requests,
// deployments and their statuses, the authenticated user, releases and git references), answering
// with go-github's own types.
package githubfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/fakes"
)

// DefaultIssuer is the iss claim of GitHub Actions OIDC tokens.
const DefaultIssuer = "https://token.actions.githubusercontent.com"

// OIDCPath is where the fake serves the OIDC token endpoint, the path part of ACTIONS_ID_TOKEN_REQUEST_URL.
const OIDCPath = "/_apis/distributedtask/idtoken"

// Options configures a Server; the zero value is usable.
type Options struct {
	// RequestToken is the bearer token the OIDC endpoint demands (ACTIONS_ID_TOKEN_REQUEST_TOKEN); default random.
	RequestToken string
	// Repository is the owner/name the tokens are issued for; default "gantry-dev/app".
	Repository string
	// Ref is the git ref claim; default "refs/heads/main".
	Ref string
	// Subject is the sub claim; default "repo:<Repository>:ref:<Ref>".
	Subject string
	// Issuer is the iss claim; default DefaultIssuer.
	Issuer string
	// RunID is the run_id claim; default "4242".
	RunID string
	// Lifetime is how long issued tokens are valid; default 5 minutes, like GitHub's.
	Lifetime time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	// APIToken is the REST API token the fake accepts (sent as "Bearer" or "token"); default a
	// random "ghs_" installation token, acting as APIUser. AddToken registers more.
	APIToken string
	// APIUser is who APIToken acts as; default github-actions[bot], the identity of GITHUB_TOKEN.
	APIUser *github.User
	// APIPrefix is the path the REST API is served under: "" as on api.github.com, "/api/v3" as on
	// GitHub Enterprise Server.
	APIPrefix string

	// GitDir is a bare git repository standing in for the repository's git data: the git
	// references API reads and writes its refs, and releases tag its commits (see InitGitDir).
	GitDir string
	// ImmutableReleases turns on GitHub's immutable releases: a published release's assets and
	// tag are frozen.
	ImmutableReleases bool
}

// Issued is one OIDC token the fake handed out.
type Issued struct {
	Audience string
	Token    string
}

// Server is a fake GitHub: an http.Handler, served on loopback by Start.
type Server struct {
	// URL is the base URL of the running server (set by Start).
	URL string

	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	issued   []Issued
	failures []failure

	// REST API state, guarded by mu.
	tokens   map[string]Identity
	repos    map[string]*repository // by lower-case "owner/name"
	calls    []Call
	faults   fakes.Faults[Fault]
	nextID   int64
	requests int
}

type failure struct {
	status int
	times  int // 0: until ClearFaults
}

// New returns a fake GitHub handler; use Start to serve it.
func New(opts Options) *Server {
	if opts.RequestToken == "" {
		opts.RequestToken = "ghs_fake_request_" + randomHex(12)
	}
	if opts.Repository == "" {
		opts.Repository = "gantry-dev/app"
	}
	if opts.Ref == "" {
		opts.Ref = "refs/heads/main"
	}
	if opts.Subject == "" {
		opts.Subject = "repo:" + opts.Repository + ":ref:" + opts.Ref
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.RunID == "" {
		opts.RunID = "4242"
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.APIToken == "" {
		opts.APIToken = "ghs_" + randomHex(18)
	}
	if opts.APIUser == nil {
		opts.APIUser = ActionsBot()
	}
	opts.APIPrefix = strings.TrimSuffix(opts.APIPrefix, "/")
	s := &Server{opts: opts, mux: http.NewServeMux(), tokens: map[string]Identity{}, repos: map[string]*repository{}, nextID: firstID}
	s.tokens[opts.APIToken] = Identity{User: opts.APIUser}
	s.addRepo(opts.Repository)
	s.mux.HandleFunc("GET "+OIDCPath, s.serveOIDC)
	s.registerREST()
	return s
}

// Start serves a new fake on loopback until tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	s.URL = fakes.Serve(tb, s)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Handle adds a handler, for GitHub REST API endpoints a test needs.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// RequestURL is the value for ACTIONS_ID_TOKEN_REQUEST_URL.
func (s *Server) RequestURL() string { return s.URL + OIDCPath + "?api-version=2.0" }

// RequestToken is the value for ACTIONS_ID_TOKEN_REQUEST_TOKEN.
func (s *Server) RequestToken() string { return s.opts.RequestToken }

// Env returns the variables a job with `permissions: id-token: write` has, pointing at the fake.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"GITHUB_API_URL":                 s.APIURL(),
		"ACTIONS_ID_TOKEN_REQUEST_URL":   s.RequestURL(),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.RequestToken(),
		"GITHUB_REPOSITORY":              s.opts.Repository,
		"GITHUB_REF":                     s.opts.Ref,
		"GITHUB_RUN_ID":                  s.opts.RunID,
	}
}

// Issued returns the tokens handed out so far, oldest first.
func (s *Server) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issued(nil), s.issued...)
}

// FailOIDC makes the next times token requests fail with status (times 0: every request until ClearFaults).
func (s *Server) FailOIDC(status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, failure{status: status, times: times})
}

// ClearFaults removes injected failures, of the OIDC endpoint and of the REST API.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.failures = nil
	s.mu.Unlock()
	s.faults.Clear()
}

// Token mints a token as the endpoint would, without an HTTP round trip.
func (s *Server) Token(audience string) string {
	now := s.opts.Now()
	claims := map[string]any{
		"iss":              s.opts.Issuer,
		"aud":              audience,
		"sub":              s.opts.Subject,
		"repository":       s.opts.Repository,
		"repository_owner": strings.SplitN(s.opts.Repository, "/", 2)[0],
		"ref":              s.opts.Ref,
		"run_id":           s.opts.RunID,
		"jti":              randomHex(8),
		"iat":              now.Unix(),
		"nbf":              now.Unix(),
		"exp":              now.Add(s.opts.Lifetime).Unix(),
	}
	return NewJWT(claims)
}

func (s *Server) serveOIDC(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if len(s.failures) > 0 {
		f := &s.failures[0]
		status := f.status
		if f.times > 0 {
			if f.times--; f.times == 0 {
				s.failures = s.failures[1:]
			}
		}
		s.mu.Unlock()
		writeJSON(w, status, map[string]string{"message": http.StatusText(status)})
		return
	}
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+s.opts.RequestToken {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	}
	audience := r.URL.Query().Get("audience")
	if audience == "" {
		// GitHub defaults the audience to the repository owner's URL.
		audience = "https://github.com/" + strings.SplitN(s.opts.Repository, "/", 2)[0]
	}
	token := s.Token(audience)
	s.mu.Lock()
	s.issued = append(s.issued, Issued{Audience: audience, Token: token})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"value": token})
}

// NewJWT returns a well-formed but unsigned JWT (RS256 header, dummy signature) carrying claims.
func NewJWT(claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "githubfake"})
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("githubfake: claims do not encode: %v", err))
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte("unsigned"))
}

// ParseJWT decodes the claims of a JWT without verifying it; fakes of OIDC consumers use it.
func ParseJWT(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT: want 3 dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("not a JWT: payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("not a JWT: payload: %w", err)
	}
	return claims, nil
}

// ClaimString returns claims[name] if it is a string.
func ClaimString(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// ClaimTime returns a numeric date claim (exp, iat, nbf) as a time; zero if absent.
func ClaimTime(claims map[string]any, name string) time.Time {
	f, ok := claims[name].(float64)
	if !ok {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
