// Package image produces the image gantry pushes: built daemonlessly from a
// base and files, built from a Dockerfile by the local Docker engine, or
// loaded from a tarball or OCI layout another step wrote.
package image

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is a single-platform image or a multi-platform index, ready to push.
type Artifact struct {
	Image v1.Image
	Index v1.ImageIndex
	// Cleanup removes temporary files backing the artifact; nil when none.
	Cleanup func()
}

// Taggable returns the artifact as something remote.Tag can write.
func (a Artifact) Taggable() remote.Taggable {
	if a.Index != nil {
		return a.Index
	}
	return a.Image
}

// Digest returns the digest of the manifest or index.
func (a Artifact) Digest() (v1.Hash, error) {
	if a.Index != nil {
		return a.Index.Digest()
	}
	return a.Image.Digest()
}

// MediaType returns the manifest's media type.
func (a Artifact) MediaType() (types.MediaType, error) {
	if a.Index != nil {
		return a.Index.MediaType()
	}
	return a.Image.MediaType()
}

// Blob is one content-addressed blob of an artifact.
type Blob struct {
	Digest v1.Hash
	Size   int64
}

// Blobs lists the distinct layer and config blobs of the artifact (of every
// platform for an index), for byte accounting.
func (a Artifact) Blobs() ([]Blob, error) {
	seen := map[v1.Hash]bool{}
	var out []Blob
	add := func(img v1.Image) error {
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, Blob{Digest: d.Digest, Size: d.Size})
			}
		}
		return nil
	}
	if a.Index == nil {
		return out, add(a.Image)
	}
	imgs, err := partial.FindImages(a.Index, func(v1.Descriptor) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("list images of index: %w", err)
	}
	for _, img := range imgs {
		if err := add(img); err != nil {
			return nil, err
		}
	}
	return out, nil
}
