package push

import (
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// mountableImage presents an image's blobs as mountable from another
// repository of the same registry, so remote.Write mounts them instead of
// uploading. go-containerregistry only does this for images it read from a
// registry; ours may have been built locally and pushed once already.
type mountableImage struct {
	v1.Image
	from name.Reference
}

func (m mountableImage) mount(l v1.Layer) v1.Layer {
	return &remote.MountableLayer{Layer: l, Reference: m.from}
}

func (m mountableImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = m.mount(l)
	}
	return out, nil
}

func (m mountableImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return m.mount(l), nil
}

func (m mountableImage) ConfigLayer() (v1.Layer, error) {
	l, err := partial.ConfigLayer(m.Image)
	if err != nil {
		return nil, err
	}
	return m.mount(l), nil
}

// Descriptor keeps the platform of an index child.
func (m mountableImage) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(m.Image) }

// mountableIndex makes every image of an index mountable.
type mountableIndex struct {
	idx
	from name.Reference
}

// idx lets mountableIndex embed an index yet define its own ImageIndex method.
type idx = v1.ImageIndex

func (m mountableIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.idx.Image(h)
	if err != nil {
		return nil, err
	}
	return mountableImage{Image: img, from: m.from}, nil
}

func (m mountableIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	ix, err := m.idx.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return mountableIndex{idx: ix, from: m.from}, nil
}
