package image

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Scratch is the base name for an image with no base layers.
const Scratch = "scratch"

// Config is the runtime configuration written into the image.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=VALUE
	Workdir    string
	User       string
	Ports      []string // 8080 or 8080/tcp
	Labels     map[string]string
}

// Daemonless builds images without a Docker engine: the base image's layers,
// then one layer per files mapping, reproducibly.
type Daemonless struct {
	// Root is the directory globs are relative to.
	Root string
	// Base is an image reference or "scratch".
	Base        string
	BaseOptions []remote.Option
	Platforms   []v1.Platform
	// Files go into every platform's image; PlatformFiles, keyed by
	// platform string (linux/arm64), only into that platform's.
	Files         []FileMap
	PlatformFiles map[string][]FileMap
	Config        Config
	// Created is the fixed time of the image and of every file in it.
	Created     time.Time
	Annotations map[string]string
}

// Build builds one image per platform; several platforms make an OCI index.
func (d Daemonless) Build(ctx context.Context) (Artifact, error) {
	if len(d.Platforms) == 0 {
		d.Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	}
	imgs := make([]v1.Image, len(d.Platforms))
	for i, p := range d.Platforms {
		img, err := d.buildOne(ctx, p)
		if err != nil {
			return Artifact{}, fmt.Errorf("%s: %w", p, err)
		}
		imgs[i] = img
	}
	if len(imgs) == 1 {
		return Artifact{Image: imgs[0]}, nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		p := d.Platforms[i]
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if len(d.Annotations) > 0 {
		idx = mutate.Annotations(idx, d.Annotations).(v1.ImageIndex)
	}
	return Artifact{Index: idx}, nil
}

func (d Daemonless) base(ctx context.Context, p v1.Platform) (v1.Image, bool, error) {
	if d.Base == "" || d.Base == Scratch {
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		return img, true, nil
	}
	ref, err := name.ParseReference(d.Base)
	if err != nil {
		return nil, false, fmt.Errorf("base %q: %w", d.Base, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithPlatform(p)}, d.BaseOptions...)
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return nil, false, fmt.Errorf("pull base %s: %w", d.Base, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, false, err
	}
	return img, mt == types.OCIManifestSchema1, nil
}

func (d Daemonless) buildOne(ctx context.Context, p v1.Platform) (v1.Image, error) {
	base, oci, err := d.base(ctx, p)
	if err != nil {
		return nil, err
	}
	layerType := types.DockerLayer
	if oci {
		layerType = types.OCILayer
	}
	maps := append(append([]FileMap{}, d.Files...), d.PlatformFiles[p.String()]...)
	layers := make([]v1.Layer, len(maps))
	history := make([]v1.History, len(maps))
	for i, fm := range maps {
		es, err := resolve(d.Root, []FileMap{fm})
		if err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
		l, err := tarball.LayerFromOpener(tarOpener(es, d.Created), tarball.WithMediaType(layerType), tarball.WithCompressedCaching)
		if err != nil {
			return nil, err
		}
		layers[i] = l
		history[i] = v1.History{Created: v1.Time{Time: d.Created}, CreatedBy: "gantry files " + fm.Glob + " → " + fm.Dest}
	}
	// Digest() compresses the layer; do it for all layers at once.
	var g errgroup.Group
	for _, l := range layers {
		g.Go(func() error { _, err := l.Digest(); return err })
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("compress layers: %w", err)
	}
	img := base
	for i, l := range layers {
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: history[i], MediaType: layerType}); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	if err := applyConfig(&cf.Config, d.Config); err != nil {
		return nil, err
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: d.Created}); err != nil {
		return nil, err
	}
	if oci && len(d.Annotations) > 0 {
		img = mutate.Annotations(img, d.Annotations).(v1.Image)
	}
	return img, nil
}

// applyConfig overlays the non-empty fields of c on the base's configuration.
func applyConfig(dst *v1.Config, c Config) error {
	if c.Entrypoint != nil {
		dst.Entrypoint = c.Entrypoint
		if c.Cmd == nil {
			dst.Cmd = nil // a new entrypoint does not inherit the base's arguments
		}
	}
	if c.Cmd != nil {
		dst.Cmd = c.Cmd
	}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("env %q is not KEY=VALUE", kv)
		}
		replaced := false
		for i, old := range dst.Env {
			if strings.HasPrefix(old, k+"=") {
				dst.Env[i], replaced = kv, true
			}
		}
		if !replaced {
			dst.Env = append(dst.Env, kv)
		}
	}
	if c.Workdir != "" {
		dst.WorkingDir = c.Workdir
	}
	if c.User != "" {
		dst.User = c.User
	}
	for _, port := range c.Ports {
		if !strings.Contains(port, "/") {
			port += "/tcp"
		}
		if dst.ExposedPorts == nil {
			dst.ExposedPorts = map[string]struct{}{}
		}
		dst.ExposedPorts[port] = struct{}{}
	}
	if len(c.Labels) > 0 && dst.Labels == nil {
		dst.Labels = map[string]string{}
	}
	for k, v := range c.Labels {
		dst.Labels[k] = v
	}
	return nil
}
