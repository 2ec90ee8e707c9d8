package registryauth

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
)

const (
	testProvider = "projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry"
	testSA       = "pusher@my-project.iam.gserviceaccount.com"
)

func TestArtifactRegistryWorkloadIdentity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		provider       string
		serviceAccount string
	}{
		{name: "impersonating a service account", provider: testProvider, serviceAccount: testSA},
		{name: "direct federated access", provider: testProvider},
		{name: "provider given as a URL", provider: "https://iam.googleapis.com/" + testProvider, serviceAccount: testSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := githubfake.Start(t, githubfake.Options{})
			g := googlefake.Start(t, googlefake.Options{Provider: testProvider, ServiceAccounts: []string{testSA}})
			h := newHarness(gh.Env(), g.Env())
			opts := h.options()
			opts.GCPWorkloadIdentityProvider, opts.GCPServiceAccount = tt.provider, tt.serviceAccount
			opts.OIDCToken = h.oidc()
			r := NewResolver(opts)

			a, p, err := r.Authenticator(context.Background(), repo(t, "europe-west1-docker.pkg.dev/my-project/images/app"))
			if err != nil {
				t.Fatal(err)
			}
			user, pass := basicOf(t, a)
			if p != ArtifactRegistry || user != "oauth2accesstoken" {
				t.Errorf("got %q user %q, want artifact-registry oauth2accesstoken", p, user)
			}
			issued := gh.Issued()
			if len(issued) != 1 || issued[0].Audience != "https://iam.googleapis.com/"+testProvider {
				t.Fatalf("OIDC tokens = %+v, want one for the provider", issued)
			}
			calls := g.Calls()
			if calls[0].Endpoint != googlefake.EndpointToken || calls[0].Audience != "//iam.googleapis.com/"+testProvider || calls[0].SubjectToken != issued[0].Token {
				t.Errorf("token exchange = %+v, want the OIDC token for the provider", calls[0])
			}
			if tt.serviceAccount != "" {
				if sa := g.AccessTokens()[pass]; sa != testSA {
					t.Errorf("password is not an access token of %s (got one of %q)", testSA, sa)
				}
				if len(calls) != 2 || calls[1].ServiceAccount != testSA || calls[1].Scope != "https://www.googleapis.com/auth/cloud-platform" {
					t.Errorf("calls = %+v, want generateAccessToken for %s with the cloud-platform scope", calls, testSA)
				}
			} else {
				if fed := g.FederatedTokens(); len(fed) != 1 || fed[0] != pass || len(calls) != 1 {
					t.Errorf("password %q, federated tokens %q, calls %+v: want the federated token, no impersonation", pass, fed, calls)
				}
				if calls[0].Scope != "https://www.googleapis.com/auth/cloud-platform" {
					t.Errorf("token exchange scope = %q", calls[0].Scope)
				}
			}
			h.checkSecrets(t, issued[0].Token, pass)

			// The authenticator is cached and keeps its token while it is valid.
			a2, _, err := r.Authenticator(context.Background(), repo(t, "europe-west1-docker.pkg.dev/my-project/images/other"))
			if err != nil {
				t.Fatal(err)
			}
			if _, pass2 := basicOf(t, a2); pass2 != pass || len(gh.Issued()) != 1 {
				t.Errorf("second lookup fetched new tokens")
			}
		})
	}
}

