package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/gantry-dev/gantry/internal/fakes/awsfake"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
)

const (
	testKeyID  = "AKIAFAKEFAKEFAKE1234"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYFAKEFAKEKEY"
	testRole   = "arn:aws:iam::123456789012:role/gantry-push"
)

// isolatedAWSEnv keeps the SDK's default chain away from this machine's files and instance metadata.
func isolatedAWSEnv(t *testing.T) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	}
}

func staticKeys(secret string) map[string]string {
	return map[string]string{"AWS_ACCESS_KEY_ID": testKeyID, "AWS_SECRET_ACCESS_KEY": secret}
}

func TestECRStaticKeys(t *testing.T) {
	t.Parallel()
	fake := awsfake.Start(t, awsfake.Options{Credentials: map[string]string{testKeyID: testSecret}})
	h := newHarness(isolatedAWSEnv(t), fake.Env(), staticKeys(testSecret))
	r := NewResolver(h.options())

	a, p, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("eu-west-1")+"/team/app"))
	if err != nil {
		t.Fatal(err)
	}
	if p != ECR {
		t.Errorf("provider = %q, want ecr", p)
	}
	user, pass := basicOf(t, a)
	if user != "AWS" || pass != fake.ECRPassword() {
		t.Errorf("credentials = %q/%q, want AWS/%q", user, pass, fake.ECRPassword())
	}
	calls := fake.Calls()
	if len(calls) != 1 || calls[0].Action != "GetAuthorizationToken" || calls[0].Region != "eu-west-1" || calls[0].AccessKeyID != testKeyID || calls[0].ErrorCode != "" {
		t.Errorf("calls = %+v, want one signed GetAuthorizationToken in eu-west-1", calls)
	}
	h.checkSecrets(t, testSecret, fake.ECRPassword(), base64.StdEncoding.EncodeToString([]byte("AWS:"+fake.ECRPassword())))
}

func TestECRWithRoleAndGitHubOIDC(t *testing.T) {
	t.Parallel()
	gh := githubfake.Start(t, githubfake.Options{RunID: "777"})
	var trusted []string
	var mu sync.Mutex
	fake := awsfake.Start(t, awsfake.Options{TrustRole: func(role string, claims map[string]any) bool {
		mu.Lock()
		defer mu.Unlock()
		trusted = append(trusted, role+" "+githubfake.ClaimString(claims, "sub"))
		return true
	}})
	h := newHarness(isolatedAWSEnv(t), fake.Env(), gh.Env())
	opts := h.options()
	opts.AWSRoleARN = testRole
	opts.OIDCToken = h.oidc()
	r := NewResolver(opts)

	a, p, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("us-east-1")+"/app"))
	if err != nil {
		t.Fatal(err)
	}
	user, pass := basicOf(t, a)
	if p != ECR || user != "AWS" || pass != fake.ECRPassword() {
		t.Errorf("got %q %q/%q, want ecr AWS/%q", p, user, pass, fake.ECRPassword())
	}
	issuedTokens := gh.Issued()
	if len(issuedTokens) != 1 || issuedTokens[0].Audience != "sts.amazonaws.com" {
		t.Fatalf("OIDC tokens issued = %+v, want one for sts.amazonaws.com", issuedTokens)
	}
	if len(trusted) != 1 || trusted[0] != testRole+" repo:gantry-dev/app:ref:refs/heads/main" {
		t.Errorf("trust policy saw %q", trusted)
	}
	creds := fake.IssuedCredentials()
	if len(creds) != 1 {
		t.Fatalf("STS issued %d credentials, want 1", len(creds))
	}
	calls := fake.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %+v, want AssumeRoleWithWebIdentity then GetAuthorizationToken", calls)
	}
	in, _ := calls[0].Input.(*sts.AssumeRoleWithWebIdentityInput)
	if calls[0].Action != "AssumeRoleWithWebIdentity" || in == nil || *in.RoleArn != testRole || *in.RoleSessionName != "gantry-777" {
		t.Errorf("STS call = %+v, want role %s, session gantry-777", calls[0], testRole)
	}
	if calls[1].Action != "GetAuthorizationToken" || calls[1].AccessKeyID != creds[0].AccessKeyID {
		t.Errorf("ECR call = %+v, want it signed with the role's key %s", calls[1], creds[0].AccessKeyID)
	}
	h.checkSecrets(t, issuedTokens[0].Token, creds[0].SecretAccessKey, creds[0].SessionToken, fake.ECRPassword())
}

