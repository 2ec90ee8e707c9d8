// Package googlefake is an in-process fake of Google's Security Token Service (token exchange) and IAM Credentials API (generateAccessToken), for tests of workload identity federation.
package googlefake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/fakes"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
)

// Grant and token types of RFC 8693 token exchange, as Google STS uses them.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	// ScopeCloudPlatform is the scope registry clients ask for.
	ScopeCloudPlatform = "https://www.googleapis.com/auth/cloud-platform"
)

// Endpoints a Fault can target.
const (
	EndpointToken               = "token"               // STS POST /v1/token
	EndpointGenerateAccessToken = "generateAccessToken" // IAM Credentials
)

// Options configures a Server; the zero value accepts any workload identity provider.
type Options struct {
	// Provider is the workload identity provider resource name
	// ("projects/123/locations/global/workloadIdentityPools/pool/providers/github"); STS accepts the
	// audience "//iam.googleapis.com/"+Provider only. Empty accepts any "//iam.googleapis.com/projects/..." audience.
	Provider string
	// Issuer is the iss claim subject tokens must carry; default GitHub's.
	Issuer string
	// CheckSubjectToken replaces the default check of subject tokens (a JWT whose iss is Issuer, whose
	// aud is "https://iam.googleapis.com/<provider>" and which has not expired); return a message to reject it.
	CheckSubjectToken func(token, audience string) error
	// ServiceAccounts are the emails the federated principal may impersonate; empty allows any.
	ServiceAccounts []string
	// Lifetime of issued tokens; default one hour.
	Lifetime time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Fault makes calls to an endpoint fail the way Google fails them.
type Fault struct {
	Endpoint string // EndpointToken or EndpointGenerateAccessToken; "" matches both
	// Kind is an OAuth error code for the token endpoint ("invalid_grant", "invalid_target",
	// "unauthorized_client") or a google.rpc status for IAM Credentials ("PERMISSION_DENIED", "UNAVAILABLE").
	Kind    string
	Message string // default: what Google says for Kind
	Times   int    // calls to fail; 0 fails every call until ClearFaults
}

// InvalidGrant fails the next times token exchanges as STS does for a rejected subject token.
func InvalidGrant(times int) Fault {
	return Fault{Endpoint: EndpointToken, Kind: "invalid_grant", Times: times}
}

// PermissionDenied fails the next times generateAccessToken calls as IAM does when the principal may not impersonate.
func PermissionDenied(times int) Fault {
	return Fault{Endpoint: EndpointGenerateAccessToken, Kind: "PERMISSION_DENIED", Times: times}
}

// Call is one request the fake answered.
type Call struct {
	Endpoint       string // EndpointToken or EndpointGenerateAccessToken
	Audience       string // token: the audience form field
	SubjectToken   string // token: the subject token
	Scope          string // token: the scope form field; generateAccessToken: the scopes joined by spaces
	ServiceAccount string // generateAccessToken: the email in the path
	Error          string // OAuth error or google.rpc status; "" when it succeeded
}

// Server is a fake of sts.googleapis.com and iamcredentials.googleapis.com on one loopback address.
type Server struct {
	// URL is the base URL of the running server (set by Start); use it for both APIs.
	URL string

	opts Options
	mux  *http.ServeMux

	mu         sync.Mutex
	federated  map[string]time.Time // federated access token -> expiry
	accessToks map[string]string    // service-account access token -> email
	calls      []Call
	faults     fakes.Faults[Fault]
}

// New returns a fake Google STS and IAM Credentials handler; use Start to serve it.
func New(opts Options) *Server {
	if opts.Issuer == "" {
		opts.Issuer = githubfake.DefaultIssuer
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), federated: map[string]time.Time{}, accessToks: map[string]string{}}
	s.mux.HandleFunc("POST /v1/token", s.serveToken)
	s.mux.HandleFunc("POST /v1/projects/{project}/serviceAccounts/{name}", s.serveGenerateAccessToken)
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

// Env returns gantry's endpoint overrides pointing at the fake.
func (s *Server) Env() map[string]string {
	return map[string]string{"GANTRY_GCP_STS_URL": s.URL, "GANTRY_GCP_IAMCREDENTIALS_URL": s.URL}
}

// TokenURL is the token exchange endpoint, for token_url in credential files.
func (s *Server) TokenURL() string { return s.URL + "/v1/token" }

// ImpersonationURL is the generateAccessToken endpoint for sa, for service_account_impersonation_url.
func (s *Server) ImpersonationURL(sa string) string {
	return s.URL + "/v1/projects/-/serviceAccounts/" + sa + ":generateAccessToken"
}

// AccessTokens returns the service-account access tokens issued so far, mapped to their service account.
func (s *Server) AccessTokens() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.accessToks))
	for k, v := range s.accessToks {
		out[k] = v
	}
	return out
}

