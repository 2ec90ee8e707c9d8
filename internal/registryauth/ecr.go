package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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
	getenv := r.opts.Getenv
	reg := &ecrRegistry{host: host, account: m[1], region: m[3], regionFrom: "the registry host"}
	if r.opts.AWSRegion != "" {
		reg.region, reg.regionFrom = r.opts.AWSRegion, "aws-region"
	}

	// The SDK reads the process environment itself; these options put Options.Getenv first.
	opts := []func(*config.LoadOptions) error{config.WithRegion(reg.region)}
	if v := getenv("AWS_ENDPOINT_URL"); v != "" {
		opts = append(opts, config.WithBaseEndpoint(v))
	} else if m[2] != "" && getenv("AWS_ENDPOINT_URL_ECR") == "" {
		opts = append(opts, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
	}
	if getenv("AWS_EC2_METADATA_DISABLED") == "true" || getenv("RUNNER_ENVIRONMENT") == "github-hosted" {
		// GitHub-hosted runners have no instance metadata; asking for it only delays the error.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if v := getenv("AWS_PROFILE"); v != "" {
		opts = append(opts, config.WithSharedConfigProfile(v))
	}
	if v := getenv("AWS_CONFIG_FILE"); v != "" {
		opts = append(opts, config.WithSharedConfigFiles([]string{v}))
	}
	if v := getenv("AWS_SHARED_CREDENTIALS_FILE"); v != "" {
		opts = append(opts, config.WithSharedCredentialsFiles([]string{v}))
	}
	if n, err := strconv.Atoi(getenv("AWS_MAX_ATTEMPTS")); err == nil && n > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(n))
	}

	var oidc *oidcRetriever
	switch keyID := getenv("AWS_ACCESS_KEY_ID"); {
	case r.opts.AWSRoleARN != "":
		reg.source = "aws-role-arn " + r.opts.AWSRoleARN
		// Replaced below; keeps LoadDefaultConfig from resolving a chain it would not use.
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	case keyID != "":
		secret, session := getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
		if secret == "" {
			return nil, fmt.Errorf("ecr: %s: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty; set both, or use aws-role-arn", host)
		}
		r.mask(secret)
		r.mask(session)
		reg.source = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, session)))
	default:
		reg.source = "the AWS default credential chain"
	}

	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("ecr: %s: loading the AWS configuration: %w", host, err)
	}
	if r.opts.HTTPClient != nil {
		// Set after loading: with AWS_CA_BUNDLE in the process environment, LoadDefaultConfig
		// refuses any client but its own. The caller's transport decides which CAs to trust.
		cfg.HTTPClient = r.opts.HTTPClient
	}
	if r.opts.AWSRoleARN != "" {
		stsClient := sts.NewFromConfig(cfg, func(o *sts.Options) {
			if v := getenv("AWS_ENDPOINT_URL_STS"); v != "" {
				o.BaseEndpoint = aws.String(v)
			}
		})
		oidc = &oidcRetriever{r: r}
		role := stscreds.NewWebIdentityRoleProvider(stsClient, r.opts.AWSRoleARN, oidc, func(o *stscreds.WebIdentityRoleOptions) {
			o.RoleSessionName = roleSessionName(getenv)
		})
		cfg.Credentials = aws.NewCredentialsCache(&maskingProvider{r: r, inner: &contextProvider{inner: role, oidc: oidc}})
	} else if cfg.Credentials != nil {
		cfg.Credentials = aws.NewCredentialsCache(&maskingProvider{r: r, inner: cfg.Credentials})
	}
	if cfg.Credentials == nil {
		return nil, noAWSCredentials(host)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, r.explainAWSCredentials(host, oidc, err)
	}
	reg.client = ecr.NewFromConfig(cfg, func(o *ecr.Options) {
		if v := getenv("AWS_ENDPOINT_URL_ECR"); v != "" {
			o.BaseEndpoint = aws.String(v)
		}
	})
	return reg, nil
}

func noAWSCredentials(host string) error {
	return fmt.Errorf("ecr: no AWS credentials for %s: set aws-role-arn (and grant `permissions: id-token: write`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", host)
}

// explainAWSCredentials turns a failure to get credentials into one line saying what to change.
func (r *Resolver) explainAWSCredentials(host string, oidc *oidcRetriever, err error) error {
	if isContextErr(err) {
		return fmt.Errorf("ecr: %s: getting AWS credentials: %w", host, err)
	}
	var oe *oidcError
	if errors.As(err, &oe) {
		return fmt.Errorf("ecr: %s: aws-role-arn needs the job's OIDC token: %w", host, oe)
	}
	role := r.opts.AWSRoleARN
	if role == "" {
		r.logf("registry auth: %s: the AWS default credential chain found nothing: %v", host, err)
		return noAWSCredentials(host)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("ecr: %s: assuming role %s: %w", host, role, err)
	}
	code, msg := apiErr.ErrorCode(), apiErr.ErrorMessage()
	sub := ""
	if s := oidc.subject(); s != "" {
		sub = "; token sub: " + s
	}
	switch code {
	case "InvalidIdentityToken", "IDPRejectedClaim", "ExpiredTokenException", "IDPCommunicationError":
		return explained(err, "ecr: %s: AWS STS rejected the GitHub OIDC token for role %s (%s: %s%s); the account needs an IAM OIDC identity provider for token.actions.githubusercontent.com with audience %s",
			host, role, code, msg, sub, stsAudience)
	case "AccessDenied":
		return explained(err, "ecr: %s: this workflow may not assume role %s (%s: %s%s); allow it in the role's trust policy",
			host, role, code, msg, sub)
	case "ValidationError":
		return explained(err, "ecr: %s: aws-role-arn %q is not a valid role ARN, want arn:aws:iam::<account>:role/<name> (%s)", host, role, msg)
	}
	return explained(err, "ecr: %s: assuming role %s (%s: %s)", host, role, code, msg)
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
