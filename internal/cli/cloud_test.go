package cli

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/fakes/awsfake"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/testenv"
)

const (
	wifProvider = "projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry"
	wifSA       = "pusher@my-project.iam.gserviceaccount.com"
	ghToken     = "ghs_fakeGitHubToken0123456789"
)

// cloud is GHCR, ECR and Artifact Registry as far as this machine can have
// them: real registry servers over TLS under the real host names (through a
// resolving transport), checking the credentials the fakes of GitHub OIDC,
// AWS STS/ECR and Google STS/IAM hand out.
type cloud struct {
	gh        *githubfake.Server
	aws       *awsfake.Server
	google    *googlefake.Server
	ecrHost   string
	transport http.RoundTripper
	vars      map[string]string
}

func startCloud(t *testing.T) *cloud {
	t.Helper()
	c := &cloud{
		gh:     githubfake.Start(t, githubfake.Options{}),
		aws:    awsfake.Start(t, awsfake.Options{}),
		google: googlefake.Start(t, googlefake.Options{Provider: wifProvider, ServiceAccounts: []string{wifSA}}),
	}
	c.ecrHost = c.aws.RegistryHost("eu-west-3")
	cert := testenv.NewCert(t, c.ecrHost, "ghcr.io", "europe-docker.pkg.dev")
	ecr := testenv.StartRegistry(t, testenv.RegistryOptions{Users: map[string]string{"AWS": c.aws.ECRPassword()}, TLS: cert})
	ghcr := testenv.StartRegistry(t, testenv.RegistryOptions{Users: map[string]string{"octocat": ghToken}, TLS: cert})
	gar := testenv.StartRegistry(t, testenv.RegistryOptions{TLS: cert})

	// Artifact Registry accepts user oauth2accesstoken with any access token
	// the Google fake issued: a checking proxy in front of the registry.
	target, _ := url.Parse("https://" + gar.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = testenv.Resolver(nil, cert)
	garProxy := testenv.StartTLS(t, cert, c.google.RegistryAuth(rp))

	c.transport = testenv.Resolver(map[string]string{
		c.ecrHost + ":443":          ecr.Host,
		"ghcr.io:443":               ghcr.Host,
		"europe-docker.pkg.dev:443": garProxy,
	}, cert)
	c.vars = map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat", "GITHUB_RUN_ID": "42"}
	for _, m := range []map[string]string{c.gh.Env(), c.aws.Env(), c.google.Env()} {
		for k, v := range m {
			c.vars[k] = v
		}
	}
	return c
}

func TestBuildPushToGHCRECRAndArtifactRegistryWithOIDC(t *testing.T) {
	c := startCloud(t)
	workspace(t, map[string]string{"app": "binary"})
	args := []string{"build-push",
		"--registries", "ghcr.io/acme/api",
		"--registries", c.ecrHost + "/acme/api",
		"--registries", "europe-docker.pkg.dev/my-project/images/api",
		"--sha", testSHA, "--files", "app:/app:0755",
		"--github-token", ghToken,
		"--aws-role-arn", "arn:aws:iam::" + c.aws.Account() + ":role/gantry-push",
		"--create-repository",
		"--gcp-workload-identity-provider", wifProvider, "--gcp-service-account", wifSA,
	}
	r := runCLI(t, c.vars, c.transport, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.log)
	}
	if n := len(strings.Split(r.outputs["images"], "\n")); n != 3 {
		t.Fatalf("images = %q", r.outputs["images"])
	}
	for _, want := range []string{"ghcr.io/acme/api: ghcr", c.ecrHost + "/acme/api: ecr", "europe-docker.pkg.dev/my-project/images/api: artifact-registry"} {
		if !strings.Contains(r.log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if repos := c.aws.Repositories("eu-west-3"); len(repos) != 1 || repos[0] != "acme/api" {
		t.Errorf("ECR repositories = %v, want acme/api created", repos)
	}
	// Every secret that passed through was masked before use and never printed.
	secrets := []string{ghToken, c.aws.ECRPassword()}
	for tok := range c.google.AccessTokens() {
		secrets = append(secrets, tok)
	}
	for _, cred := range c.aws.IssuedCredentials() {
		secrets = append(secrets, cred.SecretAccessKey, cred.SessionToken)
	}
	for _, iss := range c.gh.Issued() {
		secrets = append(secrets, iss.Token)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if n := strings.Count(r.log, s); n != 1 || !strings.Contains(r.log, "::add-mask::"+s) {
			t.Errorf("secret %.12s… appears %d times (want only in its ::add-mask::)", s, n)
		}
		if strings.Contains(r.summary, s) || strings.Contains(r.outputs["images"], s) {
			t.Errorf("secret %.12s… reached the summary or outputs", s)
		}
	}

	// A re-run moves nothing anywhere.
	again := runCLI(t, c.vars, c.transport, args...)
	if again.code != 0 || strings.Count(again.summary, "| up to date |") != 3 {
		t.Fatalf("re-run: exit %d\n%s\n%s", again.code, again.summary, again.log)
	}
}

func TestCloudCredentialFailuresPushNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		setup  func(c *cloud)
		wantIn string
	}{
		{
			name:   "ghcr without token",
			args:   []string{"--registries", "ghcr.io/acme/api", "--github-token", ""},
			wantIn: "github-token",
		},
		{
			name:   "ecr role denied",
			args:   []string{"--registries", "ECR/acme/api", "--aws-role-arn", "arn:aws:iam::123456789012:role/nope", "--create-repository"},
			setup:  func(c *cloud) { c.aws.Inject(awsfake.AccessDenied("AssumeRoleWithWebIdentity", 5)) },
			wantIn: "role/nope",
		},
		{
			name:   "ecr repository missing",
			args:   []string{"--registries", "ECR/acme/missing", "--aws-role-arn", "arn:aws:iam::123456789012:role/push"},
			wantIn: "create-repository",
		},
		{
			name:   "google permission denied",
			args:   []string{"--registries", "europe-docker.pkg.dev/p/r/api", "--gcp-workload-identity-provider", wifProvider, "--gcp-service-account", "other@p.iam.gserviceaccount.com"},
			wantIn: "other@p.iam.gserviceaccount.com",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCloud(t)
			workspace(t, map[string]string{"app": "binary"})
			if tc.setup != nil {
				tc.setup(c)
			}
			args := []string{"build-push", "--sha", testSHA, "--files", "app:/app"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "ECR/", c.ecrHost+"/"))
			}
			r := runCLI(t, c.vars, c.transport, args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
			}
			var errLine string
			for _, l := range strings.Split(r.log, "\n") {
				if strings.HasPrefix(l, "::error") {
					errLine = l
				}
			}
			if !strings.Contains(errLine, tc.wantIn) {
				t.Errorf("error %q does not mention %q\n%s", errLine, tc.wantIn, r.log)
			}
			if strings.Contains(r.log, "::group::push") {
				t.Errorf("push started despite failed credentials")
			}
		})
	}
}