// FederatedTokens returns the STS access tokens issued so far.
func (s *Server) FederatedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.federated {
		out = append(out, k)
	}
	return out
}

// Calls returns the calls answered so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Inject adds a fault; faults are consulted in the order added.
func (s *Server) Inject(f Fault) {
	s.faults.Add(f.Endpoint, f.Times, f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.faults.Clear()
}

func (s *Server) fault(endpoint string) *Fault {
	if f, ok := s.faults.Take(endpoint); ok {
		return &f
	}
	return nil
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// serveToken answers an RFC 8693 token exchange as sts.googleapis.com/v1/token does.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	call := Call{Endpoint: EndpointToken}
	fail := func(code, desc string) {
		call.Error = code
		s.record(call)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
	}
	if err := r.ParseForm(); err != nil {
		fail("invalid_request", "Invalid form body: "+err.Error())
		return
	}
	call.Audience, call.SubjectToken, call.Scope = r.PostForm.Get("audience"), r.PostForm.Get("subject_token"), r.PostForm.Get("scope")
	if f := s.fault(EndpointToken); f != nil {
		msg := f.Message
		if msg == "" {
			msg = tokenErrorDescription(f.Kind, call.Audience)
		}
		fail(f.Kind, msg)
		return
	}
	switch {
	case r.PostForm.Get("grant_type") != GrantTypeTokenExchange:
		fail("unsupported_grant_type", fmt.Sprintf("Invalid value for \"grant_type\": %q.", r.PostForm.Get("grant_type")))
		return
	case r.PostForm.Get("requested_token_type") != TokenTypeAccessToken:
		fail("invalid_request", "Invalid value for \"requested_token_type\".")
		return
	case r.PostForm.Get("subject_token_type") != TokenTypeJWT && r.PostForm.Get("subject_token_type") != TokenTypeIDToken:
		fail("invalid_request", "Invalid value for \"subject_token_type\".")
		return
	case call.SubjectToken == "":
		fail("invalid_request", "Missing required parameter \"subject_token\".")
		return
	case !s.knownAudience(call.Audience):
		fail("invalid_target", tokenErrorDescription("invalid_target", call.Audience))
		return
	}
	if msg := s.checkSubjectToken(call.SubjectToken, call.Audience); msg != "" {
		fail("invalid_grant", msg)
		return
	}
	token := "fed." + randomHex(24)
	s.mu.Lock()
	s.federated[token] = s.opts.Now().Add(s.opts.Lifetime)
	s.mu.Unlock()
	s.record(call)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      token,
		"issued_token_type": TokenTypeAccessToken,
		"token_type":        "Bearer",
		"expires_in":        int(s.opts.Lifetime / time.Second),
	})
}

func (s *Server) knownAudience(aud string) bool {
	if s.opts.Provider != "" {
		return aud == "//iam.googleapis.com/"+s.opts.Provider
	}
	return strings.HasPrefix(aud, "//iam.googleapis.com/projects/")
}

// checkSubjectToken returns why STS rejects token ("" accepts it), in Google's words.
func (s *Server) checkSubjectToken(token, audience string) string {
	if s.opts.CheckSubjectToken != nil {
		if err := s.opts.CheckSubjectToken(token, audience); err != nil {
			return err.Error()
		}
		return ""
	}
	claims, err := githubfake.ParseJWT(token)
	if err != nil {
		return "Unable to parse the ID Token."
	}
	if iss := githubfake.ClaimString(claims, "iss"); iss != s.opts.Issuer {
		return fmt.Sprintf("The issuer in ID Token %s does not match the expected ones: %s.", iss, s.opts.Issuer)
	}
	want := "https:" + audience
	if aud := githubfake.ClaimString(claims, "aud"); aud != want {
		return fmt.Sprintf("The audience in ID Token [%s] does not match the expected audience %s.", aud, want)
	}
	if exp := githubfake.ClaimTime(claims, "exp"); !exp.IsZero() && !s.opts.Now().Before(exp) {
		return fmt.Sprintf("ID Token expired at %s.", exp.UTC().Format(time.RFC3339))
	}
	return ""
}

