package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// stsAudience is the audience AWS expects in GitHub OIDC tokens.
const stsAudience = "sts.amazonaws.com"

// ecrRegistry is an ECR client for one registry host, with its credentials checked.
type ecrRegistry struct {
	host, account, region string
	regionFrom            string // "the registry host" or "aws-region"
	source                string // where the credentials come from, for messages
	client                *ecr.Client
}

func (r *Resolver) ecrRegistry(ctx context.Context, host string) (*ecrRegistry, error) {
	return r.ecrs.get(ctx, normalizeHost(host), nil, func(ctx context.Context) (*ecrRegistry, error) {
		return r.newECRRegistry(ctx, normalizeHost(host))
	})
}

func (r *Resolver) newECRRegistry(ctx context.Context, host string) (*ecrRegistry, error) {
	m := ecrHost.FindStringSubmatch(host)
	if m == nil {
		return nil, fmt.Errorf("ecr: %s is not an ECR registry host", host)
	}
	reg := &ecrRegistry{host: host, account: m[1], region: m[3], regionFrom: "the registry host"}
	if r.opts.AWSRegion != "" {
		reg.region, reg.regionFrom = r.opts.AWSRegion, "aws-region"
	}
	cfg, source, err := r.awsConfig(ctx, "ecr: "+host, reg.region, m[2] != "" && r.opts.Getenv("AWS_ENDPOINT_URL_ECR") == "")
	if err != nil {
		return nil, err
	}
	reg.source = source
	reg.client = ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if v := r.opts.Getenv("AWS_ENDPOINT_URL_ECR"); v != "" {
			o.BaseEndpoint = aws.String(v)
		}
	})
	return reg, nil
}

// explain turns an ECR API failure into one line saying which input to check.
func (reg *ecrRegistry) explain(action string, err error) error {
	if isContextErr(err) {
		return fmt.Errorf("ecr: %s %s: %w", action, reg.host, err)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return explained(err, "ecr: cannot reach ECR in region %q (from %s): %v; check the region", reg.region, reg.regionFrom, dnsErr)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("ecr: %s %s: %w", action, reg.host, err)
	}
	code, msg := apiErr.ErrorCode(), apiErr.ErrorMessage()
	switch code {
	case "UnrecognizedClientException", "InvalidClientTokenId":
		return explained(err, "ecr: %s: AWS does not recognise the credentials from %s (%s: %s); check them, and that region %s (from %s) is enabled for the account",
			reg.host, reg.source, code, msg, reg.region, reg.regionFrom)
	case "InvalidSignatureException", "SignatureDoesNotMatch":
		return explained(err, "ecr: %s: the secret key from %s does not match its access key ID (%s)", reg.host, reg.source, code)
	case "ExpiredTokenException":
		return explained(err, "ecr: %s: the AWS session token from %s has expired (%s); refresh AWS_SESSION_TOKEN or use aws-role-arn", reg.host, reg.source, msg)
	case "AccessDeniedException", "AccessDenied":
		return explained(err, "ecr: %s: the credentials from %s may not call ecr:%s (%s); grant it in their IAM policy", reg.host, reg.source, action, msg)
	}
	return explained(err, "ecr: %s %s (%s: %s)", action, reg.host, code, msg)
}

