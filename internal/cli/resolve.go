package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
)

func resolveSpec() *action.Spec {
	s := &action.Spec{
		Name:        "resolve",
		Description: "Find the digests of a commit's images (their sha-XXXXXXX tags) for a deploy or a rollback, read-only: nothing is pushed or tagged.",
		Summary:     "Find the digests of a commit's images (their sha-XXXXXXX tags) for a deploy or a rollback, read-only.",
		Inputs: []action.Input{
			{Name: "images", Description: "service=repository one a line: its image tagged sha-XXXXXXX of sha. service=repository:tag and service=repository@sha256:... are looked up (and checked to exist) as they are.", Kind: action.List, Required: true},
			{Name: "sha", Description: "Commit whose sha-XXXXXXX tags to look up; default GITHUB_SHA."},
		},
		Outputs: []action.Output{
			{Name: "images", Description: "service=repository@sha256:... one a line, in the order given: the deploy actions' images input."},
			{Name: "image", Description: "The first image as repository@sha256:... (deploy-cloudrun's image input)."},
			{Name: "digest", Description: "The first image's digest."},
		},
	}
	for _, in := range authInputs() {
		if in.Name != "create-repository" { // read-only: nothing is created
			s.Inputs = append(s.Inputs, in)
		}
	}
	return s
}

func resolveCommand() *Command { return &Command{Spec: resolveSpec(), Run: runResolve} }

// wantedImage is one line of resolve's images input.
type wantedImage struct {
	service string
	ref     name.Reference
}

func runResolve(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	raw := in.String("sha")
	if raw == "" {
		raw = commit.FromEnv(a.Getenv)
	}
	var shaTag string
	if raw != "" {
		if sha, err := commit.Validate(raw); err != nil {
			in.Fail("sha", "%v", err)
		} else {
			shaTag = commit.Tag(sha)
		}
	}
	var wanted []wantedImage
	for _, line := range in.List("images") {
		svc, ref, ok := strings.Cut(line, "=")
		svc, ref = strings.TrimSpace(svc), strings.TrimSpace(ref)
		if !ok || svc == "" || ref == "" {
			in.Fail("images", "%q is not service=repository (or service=repository@sha256:...)", line)
			continue
		}
		r, err := imageRef(ref, shaTag)
		if err != nil {
			in.Fail("images", "%q: %v", line, err)
			continue
		}
		wanted = append(wanted, wantedImage{svc, r})
	}
	if len(wanted) == 0 && in.Err() == nil {
		in.Fail("images", "no images given; list service=repository lines")
	}
	resolver := newResolver(a, in)
	if err := in.Err(); err != nil {
		return err
	}

	var lines []string
	var rows [][]string
	for _, w := range wanted {
		auth, _, err := resolver.Authenticator(ctx, w.ref.Context())
		if err != nil {
			return fmt.Errorf("credentials for %s: %w", w.ref.Context(), err)
		}
		desc, err := remote.Head(w.ref, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(a.Transport()), remote.WithUserAgent(userAgent()))
		if err != nil {
			return lookupError(w, err)
		}
		if d, ok := w.ref.(name.Digest); ok && d.DigestStr() != desc.Digest.String() {
			return fmt.Errorf("%s: %s answered digest %s", w.service, w.ref, desc.Digest)
		}
		pinned := w.ref.Context().Digest(desc.Digest.String())
		a.Infof("%s: %s is %s", w.service, w.ref, desc.Digest)
		lines = append(lines, w.service+"="+pinned.String())
		rows = append(rows, []string{action.Escape(w.service), action.Code(w.ref.String()), action.Code(desc.Digest.String())})
	}
	s := a.Summary()
	fmt.Fprintf(s, "### ✅ resolve: %d image(s)\n\n", len(rows))
	s.WriteString(action.Table([]string{"Service", "Image", "Digest"}, rows))
	a.SetOutput("images", strings.Join(lines, "\n"))
	first := strings.SplitN(lines[0], "=", 2)[1]
	a.SetOutput("image", first)
	a.SetOutput("digest", first[strings.LastIndex(first, "@")+1:])
	return nil
}

// imageRef parses ref, giving a bare repository the commit's sha- tag.
func imageRef(ref, shaTag string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WithDefaultTag(""))
	if err != nil {
		return nil, fmt.Errorf("%s is not an image reference such as ghcr.io/acme/api: %v", ref, err)
	}
	if t, ok := r.(name.Tag); ok && t.TagStr() == "" {
		if shaTag == "" {
			return nil, fmt.Errorf("%s has no tag or digest, and there is no commit to find its sha-XXXXXXX tag: set sha", ref)
		}
		return r.Context().Tag(shaTag), nil
	}
	return r, nil
}

// lookupError explains a failed lookup: a missing tag usually means the
// commit was never built, a 401/403 missing credentials.
func lookupError(w wantedImage, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			if t, ok := w.ref.(name.Tag); ok && strings.HasPrefix(t.TagStr(), "sha-") {
				return fmt.Errorf("%s: %s not found: was commit %s built and pushed to %s? (build-push tags every image sha-XXXXXXX)", w.service, w.ref, strings.TrimPrefix(t.TagStr(), "sha-"), w.ref.Context())
			}
			return fmt.Errorf("%s: %s not found in %s", w.service, w.ref, w.ref.Context())
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s: %s: the registry refused to read it (%d): give the job pull access (username/password, github-token with packages: read, aws-role-arn or gcp-workload-identity-provider)", w.service, w.ref, te.StatusCode)
		}
	}
	return fmt.Errorf("%s: look up %s: %w", w.service, w.ref, err)
}
