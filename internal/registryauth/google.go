package registryauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/google/externalaccount"
)

// Google endpoints and names used for workload identity federation. GANTRY_GCP_STS_URL and
// GANTRY_GCP_IAMCREDENTIALS_URL (base URLs, read through Options.Getenv) replace the endpoints in tests.
const (
	googleSTSURL            = "https://sts.googleapis.com"
	googleIAMCredentialsURL = "https://iamcredentials.googleapis.com"
	cloudPlatformScope      = "https://www.googleapis.com/auth/cloud-platform"
	jwtTokenType            = "urn:ietf:params:oauth:token-type:jwt"
	// googleUser is the registry user name that takes a Google access token as password.
	googleUser = "oauth2accesstoken"
)

var wifProvider = regexp.MustCompile(`^projects/[^/]+/locations/global/workloadIdentityPools/[^/]+/providers/[^/]+$`)

// googleAuth gets a Google access token for Artifact Registry or GCR: through workload identity
// federation with the job's OIDC token, else from GOOGLE_APPLICATION_CREDENTIALS, else from the Docker config.
func (r *Resolver) googleAuth(ctx context.Context, host string) (authEntry, error) {
	a, err := r.googleAuthenticator(ctx, host)
	if err != nil {
		return authEntry{}, err
	}
	if a == nil {
		auth, path, derr := r.dockerConfig(ctx, host)
		if derr != nil {
			return authEntry{}, derr
		}
		if auth != nil {
			r.logf("registry auth: %s: credentials from the Docker config %s", host, path)
			return authEntry{auth: auth, provider: DockerConfig}, nil
		}
		return authEntry{}, fmt.Errorf("%s needs Google credentials: set gcp-workload-identity-provider (and gcp-service-account) and grant `permissions: id-token: write`, or set GOOGLE_APPLICATION_CREDENTIALS", host)
	}
	r.logf("registry auth: %s: Google access token from %s", host, a.describe())
	return authEntry{auth: a, provider: ArtifactRegistry}, nil
}