func TestECRRetriesThrottling(t *testing.T) {
	t.Parallel()
	fake := awsfake.Start(t, awsfake.Options{Credentials: map[string]string{testKeyID: testSecret}})
	fake.Inject(awsfake.Throttle("GetAuthorizationToken", 1))
	h := newHarness(isolatedAWSEnv(t), fake.Env(), staticKeys(testSecret))
	r := NewResolver(h.options())
	a, _, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("us-east-1")+"/app"))
	if err != nil {
		t.Fatalf("throttling was not retried: %v", err)
	}
	if _, pass := basicOf(t, a); pass != fake.ECRPassword() {
		t.Errorf("password = %q, want the fake's", pass)
	}
	calls := fake.Calls()
	if len(calls) != 2 || calls[0].ErrorCode != awsfake.CodeThrottlingECR || calls[1].ErrorCode != "" {
		t.Errorf("calls = %+v, want a throttled call then a successful retry", calls)
	}
}

func TestECRErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       func(fake *awsfake.Server, gh *githubfake.Server) map[string]string
		role      string
		region    string
		fault     *awsfake.Fault
		distrust  bool
		wantParts []string
		wantCode  string // SDK error code reachable with errors.As
	}{
		{
			name:      "no credentials",
			env:       func(*awsfake.Server, *githubfake.Server) map[string]string { return nil },
			wantParts: []string{"ecr: 123456789012.dkr.ecr.us-east-1.amazonaws.com: no AWS credentials", "aws-role-arn", "id-token: write", "AWS_ACCESS_KEY_ID"},
		},
		{
			name:      "secret key without access key pair",
			env:       func(*awsfake.Server, *githubfake.Server) map[string]string { return staticKeys("") },
			wantParts: []string{"AWS_SECRET_ACCESS_KEY is empty"},
		},
		{
			name:      "wrong secret key",
			env:       func(*awsfake.Server, *githubfake.Server) map[string]string { return staticKeys("not-the-secret") },
			wantParts: []string{"secret key from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY does not match its access key ID"},
			wantCode:  awsfake.CodeInvalidSignature,
		},
		{
			name: "unknown access key",
			env: func(*awsfake.Server, *githubfake.Server) map[string]string {
				return map[string]string{"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": "x"}
			},
			wantParts: []string{"AWS does not recognise the credentials from AWS_ACCESS_KEY_ID", "region us-east-1 (from the registry host)"},
			wantCode:  awsfake.CodeUnrecognizedClient,
		},
		{
			name:      "wrong region",
			env:       func(*awsfake.Server, *githubfake.Server) map[string]string { return staticKeys(testSecret) },
			region:    "us-west-2",
			wantParts: []string{"is in region us-east-1 but the token is for region us-west-2 (region from aws-region)"},
		},
		{
			name:      "access denied on GetAuthorizationToken",
			env:       func(*awsfake.Server, *githubfake.Server) map[string]string { return staticKeys(testSecret) },
			fault:     &awsfake.Fault{Action: "GetAuthorizationToken", Code: awsfake.CodeAccessDeniedECR},
			wantParts: []string{"may not call ecr:GetAuthorizationToken", "not authorized to perform: ecr:GetAuthorizationToken"},
			wantCode:  awsfake.CodeAccessDeniedECR,
		},
		{
			name:      "role without OIDC permission",
			env:       func(*awsfake.Server, *githubfake.Server) map[string]string { return nil },
			role:      testRole,
			wantParts: []string{"aws-role-arn needs the job's OIDC token", "ACTIONS_ID_TOKEN_REQUEST_URL is not set", "`permissions: id-token: write`"},
		},
		{
			name:      "invalid web identity token",
			env:       func(_ *awsfake.Server, gh *githubfake.Server) map[string]string { return gh.Env() },
			role:      testRole,
			fault:     ptr(awsfake.InvalidIdentityToken(0)),
			wantParts: []string{"AWS STS rejected the GitHub OIDC token for role " + testRole, "InvalidIdentityToken", "token sub: repo:gantry-dev/app:ref:refs/heads/main", "IAM OIDC identity provider"},
			wantCode:  awsfake.CodeInvalidIdentityToken,
		},
		{
			name:      "role does not trust the repository",
			env:       func(_ *awsfake.Server, gh *githubfake.Server) map[string]string { return gh.Env() },
			role:      testRole,
			distrust:  true,
			wantParts: []string{"this workflow may not assume role " + testRole, "AccessDenied", "trust policy", "token sub: repo:gantry-dev/app"},
			wantCode:  awsfake.CodeAccessDeniedSTS,
		},
		{
			name:      "malformed role ARN",
			env:       func(_ *awsfake.Server, gh *githubfake.Server) map[string]string { return gh.Env() },
			role:      "gantry-push",
			wantParts: []string{`aws-role-arn "gantry-push" is not a valid role ARN`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := githubfake.Start(t, githubfake.Options{})
			fake := awsfake.Start(t, awsfake.Options{
				Credentials: map[string]string{testKeyID: testSecret},
				TrustRole:   func(string, map[string]any) bool { return !tt.distrust },
			})
			if tt.fault != nil {
				fake.Inject(*tt.fault)
			}
			env := tt.env(fake, gh)
			h := newHarness(isolatedAWSEnv(t), fake.Env(), env, map[string]string{"AWS_MAX_ATTEMPTS": "1"})
			opts := h.options()
			opts.AWSRoleARN, opts.AWSRegion = tt.role, tt.region
			r := NewResolver(opts)
			_, _, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("us-east-1")+"/app"))
			if err == nil {
				t.Fatal("no error")
			}
			for _, part := range tt.wantParts {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q\nwant it to contain %q", err, part)
				}
			}
			t.Log(err)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if tt.wantCode != "" {
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.wantCode {
					t.Errorf("errors.As(smithy.APIError) = %v, want code %s", apiErr, tt.wantCode)
				}
			}
			h.noSecretLogged(t)
		})
	}
}

