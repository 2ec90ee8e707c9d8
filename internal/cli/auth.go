package cli

import (
	"context"
	"fmt"
	"net/http"
	"regexp"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/push"
	"github.com/gantry-dev/gantry/internal/registryauth"
	"github.com/gantry-dev/gantry/internal/version"
)

// authInputs are the registry credential inputs shared by every command that
// talks to registries.
func authInputs() []action.Input {
	return []action.Input{
		{Name: "github-token", Description: "Token for ghcr.io (needs `packages: write`).", ActionDefault: "${{ github.token }}", Secret: true},
		{Name: "username", Description: "Username for registries other than GHCR, ECR and Artifact Registry."},
		{Name: "password", Description: "Password or token for `username`.", Secret: true},
		{Name: "aws-role-arn", Description: "IAM role to assume with GitHub OIDC for ECR (needs `id-token: write`); default: AWS credentials from the environment."},
		{Name: "aws-region", Description: "AWS region for ECR; default: the region in the registry host."},
		{Name: "gcp-workload-identity-provider", Description: "Workload Identity Federation provider (projects/N/locations/global/workloadIdentityPools/P/providers/X) for Artifact Registry via GitHub OIDC; default: GOOGLE_APPLICATION_CREDENTIALS."},
		{Name: "gcp-service-account", Description: "Service account to impersonate with Workload Identity Federation."},
		{Name: "create-repository", Description: "Create a missing ECR repository.", Kind: action.Bool, Default: "false"},
	}
}

// newResolver builds the credential resolver from the auth inputs.
func newResolver(a *action.Action, in *action.Inputs) *registryauth.Resolver {
	gh := a.GitHub()
	// resolve only reads, so it does not declare create-repository.
	_, canCreate := a.Spec().Input("create-repository")
	return registryauth.NewResolver(registryauth.Options{
		GitHubToken:                 in.String("github-token"),
		GitHubActor:                 a.Getenv("GITHUB_ACTOR"),
		Username:                    in.String("username"),
		Password:                    in.String("password"),
		AWSRoleARN:                  in.String("aws-role-arn"),
		AWSRegion:                   in.String("aws-region"),
		GCPWorkloadIdentityProvider: in.String("gcp-workload-identity-provider"),
		GCPServiceAccount:           in.String("gcp-service-account"),
		CreateRepository:            canCreate && in.Bool("create-repository"),
		Getenv:                      a.Getenv,
		OIDCToken:                   gh.GetIDToken,
		HTTPClient:                  &http.Client{Transport: a.Transport()},
		Mask:                        a.Mask,
		Logf:                        a.Infof,
	})
}

// parseRepos parses repository names, refusing tags and digests (they belong
// in the tags input).
func parseRepos(in *action.Inputs, input string, items []string) []name.Repository {
	var out []name.Repository
	seen := map[string]bool{}
	for _, s := range items {
		repo, err := name.NewRepository(s)
		if err != nil {
			if ref, rerr := name.ParseReference(s); rerr == nil {
				in.Fail(input, "%q names a tag or digest (%s); list repositories here and tags in the tags input", s, ref.Identifier())
			} else {
				in.Fail(input, "%q is not a repository reference such as ghcr.io/acme/api: %v", s, err)
			}
			continue
		}
		if !seen[repo.String()] {
			seen[repo.String()] = true
			out = append(out, repo)
		}
	}
	return out
}

// targets resolves credentials for each repository (and, for ECR, makes sure
// the repository exists) before anything is pushed.
func targets(ctx context.Context, r *registryauth.Resolver, repos []name.Repository) ([]push.Target, []registryauth.Provider, error) {
	ts := make([]push.Target, 0, len(repos))
	ps := make([]registryauth.Provider, 0, len(repos))
	for _, repo := range repos {
		auth, p, err := r.Authenticator(ctx, repo)
		if err != nil {
			return nil, nil, fmt.Errorf("credentials for %s: %w", repo, err)
		}
		if err := r.EnsureRepository(ctx, repo); err != nil {
			return nil, nil, err
		}
		ts = append(ts, push.Target{Repo: repo, Auth: auth})
		ps = append(ps, p)
	}
	return ts, ps, nil
}

func userAgent() string { return "gantry/" + version.Version }

// tagRE is the OCI distribution spec's tag grammar.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// parseTags reads and checks a list of tags.
func parseTags(in *action.Inputs, input string) []string {
	var out []string
	for _, t := range in.List(input) {
		if !tagRE.MatchString(t) {
			in.Fail(input, "%q is not a valid tag: up to 128 letters, digits, _ . - and not starting with . or -", t)
			continue
		}
		out = append(out, t)
	}
	return out
}
