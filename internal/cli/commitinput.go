package cli

import (
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
)

// readCommit reads the sha input, by default the run's commit (GITHUB_SHA,
// or a pull request's head), validated and in lower case; purpose says what
// the commit is for when there is none.
func readCommit(a *action.Action, in *action.Inputs, purpose string) string {
	raw := in.String("sha")
	if raw == "" {
		raw = commit.FromEnv(a.Getenv)
	}
	if raw == "" {
		in.Fail("sha", "is empty and GITHUB_SHA is not set; pass %s", purpose)
		return ""
	}
	sha, err := commit.Validate(raw)
	if err != nil {
		in.Fail("sha", "%v", err)
		return ""
	}
	return sha
}

// readDigestImages reads the images input, service=repository@sha256:...
// one a line, into service → image, with the registries they name.
func readDigestImages(in *action.Inputs) (map[string]string, []string) {
	images := map[string]string{}
	var registries []string
	for _, line := range in.List("images") {
		svc, ref, ok := strings.Cut(line, "=")
		d, err := name.NewDigest(strings.TrimSpace(ref))
		if !ok || strings.TrimSpace(svc) == "" || err != nil {
			in.Fail("images", "%q is not service=repository@sha256:...; deploy by digest (build-push's images output, or resolve's for a commit's sha- tags)", line)
			continue
		}
		images[strings.TrimSpace(svc)] = d.String()
		if r := d.Context().RegistryStr(); !slices.Contains(registries, r) {
			registries = append(registries, r)
		}
	}
	return images, registries
}