func TestECRInvalidIdentityTokenIsRetriedBySDK(t *testing.T) {
	t.Parallel()
	gh := githubfake.Start(t, githubfake.Options{})
	fake := awsfake.Start(t, awsfake.Options{})
	fake.Inject(awsfake.InvalidIdentityToken(1)) // STS sometimes rejects a fresh token once
	h := newHarness(isolatedAWSEnv(t), fake.Env(), gh.Env())
	opts := h.options()
	opts.AWSRoleARN = testRole // OIDCToken nil: the default go-githubactions client
	r := NewResolver(opts)
	if _, _, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("us-east-1")+"/app")); err != nil {
		t.Fatal(err)
	}
	if n := fake.CallCount("AssumeRoleWithWebIdentity"); n != 2 {
		t.Errorf("AssumeRoleWithWebIdentity calls = %d, want 2", n)
	}
	h.checkSecrets(t, fake.ECRPassword())
}

func TestECRConcurrentLookupsShareOneToken(t *testing.T) {
	t.Parallel()
	fake := awsfake.Start(t, awsfake.Options{Credentials: map[string]string{testKeyID: testSecret}})
	h := newHarness(isolatedAWSEnv(t), fake.Env(), staticKeys(testSecret))
	r := NewResolver(h.options())
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("us-east-1")+"/app"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.CallCount("GetAuthorizationToken"); n != 1 {
		t.Errorf("GetAuthorizationToken calls = %d, want 1", n)
	}
}