func TestArtifactRegistryCredentialsFile(t *testing.T) {
	t.Parallel()
	g := googlefake.Start(t, googlefake.Options{Provider: testProvider, ServiceAccounts: []string{testSA}})
	dir := t.TempDir()
	subject := githubfake.NewJWT(map[string]any{
		"iss": githubfake.DefaultIssuer,
		"aud": "https://iam.googleapis.com/" + testProvider,
		"sub": "repo:gantry-dev/app:ref:refs/heads/main",
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tokenFile := filepath.Join(dir, "oidc-token")
	if err := os.WriteFile(tokenFile, []byte(subject), 0o600); err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(dir, "credentials.json")
	cred, _ := json.Marshal(map[string]any{
		"type":                              "external_account",
		"audience":                          "//iam.googleapis.com/" + testProvider,
		"subject_token_type":                "urn:ietf:params:oauth:token-type:jwt",
		"token_url":                         g.TokenURL(),
		"service_account_impersonation_url": g.ImpersonationURL(testSA),
		"credential_source":                 map[string]any{"file": tokenFile},
	})
	if err := os.WriteFile(credFile, cred, 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": credFile})
	r := NewResolver(h.options())
	a, p, err := r.Authenticator(context.Background(), repo(t, "gcr.io/my-project/app"))
	if err != nil {
		t.Fatal(err)
	}
	user, pass := basicOf(t, a)
	if p != ArtifactRegistry || user != "oauth2accesstoken" || g.AccessTokens()[pass] != testSA {
		t.Errorf("got %q %q/%q, want an access token of %s", p, user, pass, testSA)
	}
	h.checkSecrets(t, pass)
}

func TestArtifactRegistryErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		opts      Options
		env       func(gh *githubfake.Server, g *googlefake.Server) map[string]string
		fault     *googlefake.Fault
		wantParts []string
	}{
		{
			name: "service account may not be impersonated",
			opts: Options{GCPWorkloadIdentityProvider: testProvider, GCPServiceAccount: "other@my-project.iam.gserviceaccount.com"},
			wantParts: []string{
				"us-docker.pkg.dev: the workload identity may not impersonate other@my-project.iam.gserviceaccount.com",
				"PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied",
				"roles/iam.workloadIdentityUser",
			},
		},
		{
			name:      "permission denied injected",
			opts:      Options{GCPWorkloadIdentityProvider: testProvider, GCPServiceAccount: testSA},
			fault:     ptr(googlefake.PermissionDenied(0)),
			wantParts: []string{"may not impersonate " + testSA, "PERMISSION_DENIED"},
		},
		{
			name:      "STS refuses the OIDC token",
			opts:      Options{GCPWorkloadIdentityProvider: testProvider, GCPServiceAccount: testSA},
			fault:     ptr(googlefake.InvalidGrant(0)),
			wantParts: []string{"Google STS refused the GitHub OIDC token (invalid_grant:", "check gcp-workload-identity-provider " + testProvider},
		},
		{
			name:      "unknown provider",
			opts:      Options{GCPWorkloadIdentityProvider: "projects/1/locations/global/workloadIdentityPools/x/providers/y"},
			wantParts: []string{"Google STS refused the GitHub OIDC token (invalid_target:"},
		},
		{
			name:      "malformed provider",
			opts:      Options{GCPWorkloadIdentityProvider: "my-pool/github"},
			wantParts: []string{`gcp-workload-identity-provider "my-pool/github" must look like projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`},
		},
		{
			name:      "no OIDC permission",
			opts:      Options{GCPWorkloadIdentityProvider: testProvider, GCPServiceAccount: testSA},
			env:       func(*githubfake.Server, *googlefake.Server) map[string]string { return nil },
			wantParts: []string{"gcp-workload-identity-provider needs the job's OIDC token", "`permissions: id-token: write`"},
		},
		{
			name: "credentials file missing",
			env: func(*githubfake.Server, *googlefake.Server) map[string]string {
				return map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/creds.json"}
			},
			wantParts: []string{"reading GOOGLE_APPLICATION_CREDENTIALS"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := githubfake.Start(t, githubfake.Options{})
			g := googlefake.Start(t, googlefake.Options{Provider: testProvider, ServiceAccounts: []string{testSA}})
			if tt.fault != nil {
				g.Inject(*tt.fault)
			}
			var env map[string]string
			if tt.env != nil {
				env = tt.env(gh, g)
			} else {
				env = gh.Env()
			}
			h := newHarness(g.Env(), env)
			opts := h.options()
			opts.GCPWorkloadIdentityProvider, opts.GCPServiceAccount = tt.opts.GCPWorkloadIdentityProvider, tt.opts.GCPServiceAccount
			r := NewResolver(opts)
			_, _, err := r.Authenticator(context.Background(), repo(t, "us-docker.pkg.dev/my-project/images/app"))
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, part := range tt.wantParts {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q\nwant it to contain %q", err, part)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			h.noSecretLogged(t)
		})
	}
}
