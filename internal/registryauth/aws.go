package registryauth

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// AWSConfig returns an AWS configuration for region whose credentials come from
// Options.AWSRoleARN through GitHub OIDC, else AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, else the SDK's default chain; they are fetched once
// here, so a wrong role or key fails now with a one-line reason. who starts
// every error message (e.g. "deploy-ecs"); source says where the credentials
// came from, for messages.
func (r *Resolver) AWSConfig(ctx context.Context, who, region string) (cfg aws.Config, source string, err error) {
	return r.awsConfig(ctx, who, region, false)
}

func (r *Resolver) awsConfig(ctx context.Context, who, region string, fips bool) (aws.Config, string, error) {
	getenv := r.opts.Getenv
	// The SDK reads the process environment itself; these options put Options.Getenv first.
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if v := getenv("AWS_ENDPOINT_URL"); v != "" {
		opts = append(opts, config.WithBaseEndpoint(v))
	} else if fips {
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

	var source string
	var oidc *oidcRetriever
	switch keyID := getenv("AWS_ACCESS_KEY_ID"); {
	case r.opts.AWSRoleARN != "":
		source = "aws-role-arn " + r.opts.AWSRoleARN
		// Replaced below; keeps LoadDefaultConfig from resolving a chain it would not use.
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	case keyID != "":
		secret, session := getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
		if secret == "" {
			return aws.Config{}, "", fmt.Errorf("%s: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is empty; set both, or use aws-role-arn", who)
		}
		r.mask(secret)
		r.mask(session)
		source = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(keyID, secret, session)))
	default:
		source = "the AWS default credential chain"
	}

	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, "", fmt.Errorf("%s: loading the AWS configuration: %w", who, err)
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
		return aws.Config{}, "", noAWSCredentials(who)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return aws.Config{}, "", r.explainAWSCredentials(who, oidc, err)
	}
	return cfg, source, nil
}

func noAWSCredentials(who string) error {
	return fmt.Errorf("%s: no AWS credentials: set aws-role-arn (and grant `permissions: id-token: write`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", who)
}

// explainAWSCredentials turns a failure to get credentials into one line saying what to change.
func (r *Resolver) explainAWSCredentials(who string, oidc *oidcRetriever, err error) error {
	if isContextErr(err) {
		return fmt.Errorf("%s: getting AWS credentials: %w", who, err)
	}
	var oe *oidcError
	if errors.As(err, &oe) {
		return fmt.Errorf("%s: aws-role-arn needs the job's OIDC token: %w", who, oe)
	}
	role := r.opts.AWSRoleARN
	if role == "" {
		r.logf("aws auth: %s: the AWS default credential chain found nothing: %v", who, err)
		return noAWSCredentials(who)
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%s: assuming role %s: %w", who, role, err)
	}
	code, msg := apiErr.ErrorCode(), apiErr.ErrorMessage()
	sub := ""
	if s := oidc.subject(); s != "" {
		sub = "; token sub: " + s
	}
	switch code {
	case "InvalidIdentityToken", "IDPRejectedClaim", "ExpiredTokenException", "IDPCommunicationError":
		return explained(err, "%s: AWS STS rejected the GitHub OIDC token for role %s (%s: %s%s); the account needs an IAM OIDC identity provider for token.actions.githubusercontent.com with audience %s",
			who, role, code, msg, sub, stsAudience)
	case "AccessDenied":
		return explained(err, "%s: this workflow may not assume role %s (%s: %s%s); allow it in the role's trust policy",
			who, role, code, msg, sub)
	case "ValidationError":
		return explained(err, "%s: aws-role-arn %q is not a valid role ARN, want arn:aws:iam::<account>:role/<name> (%s)", who, role, msg)
	}
	return explained(err, "%s: assuming role %s (%s: %s)", who, role, code, msg)
}
