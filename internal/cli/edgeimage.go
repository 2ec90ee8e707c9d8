package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/image"
)

func edgeImageSpec() *action.Spec {
	s := &action.Spec{
		Name:        "edge-image",
		Description: "Build gantry's edge proxy image (gantry-edge, from this checkout's edge/) daemonlessly and push it to a registry; use the printed image as edge-image.",
		Inputs: []action.Input{
			{Name: "image", Description: "Where to push, repository[:tag], e.g. registry.internal:5000/gantry-edge:v1.", Required: true},
			{Name: "tags", Description: "More tags for the same image, one a line.", Kind: action.List},
			{Name: "platforms", Description: "Platforms to build, e.g. linux/amd64,linux/arm64; several make an OCI index.", Kind: action.List, Default: "linux/amd64"},
			{Name: "edge-dir", Description: "gantry-edge's Go module (edge/ in gantry's checkout), compiled with go build for each platform.", Default: "edge"},
			{Name: "binary", Description: "Prebuilt static gantry-edge instead of go build: PATH with one platform, or PLATFORM=PATH one a line.", Kind: action.List},
			{Name: "version", Description: "Value of the org.opencontainers.image.version label; default: the git tag on tag builds."},
		},
		Outputs: []action.Output{
			{Name: "image", Description: "The pushed image as repository@digest: the value for deploy-compose's and deploy-swarm's edge-image."},
			{Name: "digest", Description: "Digest of the pushed manifest or index."},
			{Name: "images", Description: "Every pushed image as repository@digest, one a line."},
			{Name: "tags", Description: "Every pushed tag as repository:tag, one a line."},
		},
	}
	s.Inputs = append(s.Inputs, authInputs()...)
	return s
}

// edgeImageCommand is a CLI command only: it builds from gantry's own
// checkout, which an action step in another repository does not have.
func edgeImageCommand() *Command { return &Command{Spec: edgeImageSpec(), Run: runEdgeImage} }

// readEdgeImage maps edge-image's inputs onto an edge.ImageBuild and the
// repository and tags to push to.
func readEdgeImage(a *action.Action, in *action.Inputs) (edge.ImageBuild, name.Repository, []string) {
	b := edge.ImageBuild{EdgeDir: in.String("edge-dir"), Binaries: map[string]string{}, Logf: a.Infof}
	var repo name.Repository
	var tags []string
	if raw := in.Required("image"); raw != "" {
		ref, err := name.ParseReference(raw)
		switch {
		case err != nil:
			in.Fail("image", "%q is not an image reference such as registry.internal:5000/gantry-edge:v1: %v", raw, err)
		case strings.Contains(raw, "@"):
			in.Fail("image", "%q names a digest; give repository[:tag], the digest is what edge-image prints", raw)
		default:
			repo = ref.Context()
			if t, ok := ref.(name.Tag); ok && strings.Contains(raw[strings.LastIndex(raw, "/")+1:], ":") {
				tags = append(tags, t.TagStr())
			}
		}
	}
	tags = append(tags, parseTags(in, "tags")...)
	for _, p := range in.List("platforms") {
		pl, err := v1.ParsePlatform(p)
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			in.Fail("platforms", "%q is not a platform such as linux/amd64", p)
			continue
		}
		b.Platforms = append(b.Platforms, *pl)
	}
	for _, line := range in.Lines("binary") {
		plat, path, ok := strings.Cut(line, "=")
		if !ok {
			if len(b.Platforms) != 1 {
				in.Fail("binary", "%q names no platform; with several platforms give PLATFORM=PATH, e.g. linux/arm64=dist/arm64/gantry-edge", line)
				continue
			}
			plat, path = b.Platforms[0].String(), line
		}
		pl, err := v1.ParsePlatform(strings.TrimSpace(plat))
		if err != nil {
			in.Fail("binary", "%q: %q is not a platform such as linux/amd64", line, plat)
			continue
		}
		b.Binaries[pl.String()] = strings.TrimSpace(path)
	}

	b.Labels, b.Created = ociLabels(a, in, commit.FromEnv(a.Getenv))
	b.Labels["org.opencontainers.image.title"] = "gantry-edge"
	if in.Err() == nil {
		if err := b.Check(); err != nil {
			in.FailWith("edge-dir", err) // Check names the input at fault
		}
	}
	return b, repo, tags
}

func runEdgeImage(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	b, repo, tags := readEdgeImage(a, in)
	resolver := newResolver(a, in)
	if err := in.Err(); err != nil {
		return err
	}
	var art image.Artifact
	err := a.Group("build gantry-edge", func() error {
		var err error
		art, err = b.Build(ctx)
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		d, err := art.Digest()
		if err != nil {
			return fmt.Errorf("build: %w", err)
		}
		a.Infof("built %s", d)
		return nil
	})
	if art.Cleanup != nil {
		defer art.Cleanup()
	}
	if err != nil {
		return err
	}
	if err := pushAndReport(ctx, a, resolver, art, []name.Repository{repo}, "", tags, false, "edge-image"); err != nil {
		return err
	}
	d, _ := art.Digest()
	ref := repo.Digest(d.String()).String()
	a.SetOutput("image", ref)
	a.Infof("pushed %s; set it as edge-image (deploy-compose, deploy-swarm, rollback)", ref)
	return nil
}
