package registryauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sethvargo/go-githubactions"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		want Provider
	}{
		{"ghcr.io", GHCR},
		{"GHCR.io", GHCR},
		{"ghcr.io:443", GHCR},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", ECR},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", ECR},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", ECR},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", ECR},
		{"123456789012.dkr-ecr.us-east-1.on.aws", ECR},
		{"12345.dkr.ecr.us-east-1.amazonaws.com", Basic},             // account IDs have 12 digits
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com.evil", Basic}, // not an AWS domain
		{"public.ecr.aws", Basic},
		{"us-central1-docker.pkg.dev", ArtifactRegistry},
		{"europe-docker.pkg.dev", ArtifactRegistry},
		{"docker.pkg.dev", Basic},
		{"gcr.io", ArtifactRegistry},
		{"eu.gcr.io", ArtifactRegistry},
		{"us.gcr.io", ArtifactRegistry},
		{"notgcr.io", Basic},
		{"index.docker.io", Basic},
		{"registry.example.com", Basic},
		{"127.0.0.1:5000", Basic},
		{"localhost:5000", Basic},
	}
	for _, tt := range tests {
		if got := Classify(tt.host); got != tt.want {
			t.Errorf("Classify(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

// harness collects what a Resolver hands to Mask and Logf, and serves it an environment.
type harness struct {
	env map[string]string

	mu    sync.Mutex
	masks []string
	logs  []string
}

func newHarness(envs ...map[string]string) *harness {
	h := &harness{env: map[string]string{}}
	for _, e := range envs {
		for k, v := range e {
			h.env[k] = v
		}
	}
	return h
}

func (h *harness) getenv(k string) string { return h.env[k] }

func (h *harness) options() Options {
	return Options{
		Getenv: h.getenv,
		Mask: func(s string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.masks = append(h.masks, s)
		},
		Logf: func(format string, args ...any) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.logs = append(h.logs, fmt.Sprintf(format, args...))
		},
	}
}

// oidc is the caller's OIDC function, as the actions pass it: go-githubactions reading the harness env.
func (h *harness) oidc() func(context.Context, string) (string, error) {
	return githubactions.New(githubactions.WithGetenv(h.getenv), githubactions.WithWriter(io.Discard)).GetIDToken
}

// checkSecrets fails unless every secret was masked and none was logged.
func (h *harness) checkSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range secrets {
		if s == "" {
			t.Errorf("checkSecrets: empty secret")
			continue
		}
		if !slices.Contains(h.masks, s) {
			t.Errorf("secret %.12s… was not masked", s)
		}
		for _, l := range h.logs {
			if strings.Contains(l, s) {
				t.Errorf("secret %.12s… logged: %q", s, l)
			}
		}
	}
}

func (h *harness) noSecretLogged(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.masks {
		for _, l := range h.logs {
			if strings.Contains(l, m) {
				t.Errorf("masked secret %.12s… logged: %q", m, l)
			}
		}
	}
}

func repo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func basicOf(t *testing.T, a authn.Authenticator) (string, string) {
	t.Helper()
	cfg, err := authn.Authorization(context.Background(), a)
	if err != nil {
		t.Fatalf("Authorization: %v", err)
	}
	return cfg.Username, cfg.Password
}

func writeDockerConfig(t *testing.T, dir string, auths map[string]string) {
	t.Helper()
	cfg := map[string]any{"auths": map[string]any{}}
	for host, userPass := range auths {
		cfg["auths"].(map[string]any)[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(userPass))}
	}
	b, _ := json.Marshal(cfg)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticatorWithoutTokenService(t *testing.T) {
	t.Parallel()
	dockerDir := t.TempDir()
	writeDockerConfig(t, dockerDir, map[string]string{
		"registry.example.com":        "robot:docker-config-secret",
		"https://index.docker.io/v1/": "hubuser:hub-secret",
		"europe-docker.pkg.dev":       "_json_key:gcp-key-secret",
	})
	home := t.TempDir()
	writeDockerConfig(t, filepath.Join(home, ".docker"), map[string]string{"home.example.com": "homeuser:home-secret"})

	tests := []struct {
		name         string
		opts         Options
		env          map[string]string
		repo         string
		wantProvider Provider
		wantUser     string
		wantPassword string
		wantErr      string
	}{
		{
			name: "ghcr with token", repo: "ghcr.io/gantry-dev/app",
			opts:         Options{GitHubToken: "ghs_secret123", GitHubActor: "octocat"},
			wantProvider: GHCR, wantUser: "octocat", wantPassword: "ghs_secret123",
		},
		{
			name: "ghcr without actor", repo: "ghcr.io/gantry-dev/app",
			opts:         Options{GitHubToken: "ghs_secret456"},
			wantProvider: GHCR, wantUser: "gantry", wantPassword: "ghs_secret456",
		},
		{
			name: "ghcr without token", repo: "ghcr.io/gantry-dev/app",
			opts:    Options{Username: "u", Password: "p"},
			wantErr: "ghcr.io needs a token: set github-token (default ${{ github.token }}) and grant `packages: write`",
		},
		{
			name: "basic", repo: "registry.example.com/team/app",
			opts:         Options{Username: "deployer", Password: "basic-secret"},
			env:          map[string]string{"DOCKER_CONFIG": dockerDir},
			wantProvider: Basic, wantUser: "deployer", wantPassword: "basic-secret",
		},
		{
			name: "basic needs both", repo: "registry.example.com/team/app",
			opts:    Options{Username: "deployer"},
			wantErr: "set both username and password",
		},
		{
			name: "docker config from DOCKER_CONFIG", repo: "registry.example.com/team/app",
			env:          map[string]string{"DOCKER_CONFIG": dockerDir, "HOME": home},
			wantProvider: DockerConfig, wantUser: "robot", wantPassword: "docker-config-secret",
		},
		{
			name: "docker config for Docker Hub", repo: "library/alpine",
			env:          map[string]string{"DOCKER_CONFIG": dockerDir},
			wantProvider: DockerConfig, wantUser: "hubuser", wantPassword: "hub-secret",
		},
		{
			name: "docker config from HOME", repo: "home.example.com/app",
			env:          map[string]string{"HOME": home},
			wantProvider: DockerConfig, wantUser: "homeuser", wantPassword: "home-secret",
		},
		{
			name: "anonymous: no entry", repo: "other.example.com/app",
			env:          map[string]string{"DOCKER_CONFIG": dockerDir},
			wantProvider: Anonymous,
		},
		{
			name: "anonymous: no config", repo: "127.0.0.1:5000/app",
			env:          map[string]string{"HOME": t.TempDir()},
			wantProvider: Anonymous,
		},
		{
			name: "artifact registry from the docker config", repo: "europe-docker.pkg.dev/p/r/app",
			env:          map[string]string{"DOCKER_CONFIG": dockerDir},
			wantProvider: DockerConfig, wantUser: "_json_key", wantPassword: "gcp-key-secret",
		},
		{
			name: "artifact registry without credentials", repo: "us-docker.pkg.dev/p/r/app",
			env:     map[string]string{"DOCKER_CONFIG": dockerDir},
			wantErr: "us-docker.pkg.dev needs Google credentials: set gcp-workload-identity-provider",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(tt.env)
			opts := h.options()
			opts.GitHubToken, opts.GitHubActor = tt.opts.GitHubToken, tt.opts.GitHubActor
			opts.Username, opts.Password = tt.opts.Username, tt.opts.Password
			r := NewResolver(opts)
			a, p, err := r.Authenticator(context.Background(), repo(t, tt.repo))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != tt.wantProvider {
				t.Errorf("provider = %q, want %q", p, tt.wantProvider)
			}
			if tt.wantProvider == Anonymous {
				if a != authn.Anonymous {
					t.Errorf("authenticator = %v, want anonymous", a)
				}
				return
			}
			user, pass := basicOf(t, a)
			if user != tt.wantUser || pass != tt.wantPassword {
				t.Errorf("credentials = %q/%q, want %q/%q", user, pass, tt.wantUser, tt.wantPassword)
			}
			h.checkSecrets(t, tt.wantPassword)
		})
	}
}

func TestAuthenticatorCachesPerHost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeDockerConfig(t, dir, map[string]string{"registry.example.com": "robot:first"})
	h := newHarness(map[string]string{"DOCKER_CONFIG": dir})
	r := NewResolver(h.options())
	ctx := context.Background()
	if _, _, err := r.Authenticator(ctx, repo(t, "registry.example.com/a")); err != nil {
		t.Fatal(err)
	}
	writeDockerConfig(t, dir, map[string]string{"registry.example.com": "robot:second"})
	a, _, err := r.Authenticator(ctx, repo(t, "registry.example.com/b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, pass := basicOf(t, a); pass != "first" {
		t.Errorf("second lookup for the same host read the config again (password %q)", pass)
	}
}