// googleAuthenticator gets Google access tokens through workload identity federation with the
// job's OIDC token, else from GOOGLE_APPLICATION_CREDENTIALS, and fetches the first one now, so a
// misconfiguration fails here rather than mid-way. It returns nil when neither is configured.
// who starts error messages.
func (r *Resolver) googleAuthenticator(ctx context.Context, who string) (*googleAuthenticator, error) {
	rec := &googleErrors{}
	// Token sources keep the context for refreshes, so it must outlive this call; the HTTP
	// client's timeout bounds each request instead.
	tsCtx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, rec.client(r.httpClient()))
	var (
		ts     oauth2.TokenSource
		source string
		err    error
	)
	switch file := r.opts.Getenv("GOOGLE_APPLICATION_CREDENTIALS"); {
	case r.opts.GCPWorkloadIdentityProvider != "":
		source = "gcp-workload-identity-provider"
		ts, err = r.workloadIdentityTokenSource(tsCtx, who, rec)
	case file != "":
		source = "GOOGLE_APPLICATION_CREDENTIALS " + file
		ts, err = r.credentialsFileTokenSource(tsCtx, who, file)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a := &googleAuthenticator{r: r, host: who, source: source, ts: ts, rec: rec}
	if _, err := a.AuthorizationContext(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// GoogleTokenSource returns Google access tokens (cloud-platform scope) from
// gcp-workload-identity-provider through GitHub OIDC, else GOOGLE_APPLICATION_CREDENTIALS, each
// masked; the first is fetched now, so a misconfiguration fails with a one-line reason. who
// starts error messages; source says where the tokens come from.
func (r *Resolver) GoogleTokenSource(ctx context.Context, who string) (ts oauth2.TokenSource, source string, err error) {
	a, err := r.googleAuthenticator(ctx, who)
	if err != nil {
		return nil, "", err
	}
	if a == nil {
		return nil, "", fmt.Errorf("%s: no Google credentials: set gcp-workload-identity-provider (and gcp-service-account) and grant `permissions: id-token: write`, or set GOOGLE_APPLICATION_CREDENTIALS", who)
	}
	return googleTokens{a}, a.describe(), nil
}

// googleTokens is an oauth2.TokenSource over a googleAuthenticator, keeping its explained errors.
type googleTokens struct{ a *googleAuthenticator }

func (g googleTokens) Token() (*oauth2.Token, error) {
	cfg, err := g.a.AuthorizationContext(context.Background())
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: cfg.Password, TokenType: "Bearer"}, nil
}

// workloadIdentityTokenSource builds the external_account credential that
// google-github-actions/auth writes to a file, but in memory: its subject token comes from
// Options.OIDCToken through a SubjectTokenSupplier rather than a credential_source URL. That way the
// OIDC request token never lands on disk, the caller's OIDC client (and tests' fakes) are used, and
// each OIDC token is masked as soon as it exists.
func (r *Resolver) workloadIdentityTokenSource(ctx context.Context, host string, rec *googleErrors) (oauth2.TokenSource, error) {
	provider := r.opts.GCPWorkloadIdentityProvider
	for _, p := range []string{"https://iam.googleapis.com/", "//iam.googleapis.com/"} {
		provider = strings.TrimPrefix(provider, p)
	}
	if !wifProvider.MatchString(provider) {
		return nil, fmt.Errorf("%s: gcp-workload-identity-provider %q must look like projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>", host, r.opts.GCPWorkloadIdentityProvider)
	}
	stsURL := strings.TrimSuffix(r.opts.Getenv("GANTRY_GCP_STS_URL"), "/")
	if stsURL == "" {
		stsURL = googleSTSURL
	}
	cfg := externalaccount.Config{
		Audience:             "//iam.googleapis.com/" + provider,
		SubjectTokenType:     jwtTokenType,
		TokenURL:             stsURL + "/v1/token",
		Scopes:               []string{cloudPlatformScope},
		SubjectTokenSupplier: &oidcSupplier{r: r, audience: "https://iam.googleapis.com/" + provider, rec: rec},
	}
	if sa := r.opts.GCPServiceAccount; sa != "" {
		if !strings.Contains(sa, "@") {
			return nil, fmt.Errorf("%s: gcp-service-account %q must be a service account email (name@project.iam.gserviceaccount.com)", host, sa)
		}
		iamURL := strings.TrimSuffix(r.opts.Getenv("GANTRY_GCP_IAMCREDENTIALS_URL"), "/")
		if iamURL == "" {
			iamURL = googleIAMCredentialsURL
		}
		cfg.ServiceAccountImpersonationURL = iamURL + "/v1/projects/-/serviceAccounts/" + sa + ":generateAccessToken"
	}
	ts, err := externalaccount.NewTokenSource(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: workload identity federation: %w", host, err)
	}
	return ts, nil
}

// credentialsFileTokenSource loads a Google credential file of any type the Go client accepts.
func (r *Resolver) credentialsFileTokenSource(ctx context.Context, host, file string) (oauth2.TokenSource, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: reading GOOGLE_APPLICATION_CREDENTIALS: %w", host, err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%s: GOOGLE_APPLICATION_CREDENTIALS %s is not JSON: %v", host, file, err)
	}
	t := google.CredentialsType(head.Type)
	switch t {
	case google.ServiceAccount, google.AuthorizedUser, google.ExternalAccount, google.ExternalAccountAuthorizedUser, google.ImpersonatedServiceAccount:
	default:
		return nil, fmt.Errorf("%s: GOOGLE_APPLICATION_CREDENTIALS %s has credential type %q; want service_account, external_account, authorized_user or impersonated_service_account", host, file, head.Type)
	}
	// The file is the workflow's own configuration, so loading it by its declared type is safe.
	creds, err := google.CredentialsFromJSONWithTypeAndParams(ctx, data, t, google.CredentialsParams{Scopes: []string{cloudPlatformScope}})
	if err != nil {
		return nil, fmt.Errorf("%s: loading GOOGLE_APPLICATION_CREDENTIALS %s: %w", host, file, err)
	}
	if t == google.ServiceAccount {
		var key struct {
			PrivateKey string `json:"private_key"`
		}
		if json.Unmarshal(data, &key) == nil {
			r.mask(key.PrivateKey)
		}
	}
	return creds.TokenSource, nil
}

// oidcSupplier gives the external account credential the job's GitHub OIDC token.
type oidcSupplier struct {
	r        *Resolver
	audience string
	rec      *googleErrors
}

func (s *oidcSupplier) SubjectToken(ctx context.Context, _ externalaccount.SupplierOptions) (string, error) {
	token, err := s.r.oidcToken(ctx, s.audience)
	if err != nil {
		s.rec.setOIDC(err)
		return "", err
	}
	return token, nil
}

// googleAuthenticator hands out the token source's current access token, refreshing it as it
// expires, so a long push outlives the first token.
type googleAuthenticator struct {
	r      *Resolver
	host   string
	source string
	ts     oauth2.TokenSource
	rec    *googleErrors

	mu sync.Mutex
}

// Authorization implements authn.Authenticator.
func (a *googleAuthenticator) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