func TestEnsureRepository(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		existing    bool
		create      bool
		fault       *awsfake.Fault
		wantErr     []string
		wantCreated bool
		wantCalls   []string
	}{
		{name: "exists", existing: true, wantCalls: []string{"DescribeRepositories"}},
		{name: "exists, create allowed", existing: true, create: true, wantCalls: []string{"DescribeRepositories"}},
		{
			name:      "missing",
			wantErr:   []string{"repository team/app does not exist in 123456789012.dkr.ecr.eu-central-1.amazonaws.com", "aws ecr create-repository --repository-name team/app --region eu-central-1", "create-repository: true"},
			wantCalls: []string{"DescribeRepositories"},
		},
		{name: "missing, created", create: true, wantCreated: true, wantCalls: []string{"DescribeRepositories", "CreateRepository"}},
		{
			name: "created concurrently", create: true,
			fault:     &awsfake.Fault{Action: "CreateRepository", Code: awsfake.CodeRepositoryAlreadyExists, Times: 1},
			wantCalls: []string{"DescribeRepositories", "CreateRepository"},
		},
		{
			name: "create denied", create: true,
			fault:     ptr(awsfake.AccessDenied("CreateRepository", 0)),
			wantErr:   []string{"may not call ecr:CreateRepository"},
			wantCalls: []string{"DescribeRepositories", "CreateRepository"},
		},
		{
			name:      "describe denied",
			fault:     ptr(awsfake.AccessDenied("DescribeRepositories", 0)),
			wantErr:   []string{"may not call ecr:DescribeRepositories"},
			wantCalls: []string{"DescribeRepositories"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := awsfake.Start(t, awsfake.Options{Credentials: map[string]string{testKeyID: testSecret}})
			if tt.existing {
				fake.AddRepository("eu-central-1", "team/app")
			}
			if tt.fault != nil {
				fake.Inject(*tt.fault)
			}
			h := newHarness(isolatedAWSEnv(t), fake.Env(), staticKeys(testSecret), map[string]string{"AWS_MAX_ATTEMPTS": "1"})
			opts := h.options()
			opts.CreateRepository = tt.create
			r := NewResolver(opts)
			err := r.EnsureRepository(context.Background(), repo(t, fake.RegistryHost("eu-central-1")+"/team/app"))
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, part := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), part) {
					t.Errorf("error %v\nwant it to contain %q", err, part)
				}
			}
			var actions []string
			for _, c := range fake.Calls() {
				actions = append(actions, c.Action)
				if in, ok := c.Input.(*ecr.DescribeRepositoriesInput); ok && (in.RegistryId == nil || *in.RegistryId != fake.Account()) {
					t.Errorf("DescribeRepositories registryId = %v, want the host's account", in.RegistryId)
				}
			}
			if strings.Join(actions, ",") != strings.Join(tt.wantCalls, ",") {
				t.Errorf("calls = %v, want %v", actions, tt.wantCalls)
			}
			created := len(fake.Repositories("eu-central-1")) == 1 && !tt.existing
			if created != tt.wantCreated {
				t.Errorf("repositories = %v, want created %v", fake.Repositories("eu-central-1"), tt.wantCreated)
			}
		})
	}
}

func TestEnsureRepositoryIgnoresOtherRegistries(t *testing.T) {
	t.Parallel()
	r := NewResolver(Options{})
	for _, s := range []string{"ghcr.io/o/app", "us-docker.pkg.dev/p/r/app", "registry.example.com/app"} {
		if err := r.EnsureRepository(context.Background(), repo(t, s)); err != nil {
			t.Errorf("EnsureRepository(%s) = %v, want nil", s, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// The caller's HTTP client carries AWS calls; the SDK must not refuse it when the process
// environment has AWS_CA_BUNDLE (the SDK reads that variable itself).
func TestECRWithCallerHTTPClient(t *testing.T) {
	t.Parallel()
	gh := githubfake.Start(t, githubfake.Options{})
	fake := awsfake.Start(t, awsfake.Options{})
	h := newHarness(isolatedAWSEnv(t), fake.Env(), gh.Env())
	opts := h.options()
	opts.AWSRoleARN = testRole
	var mu sync.Mutex
	var seen []string
	opts.HTTPClient = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, req.URL.Host)
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(req)
	})}
	r := NewResolver(opts)
	if _, _, err := r.Authenticator(context.Background(), repo(t, fake.RegistryHost("us-east-1")+"/app")); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 { // OIDC, STS, ECR
		t.Errorf("caller's client carried %d requests (%v), want 3", len(seen), seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