func (r *Resolver) ecrAuth(ctx context.Context, host string) (authEntry, error) {
	reg, err := r.ecrRegistry(ctx, host)
	if err != nil {
		return authEntry{}, err
	}
	out, err := reg.client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return authEntry{}, reg.explain("GetAuthorizationToken", err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return authEntry{}, fmt.Errorf("ecr: %s: GetAuthorizationToken returned no token", reg.host)
	}
	data := out.AuthorizationData[0]
	r.mask(*data.AuthorizationToken)
	decoded, err := base64.StdEncoding.DecodeString(*data.AuthorizationToken)
	if err != nil {
		return authEntry{}, fmt.Errorf("ecr: %s: the authorization token is not base64: %w", reg.host, err)
	}
	user, password, ok := strings.Cut(string(decoded), ":")
	if !ok || password == "" {
		return authEntry{}, fmt.Errorf("ecr: %s: the authorization token is not user:password", reg.host)
	}
	r.mask(password)
	// A token works for every registry the principal may use, but only in its own region.
	if u, err := url.Parse(aws.ToString(data.ProxyEndpoint)); err == nil {
		hostRegion := ecrHost.FindStringSubmatch(reg.host)[3]
		if pm := ecrHost.FindStringSubmatch(normalizeHost(u.Host)); pm != nil && pm[3] != hostRegion {
			return authEntry{}, fmt.Errorf("ecr: %s is in region %s but the token is for region %s (region from %s); remove aws-region or set it to %s",
				reg.host, hostRegion, pm[3], reg.regionFrom, hostRegion)
		}
	}
	expires := aws.ToTime(data.ExpiresAt)
	r.logf("registry auth: %s: ECR token from %s, valid until %s", reg.host, reg.source, expires.UTC().Format("15:04 MST"))
	return authEntry{auth: &authn.Basic{Username: user, Password: password}, provider: ECR, expires: expires}, nil
}

func (r *Resolver) ensureECRRepository(ctx context.Context, repo name.Repository) error {
	reg, err := r.ecrRegistry(ctx, repo.RegistryStr())
	if err != nil {
		return err
	}
	repoName := repo.RepositoryStr()
	_, err = reg.client.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{
		RegistryId:      aws.String(reg.account),
		RepositoryNames: []string{repoName},
	})
	if err == nil {
		return nil
	}
	var notFound *ecrtypes.RepositoryNotFoundException
	if !errors.As(err, &notFound) {
		return reg.explain("DescribeRepositories", err)
	}
	if !r.opts.CreateRepository {
		return fmt.Errorf("ecr: repository %s does not exist in %s; create it (aws ecr create-repository --repository-name %s --region %s) or set create-repository: true",
			repoName, reg.host, repoName, reg.region)
	}
	_, err = reg.client.CreateRepository(ctx, &ecr.CreateRepositoryInput{
		RegistryId:     aws.String(reg.account),
		RepositoryName: aws.String(repoName),
	})
	var exists *ecrtypes.RepositoryAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return reg.explain("CreateRepository", err)
	}
	if err == nil {
		r.logf("registry auth: %s: created ECR repository %s", reg.host, repoName)
	}
	return nil
}

// oidcRetriever gives stscreds the job's GitHub OIDC token. stscreds asks without a context, so
// contextProvider passes the one of the Retrieve in progress.
type oidcRetriever struct {
	r *Resolver

	mu  sync.Mutex
	ctx context.Context
	sub string
}

func (o *oidcRetriever) GetIdentityToken() ([]byte, error) {
	o.mu.Lock()
	ctx := o.ctx
	o.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	token, err := o.r.oidcToken(ctx, stsAudience)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.sub = tokenSubject(token)
	o.mu.Unlock()
	return []byte(token), nil
}

func (o *oidcRetriever) subject() string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sub
}

// contextProvider hands the context of each Retrieve to the OIDC retriever.
type contextProvider struct {
	inner aws.CredentialsProvider
	oidc  *oidcRetriever
}

func (p *contextProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.oidc.mu.Lock()
	p.oidc.ctx = ctx
	p.oidc.mu.Unlock()
	return p.inner.Retrieve(ctx)
}

// maskingProvider masks the secret parts of the credentials it passes on.
type maskingProvider struct {
	r     *Resolver
	inner aws.CredentialsProvider
}

func (p *maskingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err == nil {
		p.r.mask(c.SecretAccessKey)
		p.r.mask(c.SessionToken)
	}
	return c, err
}

var sessionNameInvalid = regexp.MustCompile(`[^\w+=,.@-]`)

// roleSessionName names the role session after the workflow run, so CloudTrail shows which run pushed.
func roleSessionName(getenv func(string) string) string {
	n := "gantry"
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		n += "-" + id
		if a := getenv("GITHUB_RUN_ATTEMPT"); a != "" {
			n += "-" + a
		}
	}
	n = sessionNameInvalid.ReplaceAllString(n, "_")
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}
