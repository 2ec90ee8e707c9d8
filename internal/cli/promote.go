package cli

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/image"
)

func promoteSpec() *action.Spec {
	s := &action.Spec{
		Name:        "promote",
		Description: "Copy an image by digest to other repositories and/or add tags, without pulling or rebuilding (staging to production, re-tag for rollback).",
		Summary:     "Copy an image by digest to other repositories or add tags, without pulling or rebuilding (staging to production).",
		Inputs: []action.Input{
			{Name: "source", Description: "Image to promote: repository@sha256:... (best) or repository:tag.", Required: true},
			{Name: "registries", Description: "Repositories to copy to, one a line; default: the source repository (tags only).", Kind: action.List},
			{Name: "tags", Description: "Tags to point at the digest in every target, e.g. production.", Kind: action.List},
			{Name: "sha", Description: "Also tag sha-<first 7 of sha>, refusing to move it when it points elsewhere."},
			{Name: "overwrite", Description: "Move a sha- tag that points at another digest.", Kind: action.Bool, Default: "false"},
		},
		Outputs: []action.Output{
			{Name: "digest", Description: "Digest of the promoted image (unchanged from the source)."},
			{Name: "images", Description: "Every target as repository@digest, one a line."},
			{Name: "tags", Description: "Every tag set, as repository:tag, one a line."},
		},
	}
	s.Inputs = append(s.Inputs, authInputs()...)
	return s
}

func promoteCommand() *Command { return &Command{Spec: promoteSpec(), Run: runPromote} }

func runPromote(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	src := in.Required("source")
	var srcRef name.Reference
	if src != "" {
		var err error
		if srcRef, err = name.ParseReference(src); err != nil {
			in.Fail("source", "%q is not an image reference such as ghcr.io/acme/api@sha256:...: %v", src, err)
		}
	}
	repos := parseRepos(in, "registries", in.List("registries"))
	tags := parseTags(in, "tags")
	var shaTag string
	if raw := in.String("sha"); raw != "" {
		if sha, err := commit.Validate(raw); err != nil {
			in.Fail("sha", "%v", err)
		} else {
			shaTag = commit.Tag(sha)
		}
	}
	overwrite := in.Bool("overwrite")
	resolver := newResolver(a, in)
	if srcRef != nil && len(repos) == 0 {
		if len(tags) == 0 && shaTag == "" {
			in.Fail("registries", "nothing to do: set registries to copy to, or tags to add")
		}
		repos = []name.Repository{srcRef.Context()}
	}
	if err := in.Err(); err != nil {
		return err
	}

	auth, _, err := resolver.Authenticator(ctx, srcRef.Context())
	if err != nil {
		return fmt.Errorf("credentials for source %s: %w", srcRef.Context(), err)
	}
	desc, err := remote.Get(srcRef, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(a.Transport()), remote.WithUserAgent(userAgent()))
	if err != nil {
		return fmt.Errorf("read source %s: %w", src, err)
	}
	if d, ok := srcRef.(name.Digest); ok && d.DigestStr() != desc.Digest.String() {
		return fmt.Errorf("source %s answered digest %s", src, desc.Digest)
	}
	a.Infof("source %s is %s (%s)", src, desc.Digest, desc.MediaType)
	var art image.Artifact
	switch {
	case desc.MediaType.IsIndex():
		art.Index, err = desc.ImageIndex()
	case desc.MediaType.IsImage():
		art.Image, err = desc.Image()
	default:
		return fmt.Errorf("source %s has media type %q, neither an image nor an index", src, desc.MediaType)
	}
	if err != nil {
		return fmt.Errorf("read source %s: %w", src, err)
	}
	return pushAndReport(ctx, a, resolver, art, repos, shaTag, tags, overwrite, "promote "+srcRef.Context().String())
}
