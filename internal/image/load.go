package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// LoadLayout reads an OCI image layout directory (what ko, crane, regctl,
// skopeo or buildx write). Its index.json must name exactly one image or
// index, which is pushed byte for byte.
func LoadLayout(dir string) (Artifact, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s is not an OCI layout (no index.json/oci-layout): %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return Artifact{}, err
	}
	im, err := top.IndexManifest()
	if err != nil {
		return Artifact{}, err
	}
	if len(im.Manifests) != 1 {
		return Artifact{}, fmt.Errorf("%s: index.json lists %d manifests; gantry pushes exactly one image or index per run", dir, len(im.Manifests))
	}
	d := im.Manifests[0]
	switch {
	case d.MediaType.IsImage():
		img, err := top.Image(d.Digest)
		return Artifact{Image: img}, err
	case d.MediaType.IsIndex():
		idx, err := top.ImageIndex(d.Digest)
		return Artifact{Index: idx}, err
	}
	return Artifact{}, fmt.Errorf("%s: manifest %s has media type %q, neither an image nor an index", dir, d.Digest, d.MediaType)
}

// LoadTar reads a `docker save` tarball or an OCI archive (a tarred OCI
// layout, as `docker buildx --output type=oci` writes). An OCI archive is
// unpacked into a temporary directory that Artifact.Cleanup removes.
func LoadTar(path string) (Artifact, error) {
	oci, err := isOCIArchive(path)
	if err != nil {
		return Artifact{}, err
	}
	if !oci {
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return Artifact{}, fmt.Errorf("%s: %w (a docker save tarball must hold exactly one image)", path, err)
		}
		if _, err := img.Manifest(); err != nil {
			return Artifact{}, fmt.Errorf("%s: %w", path, err)
		}
		return Artifact{Image: img}, nil
	}
	dir, err := os.MkdirTemp("", "gantry-oci-")
	if err != nil {
		return Artifact{}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := untar(path, dir); err != nil {
		cleanup()
		return Artifact{}, err
	}
	art, err := LoadLayout(dir)
	if err != nil {
		cleanup()
		return Artifact{}, err
	}
	art.Cleanup = cleanup
	return art, nil
}

func isOCIArchive(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s is not a tar archive: %w", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "oci-layout":
			return true, nil
		case "manifest.json":
			return false, nil
		}
	}
}

// untar unpacks regular files and directories of an OCI archive, refusing
// paths that leave dir.
func untar(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("%s: entry %q escapes the archive", path, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// PlatformOf returns the platform an image was built for, from its config.
func PlatformOf(img v1.Image) (v1.Platform, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Platform{}, err
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}, nil
}