// AuthorizationContext implements authn.ContextAuthenticator.
func (a *googleAuthenticator) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.rec.reset()
		tok, err := a.ts.Token()
		if err == nil {
			a.r.mask(tok.AccessToken)
		} else {
			err = a.explain(err)
		}
		ch <- result{tok, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, res.err
		}
		return &authn.AuthConfig{Username: googleUser, Password: res.tok.AccessToken}, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: getting a Google access token: %w", a.host, ctx.Err())
	}
}

func (a *googleAuthenticator) describe() string {
	if a.source != "gcp-workload-identity-provider" {
		return a.source
	}
	s := "workload identity provider " + a.r.opts.GCPWorkloadIdentityProvider
	if sa := a.r.opts.GCPServiceAccount; sa != "" {
		s += " as " + sa
	}
	return s
}

// explain turns a token failure into one line naming the step that failed and what to change.
func (a *googleAuthenticator) explain(err error) error {
	f := a.rec.last()
	if f.oidc != nil {
		return fmt.Errorf("%s: gcp-workload-identity-provider needs the job's OIDC token: %w", a.host, f.oidc)
	}
	provider := a.r.opts.GCPWorkloadIdentityProvider
	switch {
	case f.status == 0:
		return fmt.Errorf("%s: getting a Google access token from %s: %w", a.host, a.describe(), err)
	case f.endpoint == "token" && a.source == "gcp-workload-identity-provider":
		return explained(err, "%s: Google STS refused the GitHub OIDC token (%s: %s); check gcp-workload-identity-provider %s and its attribute condition for this repository",
			a.host, f.code, f.message, provider)
	case f.endpoint == "generateAccessToken" && f.code == "PERMISSION_DENIED":
		return explained(err, "%s: the workload identity may not impersonate %s (%s: %s); grant it roles/iam.workloadIdentityUser on that service account",
			a.host, a.serviceAccount(), f.code, f.message)
	case f.status == http.StatusUnauthorized || f.status == http.StatusForbidden || f.status == http.StatusBadRequest:
		return explained(err, "%s: Google refused the credentials from %s at %s (%d %s: %s)", a.host, a.describe(), f.endpoint, f.status, f.code, f.message)
	}
	return explained(err, "%s: getting a Google access token from %s failed at %s (%d %s: %s)", a.host, a.describe(), f.endpoint, f.status, f.code, f.message)
}

func (a *googleAuthenticator) serviceAccount() string {
	if sa := a.r.opts.GCPServiceAccount; sa != "" && a.source == "gcp-workload-identity-provider" {
		return sa
	}
	return "the service account"
}

// googleErrors records the last error response from a Google token endpoint: the oauth2 library
// flattens them into strings, and which endpoint refused decides what the user must change.
type googleErrors struct {
	mu sync.Mutex
	f  googleFailure
}

type googleFailure struct {
	endpoint string // "token", "generateAccessToken" or the URL path
	status   int
	code     string // OAuth error or google.rpc status
	message  string
	oidc     error
}

func (g *googleErrors) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.f = googleFailure{}
}

func (g *googleErrors) last() googleFailure {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.f
}

func (g *googleErrors) setOIDC(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.f.oidc = err
}

// client wraps base so that error responses are recorded.
func (g *googleErrors) client(base *http.Client) *http.Client {
	c := *base
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = &recordingTransport{rt: rt, g: g}
	return &c
}

type recordingTransport struct {
	rt http.RoundTripper
	g  *googleErrors
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	f := googleFailure{endpoint: req.URL.Path, status: resp.StatusCode}
	switch {
	case strings.HasSuffix(req.URL.Path, "/token"):
		f.endpoint = "token"
	case strings.HasSuffix(req.URL.Path, ":generateAccessToken"):
		f.endpoint = "generateAccessToken"
	}
	// STS answers OAuth errors ({"error": "invalid_grant", ...}); other APIs google.rpc.Status.
	var oauthErr struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	if json.Unmarshal(body, &oauthErr) == nil && len(oauthErr.Error) > 0 {
		var code string
		var status struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		}
		if json.Unmarshal(oauthErr.Error, &code) == nil {
			f.code, f.message = code, oauthErr.Description
		} else if json.Unmarshal(oauthErr.Error, &status) == nil {
			f.code, f.message = status.Status, status.Message
		}
	}
	if f.code == "" {
		f.code, f.message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(body))
	}
	t.g.mu.Lock()
	t.g.f = googleFailure{endpoint: f.endpoint, status: f.status, code: f.code, message: f.message, oidc: t.g.f.oidc}
	t.g.mu.Unlock()
	return resp, nil
}
