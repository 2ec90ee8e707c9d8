// Package registryauth chooses container registry credentials by registry host: a GitHub token for
// ghcr.io, an ECR authorization token for Amazon ECR, a Google access token for Artifact Registry and
// GCR, and a username/password, the Docker config or anonymous access for everything else.
package registryauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Provider names where a registry credential comes from.
type Provider string

// Providers, as Classify and Resolver.Authenticator report them.
const (
	GHCR             Provider = "ghcr"
	ECR              Provider = "ecr"
	ArtifactRegistry Provider = "artifact-registry"
	Basic            Provider = "basic"
	DockerConfig     Provider = "docker-config"
	Anonymous        Provider = "anonymous"
)

// ecrHost matches Amazon ECR private registry hosts: account, FIPS, region and partition domain
// (<account>.dkr.ecr.<region>.amazonaws.com, .amazonaws.com.cn, dkr.ecr-fips, dual-stack dkr-ecr.<region>.on.aws, ISO partitions).
var ecrHost = regexp.MustCompile(`^(\d{12})\.dkr[.-]ecr(-fips)?\.([a-z0-9-]+)\.(amazonaws\.com(?:\.cn)?|on\.aws|c2s\.ic\.gov|sc2s\.sgov\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$`)

// artifactRegistryHost matches <location>-docker.pkg.dev.
var artifactRegistryHost = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*-docker\.pkg\.dev$`)

// Classify says which provider serves a registry host (a port is ignored). Hosts it does not
// recognise are Basic: the caller then uses a username/password, the Docker config or anonymous access.
func Classify(host string) Provider {
	h := normalizeHost(host)
	switch {
	case h == "ghcr.io":
		return GHCR
	case ecrHost.MatchString(h):
		return ECR
	case artifactRegistryHost.MatchString(h), h == "gcr.io", strings.HasSuffix(h, ".gcr.io"):
		return ArtifactRegistry
	}
	return Basic
}

func normalizeHost(host string) string {
	h := strings.ToLower(strings.TrimSpace(host))
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return strings.TrimSuffix(h, ".")
}

// Options are the inputs and environment of a Resolver.
type Options struct {
	// GitHubToken and GitHubActor log in to ghcr.io: user = actor ("gantry" if empty), password = token.
	GitHubToken, GitHubActor string
	// Username and Password log in to any registry that is not ghcr.io, ECR or Artifact Registry.
	Username, Password string
	// AWSRoleARN is assumed with the job's GitHub OIDC token for ECR; AWSRegion overrides the region
	// taken from the registry host.
	AWSRoleARN, AWSRegion string
	// GCPWorkloadIdentityProvider (projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<p>)
	// and the optional GCPServiceAccount to impersonate get a Google access token with the job's OIDC token.
	GCPWorkloadIdentityProvider, GCPServiceAccount string
	// CreateRepository lets EnsureRepository create a missing ECR repository.
	CreateRepository bool
	// Getenv reads the environment; nil reads nothing. Read through it: AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_ECR,
	// AWS_ENDPOINT_URL_STS, AWS_PROFILE, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE,
	// AWS_MAX_ATTEMPTS, AWS_EC2_METADATA_DISABLED, RUNNER_ENVIRONMENT, GITHUB_RUN_ID,
	// GITHUB_RUN_ATTEMPT, ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN (when OIDCToken is nil),
	// GOOGLE_APPLICATION_CREDENTIALS, GANTRY_GCP_STS_URL, GANTRY_GCP_IAMCREDENTIALS_URL,
	// DOCKER_CONFIG, HOME and REGISTRY_AUTH_FILE. The AWS SDK also reads the process
	// environment itself (AWS_CA_BUNDLE, AWS_RETRY_MODE, ...); values given here take precedence.
	Getenv func(string) string
	// OIDCToken returns a GitHub Actions OIDC token for audience; nil uses go-githubactions with Getenv and HTTPClient.
	OIDCToken func(ctx context.Context, audience string) (string, error)
	// HTTPClient carries calls to token endpoints (AWS, Google, GitHub OIDC); nil uses a default client.
	HTTPClient *http.Client
	// Mask is called with every secret obtained (tokens, passwords, keys) before anything could log it.
	Mask func(secret string)
	// Logf reports which credentials are used; nil is silent. It never receives a secret.
	Logf func(format string, args ...any)
}

// Resolver finds credentials for registries, caching them per registry host. It is safe for concurrent use.
type Resolver struct {
	opts Options

	maskMu sync.Mutex
	masked map[string]bool

	auths flights[authEntry]
	ecrs  flights[*ecrRegistry]
}

type authEntry struct {
	auth     authn.Authenticator
	provider Provider
	expires  time.Time // zero: does not expire (or refreshes itself)
}

// NewResolver returns a Resolver for opts.
func NewResolver(opts Options) *Resolver {
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	return &Resolver{opts: opts, masked: map[string]bool{}}
}

// refreshMargin is how long before expiry a cached token is replaced.
const refreshMargin = 5 * time.Minute

// Authenticator returns credentials for repo's registry and the provider that gave them. Results are
// cached per registry host; concurrent calls for one host share one lookup.
func (r *Resolver) Authenticator(ctx context.Context, repo name.Repository) (authn.Authenticator, Provider, error) {
	host := repo.RegistryStr()
	e, err := r.auths.get(ctx, strings.ToLower(host), func(e authEntry) bool {
		return e.expires.IsZero() || time.Now().Add(refreshMargin).Before(e.expires)
	}, func(ctx context.Context) (authEntry, error) {
		return r.resolve(ctx, host)
	})
	if err != nil {
		return nil, "", err
	}
	return e.auth, e.provider, nil
}

func (r *Resolver) resolve(ctx context.Context, host string) (authEntry, error) {
	switch Classify(host) {
	case GHCR:
		return r.ghcr()
	case ECR:
		return r.ecrAuth(ctx, host)
	case ArtifactRegistry:
		return r.googleAuth(ctx, host)
	}
	if r.opts.Username != "" || r.opts.Password != "" {
		if r.opts.Username == "" || r.opts.Password == "" {
			return authEntry{}, errors.New("registry " + host + ": set both username and password, or neither")
		}
		r.mask(r.opts.Password)
		r.logf("registry auth: %s: username and password for %s", host, r.opts.Username)
		return authEntry{auth: &authn.Basic{Username: r.opts.Username, Password: r.opts.Password}, provider: Basic}, nil
	}
	auth, path, err := r.dockerConfig(ctx, host)
	if err != nil {
		return authEntry{}, err
	}
	if auth != nil {
		r.logf("registry auth: %s: credentials from the Docker config %s", host, path)
		return authEntry{auth: auth, provider: DockerConfig}, nil
	}
	r.logf("registry auth: %s: no credentials configured, using anonymous access", host)
	return authEntry{auth: authn.Anonymous, provider: Anonymous}, nil
}

func (r *Resolver) ghcr() (authEntry, error) {
	if r.opts.GitHubToken == "" {
		return authEntry{}, errors.New("ghcr.io needs a token: set github-token (default ${{ github.token }}) and grant `packages: write`")
	}
	r.mask(r.opts.GitHubToken)
	actor := r.opts.GitHubActor
	if actor == "" {
		actor = "gantry"
	}
	r.logf("registry auth: ghcr.io: GitHub token of %s", actor)
	return authEntry{auth: &authn.Basic{Username: actor, Password: r.opts.GitHubToken}, provider: GHCR}, nil
}

// EnsureRepository makes sure repo exists when its registry is ECR, creating it if
// Options.CreateRepository is set; for other registries it does nothing.
func (r *Resolver) EnsureRepository(ctx context.Context, repo name.Repository) error {
	if Classify(repo.RegistryStr()) != ECR {
		return nil
	}
	return r.ensureECRRepository(ctx, repo)
}

// mask hands secret to Options.Mask once.
func (r *Resolver) mask(secret string) {
	if secret == "" || r.opts.Mask == nil {
		return
	}
	r.maskMu.Lock()
	defer r.maskMu.Unlock()
	if r.masked[secret] {
		return
	}
	r.masked[secret] = true
	r.opts.Mask(secret)
}

func (r *Resolver) logf(format string, args ...any) {
	if r.opts.Logf != nil {
		r.opts.Logf(format, args...)
	}
}

func (r *Resolver) httpClient() *http.Client {
	if r.opts.HTTPClient != nil {
		return r.opts.HTTPClient
	}
	return defaultHTTPClient
}

var defaultHTTPClient = &http.Client{Timeout: time.Minute}

// explainedError is a one-line message saying what to change; Unwrap gives the cause (an SDK error).
type explainedError struct {
	msg   string
	cause error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.cause }

func explained(cause error, format string, args ...any) error {
	return &explainedError{msg: fmt.Sprintf(format, args...), cause: cause}
}

// flights is a per-key cache in which concurrent lookups of one key share one call. Failures are
// not kept: the next lookup tries again.
type flights[V any] struct {
	mu sync.Mutex
	m  map[string]*flight[V]
}

type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func (f *flights[V]) get(ctx context.Context, key string, fresh func(V) bool, fn func(context.Context) (V, error)) (V, error) {
	var zero V
	for {
		f.mu.Lock()
		if f.m == nil {
			f.m = map[string]*flight[V]{}
		}
		c, ok := f.m[key]
		if ok {
			select {
			case <-c.done:
				if c.err == nil && (fresh == nil || fresh(c.v)) {
					f.mu.Unlock()
					return c.v, nil
				}
				ok = false // failed or stale: look up again
			default:
			}
		}
		if ok {
			f.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return zero, ctx.Err()
			}
			if c.err == nil {
				return c.v, nil
			}
			if isContextErr(c.err) && ctx.Err() == nil {
				continue // the caller that looked it up gave up; try ourselves
			}
			return zero, c.err
		}
		c = &flight[V]{done: make(chan struct{})}
		f.m[key] = c
		f.mu.Unlock()
		c.v, c.err = fn(ctx)
		close(c.done)
		return c.v, c.err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
