package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gantry-dev/gantry/internal/demo"
)

// ImageLabel is set on every image testenv builds, so a test (or a person
// cleaning up) can find them: docker image ls --filter label=gantry.test.
const ImageLabel = "gantry.test"

// imageCreated is the fixed creation time of test images, so the same files
// give the same digest.
var imageCreated = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BuildImage builds a FROM-scratch linux/amd64 image holding files (path in
// the image → content) and pushes it to registryHost/repo:tag, returning that
// reference and the image's digest. A file is executable (0755) when it is
// under a bin directory, is named app, or starts like an executable (ELF or
// #!); the others are 0644.
func BuildImage(t testing.TB, registryHost, repo, tag string, files map[string][]byte, entrypoint []string, env []string) (ref, digest string) {
	t.Helper()
	return buildImage(t, registryHost, repo, tag, files, imageConfig{Entrypoint: entrypoint, Env: env})
}

// imageConfig is the runtime configuration of a test image.
type imageConfig struct {
	Entrypoint []string
	Env        []string
	Ports      []string
}

// buildImage is built on go-containerregistry directly, not on gantry's
// internal/image and internal/push: their own tests import testenv, and Go
// forbids the import cycle.
func buildImage(t testing.TB, registryHost, repo, tag string, files map[string][]byte, cfg imageConfig) (ref, digest string) {
	t.Helper()
	layerTar, err := tarFiles(files)
	if err != nil {
		t.Fatalf("testenv: image %s/%s:%s: %v", registryHost, repo, tag, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: imageCreated}, CreatedBy: "gantry testenv"}}); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: imageCreated}
	cf.Config.Entrypoint, cf.Config.Env = cfg.Entrypoint, cfg.Env
	cf.Config.Labels = map[string]string{ImageLabel: "true"}
	for _, p := range cfg.Ports {
		if cf.Config.ExposedPorts == nil {
			cf.Config.ExposedPorts = map[string]struct{}{}
		}
		cf.Config.ExposedPorts[p+"/tcp"] = struct{}{}
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	r, err := name.NewRepository(registryHost+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatalf("testenv: image repository: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := remote.Write(r.Tag(tag), img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("testenv: push %s:%s: %v", r, tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return r.Tag(tag).String(), d.String()
}

// tarFiles renders files, with their parent directories, as a reproducible
// tar owned by root.
func tarFiles(files map[string][]byte) ([]byte, error) {
	entries := map[string]bool{} // path → is a directory
	for p := range files {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("image path %q must be a clean absolute file path", p)
		}
		entries[p] = false
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			entries[d] = true
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), ModTime: imageCreated, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}
		if entries[p] {
			h.Name += "/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(files[p]))
			if !executable(p, files[p]) {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !entries[p] {
			if _, err := tw.Write(files[p]); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func executable(p string, content []byte) bool {
	for _, dir := range strings.Split(path.Dir(p), "/") {
		if dir == "bin" || dir == "sbin" {
			return true
		}
	}
	return path.Base(p) == "app" || bytes.HasPrefix(content, []byte("\x7fELF")) || bytes.HasPrefix(content, []byte("#!"))
}

// CaddyBootstrap is the configuration CaddyImage starts with when it has no
// saved one: only the admin API, on the container's loopback interface
// (edge.AdminListen), where gantry reaches it through docker exec.
const CaddyBootstrap = `{"admin":{"listen":"127.0.0.1:2019"}}`

// CaddyImage pushes the pinned caddy (see Caddy: gantry-edge) as a
// FROM-scratch image to registryHost/gantry-test/caddy and returns its
// reference. The container serves the admin API inside itself only and
// resumes the last configuration loaded through it (saved under /config, a
// volume worth mounting), like the official caddy image's
// XDG_CONFIG_HOME=/config and XDG_DATA_HOME=/data.
func CaddyImage(t testing.TB, registryHost string) string {
	t.Helper()
	path := Caddy(t)
	bin := cachedFile(t, path)
	// gantry reaches the edge's admin API through this command only.
	if _, msg := cached("relay "+path, func() ([]byte, string) {
		if out, err := exec.Command(path, "gantry-admin-stdio", "--help").CombinedOutput(); err != nil {
			return nil, fmt.Sprintf("%s has no gantry-admin-stdio command (%v: %s); rebuild it with %s", path, err, bytes.TrimSpace(out), CaddyInstall)
		}
		return nil, ""
	}); msg != "" {
		t.Fatalf("testenv: %s", msg)
	}
	if f, err := elf.NewFile(bytes.NewReader(bin)); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatalf("testenv: %s is dynamically linked, so it cannot run in a scratch image; rebuild it with %s", Caddy(t), CaddyInstall)
			}
		}
	}
	ref, _ := buildImage(t, registryHost, "gantry-test/caddy", "test", map[string][]byte{
		"/usr/bin/caddy":       bin,
		"/etc/caddy/edge.json": []byte(CaddyBootstrap),
	}, imageConfig{
		Entrypoint: []string{"/usr/bin/caddy", "run", "--config", "/etc/caddy/edge.json", "--resume"},
		Env:        []string{"XDG_CONFIG_HOME=/config", "XDG_DATA_HOME=/data", "HOME=/"},
		Ports:      []string{"80"},
	})
	return ref
}

// AppImage pushes examples/app, built to report sha and version on /health,
// as a FROM-scratch image listening on 8080 to
// registryHost/gantry-test/app:<version> and returns its reference.
func AppImage(t testing.TB, registryHost, sha, version string) string {
	t.Helper()
	return AppImageExposing(t, registryHost, sha, version, "8080")
}

// AppImageExposing is AppImage with the image config's ExposedPorts set to
// ports (TCP) instead of 8080; the app still listens on 8080.
func AppImageExposing(t testing.TB, registryHost, sha, version string, ports ...string) string {
	t.Helper()
	bin := appBinary(t, sha, version)
	tag := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, version)
	ref, _ := buildImage(t, registryHost, "gantry-test/app", tag, map[string][]byte{"/app": bin}, imageConfig{
		Entrypoint: []string{"/app"},
		Ports:      ports,
	})
	return ref
}

// Built binaries, kept in memory for the test process: each build or read
// happens once however many tests ask.
var (
	binMu    sync.Mutex
	binCache = map[string]*cachedBin{}
)

type cachedBin struct {
	once sync.Once
	b    []byte
	err  string
}

func cached(key string, fill func() ([]byte, string)) ([]byte, string) {
	binMu.Lock()
	c, ok := binCache[key]
	if !ok {
		c = &cachedBin{}
		binCache[key] = c
	}
	binMu.Unlock()
	c.once.Do(func() { c.b, c.err = fill() })
	return c.b, c.err
}

func cachedFile(t testing.TB, p string) []byte {
	t.Helper()
	b, msg := cached("file "+p, func() ([]byte, string) {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err.Error()
		}
		return b, ""
	})
	if msg != "" {
		t.Fatalf("testenv: %s", msg)
	}
	return b
}

func appBinary(t testing.TB, sha, version string) []byte {
	t.Helper()
	root := RepoRoot(t)
	b, msg := cached("app "+sha+" "+version, func() ([]byte, string) {
		dir, err := os.MkdirTemp("", "gantry-app-")
		if err != nil {
			return nil, err.Error()
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		p, err := demo.BuildApp(ctx, root, dir, sha, version)
		if err != nil {
			return nil, err.Error()
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err.Error()
		}
		return b, ""
	})
	if msg != "" {
		t.Fatalf("testenv: %s", msg)
	}
	return b
}
