package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// refNameAnnotation names an image inside an OCI layout; skopeo's oci:DIR:tag
// and regctl's ocidir://DIR:tag resolve the tag through it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Layout is the generated OCI image layout every tool pushes from.
type Layout struct {
	Dir string
	// Tag is the layout's ref name, also the tag pushed (sha-XXXXXXX).
	Tag string
	// Digest and ManifestSize describe the image manifest.
	Digest       v1.Hash
	ManifestSize int64
	// Blobs are the config and the layers, with their compressed sizes.
	Blobs []v1.Descriptor
}

// BlobBytes is the compressed size of every blob: what a registry that has
// none of them must receive at least, besides the manifest.
func (l *Layout) BlobBytes() int64 {
	var n int64
	for _, b := range l.Blobs {
		n += b.Size
	}
	return n
}

// writeLayout writes a single-image OCI layout of n gzip-compressed layers of
// random (incompressible) data, total bytes in all, into dir. The data comes
// from a ChaCha8 generator with a fixed seed and every timestamp is zero, so
// every run produces the same digests.
func writeLayout(dir string, total int64, n int, tag string) (*Layout, error) {
	if n < 1 || total < int64(n) {
		return nil, fmt.Errorf("need at least 1 layer and 1 byte per layer (got %d layers, %d bytes)", n, total)
	}
	blobDir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return nil, err
	}
	l := &Layout{Dir: dir, Tag: tag}
	var diffIDs []v1.Hash
	var layers []v1.Descriptor
	for i := range n {
		size := total / int64(n)
		if i == n-1 {
			size = total - size*int64(n-1)
		}
		desc, diffID, err := writeLayer(blobDir, i, size)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, diffID)
	}
	cfg := v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: time.Unix(0, 0).UTC()},
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: diffIDs},
		Config:       v1.Config{Labels: map[string]string{"dev.gantry.bench": "push"}},
	}
	cfgDesc, err := writeJSON(blobDir, types.OCIConfigJSON, cfg)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfgDesc, Layers: layers}
	mDesc, err := writeJSON(blobDir, types.OCIManifestSchema1, m)
	if err != nil {
		return nil, err
	}
	l.Digest, l.ManifestSize = mDesc.Digest, mDesc.Size
	l.Blobs = append([]v1.Descriptor{cfgDesc}, layers...)

	mDesc.Annotations = map[string]string{refNameAnnotation: tag}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{mDesc}}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		return nil, err
	}
	return l, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// writeLayer writes one tar+gzip layer holding a single file of size random
// bytes, and returns its descriptor and diff ID (digest of the tar).
func writeLayer(blobDir string, i int, size int64) (v1.Descriptor, v1.Hash, error) {
	tmp, err := os.CreateTemp(blobDir, "layer-*")
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	compressed := &countingHash{h: sha256.New()}
	diff := sha256.New()
	// BestSpeed: the data is incompressible, so a higher level only costs time.
	zw, err := gzip.NewWriterLevel(io.MultiWriter(tmp, compressed), gzip.BestSpeed)
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	hdr := &tar.Header{Name: fmt.Sprintf("bench/layer-%02d.bin", i), Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(i)+1)
	if _, err := io.CopyN(tw, randReader{rand.NewChaCha8(seed)}, size); err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	if err := tw.Close(); err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	if err := zw.Close(); err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	if err := tmp.Close(); err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressed.h.Sum(nil))}
	if err := os.Rename(tmp.Name(), filepath.Join(blobDir, d.Hex)); err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}
	return v1.Descriptor{MediaType: types.OCILayer, Digest: d, Size: compressed.n}, diffID, nil
}

// writeJSON stores v as a blob and returns its descriptor.
func writeJSON(blobDir string, mt types.MediaType, v any) (v1.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, err
	}
	sum := sha256.Sum256(b)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := os.WriteFile(filepath.Join(blobDir, d.Hex), b, 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, nil
}

// randReader reads from a ChaCha8 generator.
type randReader struct{ c *rand.ChaCha8 }

func (r randReader) Read(p []byte) (int, error) { return r.c.Read(p) }

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