func tokenErrorDescription(kind, audience string) string {
	switch kind {
	case "invalid_grant":
		return "The audience in ID Token [https://example.invalid] does not match the expected audience https:" + audience + "."
	case "invalid_target":
		return "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist."
	case "unauthorized_client":
		return "The given credential is rejected by the attribute condition."
	}
	return kind
}

type generateAccessTokenRequest struct {
	Delegates []string `json:"delegates"`
	Scope     []string `json:"scope"`
	Lifetime  string   `json:"lifetime"`
}

// serveGenerateAccessToken answers POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken.
func (s *Server) serveGenerateAccessToken(w http.ResponseWriter, r *http.Request) {
	call := Call{Endpoint: EndpointGenerateAccessToken}
	fail := func(status int, rpcStatus, msg string, details ...any) {
		call.Error = rpcStatus
		s.record(call)
		writeGoogleError(w, status, rpcStatus, msg, details...)
	}
	sa, ok := strings.CutSuffix(r.PathValue("name"), ":generateAccessToken")
	if !ok {
		fail(http.StatusNotFound, "NOT_FOUND", "Method not found.")
		return
	}
	call.ServiceAccount = sa
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.federated[bearer]
	s.mu.Unlock()
	if !known || !s.opts.Now().Before(exp) {
		fail(http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
		return
	}
	var req generateAccessTokenRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received. "+err.Error())
		return
	}
	call.Scope = strings.Join(req.Scope, " ")
	if f := s.fault(EndpointGenerateAccessToken); f != nil {
		if f.Kind == "PERMISSION_DENIED" {
			msg := f.Message
			if msg == "" {
				msg = "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
			}
			fail(http.StatusForbidden, f.Kind, msg, permissionDeniedInfo(sa))
		} else {
			fail(httpStatusFor(f.Kind), f.Kind, f.Message)
		}
		return
	}
	if len(req.Scope) == 0 {
		fail(http.StatusBadRequest, "INVALID_ARGUMENT", "Scope required.")
		return
	}
	if len(s.opts.ServiceAccounts) > 0 && !slices.Contains(s.opts.ServiceAccounts, sa) {
		fail(http.StatusForbidden, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", permissionDeniedInfo(sa))
		return
	}
	lifetime := s.opts.Lifetime
	if d, err := time.ParseDuration(req.Lifetime); err == nil && d > 0 && d < lifetime {
		lifetime = d
	}
	token := "ya29.fake-" + randomHex(24)
	s.mu.Lock()
	s.accessToks[token] = sa
	s.mu.Unlock()
	s.record(call)
	writeJSON(w, http.StatusOK, map[string]string{
		"accessToken": token,
		"expireTime":  s.opts.Now().Add(lifetime).UTC().Format(time.RFC3339),
	})
}

func permissionDeniedInfo(sa string) any {
	return map[string]any{
		"@type":    "type.googleapis.com/google.rpc.ErrorInfo",
		"reason":   "IAM_PERMISSION_DENIED",
		"domain":   "iam.googleapis.com",
		"metadata": map[string]string{"permission": "iam.serviceAccounts.getAccessToken", "resource": "projects/-/serviceAccounts/" + sa},
	}
}

func httpStatusFor(rpcStatus string) int {
	switch rpcStatus {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION":
		return http.StatusBadRequest
	case "UNAUTHENTICATED":
		return http.StatusUnauthorized
	case "PERMISSION_DENIED":
		return http.StatusForbidden
	case "NOT_FOUND":
		return http.StatusNotFound
	case "RESOURCE_EXHAUSTED":
		return http.StatusTooManyRequests
	case "UNAVAILABLE":
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeGoogleError writes the JSON error body of Google APIs: {"error": {code, message, status, details}}.
func writeGoogleError(w http.ResponseWriter, status int, rpcStatus, msg string, details ...any) {
	e := map[string]any{"code": status, "message": msg, "status": rpcStatus}
	if len(details) > 0 {
		e["details"] = details
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RegistryAuth wraps an OCI registry as Artifact Registry guards it: basic auth with user
// oauth2accesstoken and an access token this fake issued, else 401 with a Basic challenge. The
// Authorization header is removed before next sees the request.
func (s *Server) RegistryAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if _, issued := s.AccessTokens()[pass]; !ok || user != "oauth2accesstoken" || !issued {
			w.Header().Set("WWW-Authenticate", `Basic realm="artifact-registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"not an issued access token"}]}`, http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		next.ServeHTTP(w, r)
	})
}
