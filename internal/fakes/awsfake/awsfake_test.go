package awsfake

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
)

func awsConfig(keyID, secret string) aws.Config {
	return aws.Config{
		Region:           "eu-west-1",
		Credentials:      credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		RetryMaxAttempts: 1,
	}
}

func ecrClient(s *Server, keyID, secret string) *ecr.Client {
	return ecr.NewFromConfig(awsConfig(keyID, secret), func(o *ecr.Options) { o.BaseEndpoint = aws.String(s.URL) })
}

func TestECRRepositoriesRoundTrip(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Credentials: map[string]string{"AKIDEXAMPLE": "secret"}})
	c := ecrClient(s, "AKIDEXAMPLE", "secret")
	ctx := context.Background()

	_, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/app"}})
	var nf *ecrtypes.RepositoryNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("DescribeRepositories of a missing repository: %v, want RepositoryNotFoundException", err)
	}
	out, err := c.CreateRepository(ctx, &ecr.CreateRepositoryInput{
		RepositoryName:             aws.String("team/app"),
		ImageTagMutability:         ecrtypes.ImageTagMutabilityImmutable,
		ImageScanningConfiguration: &ecrtypes.ImageScanningConfiguration{ScanOnPush: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := out.Repository
	if aws.ToString(r.RepositoryUri) != "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app" ||
		aws.ToString(r.RepositoryArn) != "arn:aws:ecr:eu-west-1:123456789012:repository/team/app" ||
		r.ImageTagMutability != ecrtypes.ImageTagMutabilityImmutable || !r.ImageScanningConfiguration.ScanOnPush ||
		r.CreatedAt == nil || time.Since(*r.CreatedAt) > time.Minute {
		t.Errorf("created repository decodes as %+v", r)
	}
	_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("team/app")})
	var exists *ecrtypes.RepositoryAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("second CreateRepository: %v, want RepositoryAlreadyExistsException", err)
	}
	_, err = c.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("Bad_Name")})
	var invalid *ecrtypes.InvalidParameterException
	if !errors.As(err, &invalid) {
		t.Errorf("CreateRepository with an invalid name: %v, want InvalidParameterException", err)
	}
	desc, err := c.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{})
	if err != nil || len(desc.Repositories) != 1 {
		t.Fatalf("DescribeRepositories = %+v, %v", desc, err)
	}
	if got := s.Repositories("eu-west-1"); len(got) != 1 || got[0] != "team/app" {
		t.Errorf("Repositories = %v", got)
	}

	tok, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	d := tok.AuthorizationData[0]
	if aws.ToString(d.ProxyEndpoint) != "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com" || d.ExpiresAt == nil || time.Until(*d.ExpiresAt) < 11*time.Hour {
		t.Errorf("authorization data = %+v", d)
	}
}

func TestECRRejectsBadRequests(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Credentials: map[string]string{"AKIDEXAMPLE": "secret"}})
	ctx := context.Background()
	for _, tt := range []struct {
		name, keyID, secret, wantCode string
	}{
		{"wrong secret", "AKIDEXAMPLE", "wrong", CodeInvalidSignature},
		{"unknown key", "AKIDOTHER", "secret", CodeUnrecognizedClient},
	} {
		_, err := ecrClient(s, tt.keyID, tt.secret).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.wantCode {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.wantCode)
		}
	}
	// Unsigned requests are refused as AWS refuses them.
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", ecrTargetPrefix+"GetAuthorizationToken")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || s.Calls()[len(s.Calls())-1].ErrorCode != CodeMissingAuthentication {
		t.Errorf("unsigned call: status %d, calls %+v", resp.StatusCode, s.Calls())
	}
}

func TestFaultsAreConsumed(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	s.Inject(Throttle("GetAuthorizationToken", 2))
	c := ecrClient(s, "AKIDANY", "any")
	ctx := context.Background()
	for i, want := range []string{CodeThrottlingECR, CodeThrottlingECR, ""} {
		_, err := c.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		var apiErr smithy.APIError
		got := ""
		if errors.As(err, &apiErr) {
			got = apiErr.ErrorCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("call %d: code %q, want %q", i, got, want)
		}
	}
}

func TestAssumeRoleWithWebIdentity(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{TrustRole: func(role string, claims map[string]any) bool {
		return strings.HasPrefix(githubfake.ClaimString(claims, "sub"), "repo:gantry-dev/")
	}})
	client := sts.NewFromConfig(aws.Config{Region: "us-east-1", RetryMaxAttempts: 1}, func(o *sts.Options) { o.BaseEndpoint = aws.String(s.URL) })
	token := func(aud, sub string) string {
		return githubfake.NewJWT(map[string]any{"iss": githubfake.DefaultIssuer, "aud": aud, "sub": sub, "exp": time.Now().Add(time.Minute).Unix()})
	}
	assume := func(role, tok string) (*sts.AssumeRoleWithWebIdentityOutput, error) {
		return client.AssumeRoleWithWebIdentity(context.Background(), &sts.AssumeRoleWithWebIdentityInput{
			RoleArn: aws.String(role), RoleSessionName: aws.String("gantry-1"), WebIdentityToken: aws.String(tok),
		})
	}
	out, err := assume("arn:aws:iam::123456789012:role/push", token("sts.amazonaws.com", "repo:gantry-dev/app:ref:refs/heads/main"))
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.AssumedRoleUser.Arn) != "arn:aws:sts::123456789012:assumed-role/push/gantry-1" ||
		aws.ToString(out.SubjectFromWebIdentityToken) != "repo:gantry-dev/app:ref:refs/heads/main" ||
		out.Credentials == nil || out.Credentials.Expiration == nil || time.Until(*out.Credentials.Expiration) < 50*time.Minute {
		t.Errorf("output = %+v", out)
	}

	for _, tt := range []struct {
		name, role, token string
		fault             *Fault
		want              any
	}{
		{"wrong audience", "arn:aws:iam::123456789012:role/push", token("other", "repo:gantry-dev/app"), nil, &ststypes.InvalidIdentityTokenException{}},
		{"untrusted repository", "arn:aws:iam::123456789012:role/push", token("sts.amazonaws.com", "repo:evil/app"), nil, "AccessDenied"},
		{"other account", "arn:aws:iam::999999999999:role/push", token("sts.amazonaws.com", "repo:gantry-dev/app"), nil, "AccessDenied"},
		{"not a JWT", "arn:aws:iam::123456789012:role/push", "opaque", nil, &ststypes.InvalidIdentityTokenException{}},
		{"injected", "arn:aws:iam::123456789012:role/push", token("sts.amazonaws.com", "repo:gantry-dev/app"), ptr(InvalidIdentityToken(1)), &ststypes.InvalidIdentityTokenException{}},
	} {
		if tt.fault != nil {
			s.Inject(*tt.fault)
		}
		_, err := assume(tt.role, tt.token)
		switch want := tt.want.(type) {
		case *ststypes.InvalidIdentityTokenException:
			if !errors.As(err, &want) {
				t.Errorf("%s: %v, want InvalidIdentityToken", tt.name, err)
			}
		case string:
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != want {
				t.Errorf("%s: %v, want %s", tt.name, err, want)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
