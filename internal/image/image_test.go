package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") || strings.HasSuffix(p, "app") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestParseFileMap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    FileMap
		wantErr string
	}{
		{in: "dist/app:/app:0755", want: FileMap{Glob: "dist/app", Dest: "/app", Mode: 0o755}},
		{in: "static/**:/srv/", want: FileMap{Glob: "static/**", Dest: "/srv/"}},
		{in: "dist/app", wantErr: "SOURCE:DEST"},
		{in: "dist/app:app", wantErr: "absolute path"},
		{in: "dist/app:/app:rwx", wantErr: "octal file mode"},
		{in: "dist/[app:/app", wantErr: "valid glob"},
	} {
		got, err := ParseFileMap(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseFileMap(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseFileMap(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func layerPaths(t *testing.T, l v1.Layer) map[string]int64 {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h.Mode
		if !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s has mtime %v, want the fixed build time", h.Name, h.ModTime)
		}
	}
}

func TestDaemonlessReproducibleLayout(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, map[string]string{
		"dist/app":         "binary",
		"static/a.css":     "a",
		"static/img/b.png": "b",
		"conf/app.yaml":    "c",
	})
	d := Daemonless{
		Root: root, Base: Scratch, Created: time.Unix(1700000000, 0),
		Files: []FileMap{
			{Glob: "dist/app", Dest: "/app"},
			{Glob: "static/**", Dest: "/srv/static/"},
			{Glob: "conf", Dest: "/etc/app", Mode: 0o600},
		},
		Config:      Config{Entrypoint: []string{"/app"}, Env: []string{"A=1"}, Ports: []string{"8080"}, Labels: map[string]string{"org.opencontainers.image.revision": "abc"}},
		Annotations: map[string]string{"org.opencontainers.image.revision": "abc"},
	}
	a1, err := d.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a2, err := d.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := a1.Digest()
	d2, _ := a2.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of the same inputs differ: %s vs %s", d1, d2)
	}
	layers, err := a1.Image.Layers()
	if err != nil || len(layers) != 3 {
		t.Fatalf("want one layer per files line, got %d (%v)", len(layers), err)
	}
	want := []map[string]int64{
		{"app": 0o755},
		{"srv/": 0o755, "srv/static/": 0o755, "srv/static/a.css": 0o644, "srv/static/img/": 0o755, "srv/static/img/b.png": 0o644},
		{"etc/": 0o755, "etc/app/": 0o755, "etc/app/app.yaml": 0o600},
	}
	for i, l := range layers {
		got := layerPaths(t, l)
		if len(got) != len(want[i]) {
			t.Errorf("layer %d = %v, want %v", i, got, want[i])
		}
		for p, m := range want[i] {
			if got[p] != m {
				t.Errorf("layer %d: %s mode %o, want %o (all: %v)", i, p, got[p], m, got)
			}
		}
	}
	cf, err := a1.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Entrypoint[0] != "/app" || cf.Config.Env[0] != "A=1" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config = %+v", cf.Config)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("port not exposed: %v", cf.Config.ExposedPorts)
	}
	m, _ := a1.Image.Manifest()
	if m.Annotations["org.opencontainers.image.revision"] != "abc" || m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest = %s %v", m.MediaType, m.Annotations)
	}

	// A changed file changes only its own layer.
	if err := os.WriteFile(filepath.Join(root, "static/a.css"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	a3, err := d.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l3, _ := a3.Image.Layers()
	for i, same := range []bool{true, false, true} {
		h1, _ := layers[i].Digest()
		h3, _ := l3[i].Digest()
		if (h1 == h3) != same {
			t.Errorf("layer %d: digest equal=%v, want %v", i, h1 == h3, same)
		}
	}
}

func TestDaemonlessMultiPlatform(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, map[string]string{"amd64/app": "x86", "arm64/app": "arm", "README": "r"})
	d := Daemonless{
		Root: root, Base: Scratch,
		Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}},
		Files:     []FileMap{{Glob: "README", Dest: "/README"}},
		PlatformFiles: map[string][]FileMap{
			"linux/amd64": {{Glob: "amd64/app", Dest: "/app"}},
			"linux/arm64": {{Glob: "arm64/app", Dest: "/app"}},
		},
	}
	art, err := d.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if art.Index == nil {
		t.Fatal("two platforms must make an index")
	}
	im, _ := art.Index.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index = %+v", im.Manifests)
	}
	blobs, err := art.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	// README layer shared; two app layers; two configs.
	if len(blobs) != 5 {
		t.Errorf("blobs = %d, want 5 distinct", len(blobs))
	}
}

func TestEmptyGlobFails(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, map[string]string{"a.txt": "a"})
	err := FileMap{Glob: "dist/*.bin", Dest: "/bin/"}.Check(root)
	if err == nil || !strings.Contains(err.Error(), `"dist/*.bin" matched no files`) {
		t.Errorf("err = %v", err)
	}
	if err := (FileMap{Glob: "*.txt", Dest: "/x/"}).Check(root); err != nil {
		t.Errorf("valid glob: %v", err)
	}
}

func TestLoadTarAndLayout(t *testing.T) {
	t.Parallel()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	dir := t.TempDir()

	// docker save format
	tarPath := filepath.Join(dir, "image.tar")
	ref, _ := name.ParseReference("example.com/x:y")
	if err := tarball.WriteToFile(tarPath, ref, img); err != nil {
		t.Fatal(err)
	}
	art, err := LoadTar(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := art.Digest(); got != want {
		t.Errorf("docker tar digest %s, want %s", got, want)
	}

	// OCI layout directory, and the same tarred as an OCI archive
	lp := filepath.Join(dir, "layout")
	p, err := layout.Write(lp, mutate.IndexMediaType(empty.Index, "application/vnd.oci.image.index.v1+json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	art, err = LoadLayout(lp)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := art.Digest(); got != want {
		t.Errorf("layout digest %s, want %s", got, want)
	}
	ociTar := filepath.Join(dir, "oci.tar")
	tarDir(t, lp, ociTar)
	art, err = LoadTar(ociTar)
	if err != nil {
		t.Fatal(err)
	}
	defer art.Cleanup()
	if got, _ := art.Digest(); got != want {
		t.Errorf("OCI archive digest %s, want %s", got, want)
	}

	// Two images in one layout is ambiguous.
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadLayout(lp); err == nil || !strings.Contains(err.Error(), "lists 2 manifests") {
		t.Errorf("ambiguous layout: err = %v", err)
	}
	if _, err := LoadLayout(filepath.Join(dir, "nope")); err == nil {
		t.Error("missing layout: no error")
	}
}

func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tarNames(t *testing.T, r io.Reader) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(h.Name, "./")] = true
	}
}

func TestSymlinks(t *testing.T) {
	t.Parallel()
	root := writeFiles(t, map[string]string{"bin/real": "binary", "tree/file": "f"})
	if err := os.Symlink("real", filepath.Join(root, "bin", "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(root, "tree", "link")); err != nil {
		t.Fatal(err)
	}
	es, err := resolve(root, []FileMap{{Glob: "bin/alias", Dest: "/usr/bin/tool"}, {Glob: "tree", Dest: "/t"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		switch e.dest {
		case "/usr/bin/tool":
			if e.link != "" {
				t.Errorf("an explicitly named symlink must be followed, got a link to %q", e.link)
			}
		case "/t/link":
			if e.link != "file" {
				t.Errorf("a symlink inside a directory must stay a link, got %+v", e)
			}
		}
	}
}
