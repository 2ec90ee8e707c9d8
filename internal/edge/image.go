package edge

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gantry-dev/gantry/internal/image"
	"github.com/gantry-dev/gantry/internal/input"
)

// The layout of gantry-edge's image, which every deploy relies on: the
// Compose override and the Swarm stack run ImageEntrypoint, and each admin
// request runs "caddy gantry-admin-stdio" by name (ExecArgv).
const (
	// ImageBinary is where the image holds gantry-edge, under the name
	// deploys run it by.
	ImageBinary = "/usr/bin/caddy"
	// ImagePort is the one port the image exposes; the admin API is never
	// exposed.
	ImagePort = "80"
	// EdgeModule is the module path of gantry-edge's source (edge/).
	EdgeModule = "github.com/gantry-dev/gantry/edge"
)

// ImageEntrypoint is what the edge container runs: Caddy resuming the last
// configuration a deploy loaded.
func ImageEntrypoint() []string { return []string{"caddy", "run", "--resume"} }

// ImageEnvironment is the edge's environment, in the image and in every
// deploy's service definition: the admin API inside the container only, and
// Caddy's configuration and data under /config and /data (volumes in a
// deploy).
func ImageEnvironment() map[string]string {
	return map[string]string{"CADDY_ADMIN": AdminListen, "XDG_CONFIG_HOME": "/config", "XDG_DATA_HOME": "/data"}
}

// ImageEnv is ImageEnvironment as KEY=VALUE, sorted.
func ImageEnv() []string {
	var out []string
	for k, v := range ImageEnvironment() {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ImageHint says what an image needs to serve as the edge, for errors about
// the edge-image input.
func ImageHint() string {
	return fmt.Sprintf("it must hold gantry-edge as %s and run %s (build one with gantry edge-image, see edge/README.md)", ImageBinary, strings.Join(ImageEntrypoint(), " "))
}

// EngineReason strips the container runtime's layers of prefixes from a
// Docker engine error about a container that could not start, leaving the
// reason: exec: "caddy": executable file not found in $PATH.
func EngineReason(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	for _, marker := range []string{"unable to start container process: ", "OCI runtime create failed: "} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			msg = msg[i+len(marker):]
			break
		}
	}
	return strings.TrimSuffix(strings.TrimSuffix(msg, "."), ": unknown")
}

// ImageBuild builds gantry-edge's image without a Docker engine: one layer
// holding the static binary at ImageBinary, on scratch, per platform.
type ImageBuild struct {
	// EdgeDir is the edge module (edge/ in gantry's checkout), compiled
	// with go build for each platform that has no prebuilt binary.
	EdgeDir string
	// Binaries are prebuilt gantry-edge binaries by platform (linux/arm64);
	// a platform listed here is not compiled.
	Binaries map[string]string
	// Platforms to build; linux/amd64 when empty.
	Platforms []v1.Platform
	// Created is the fixed time of the image and of its files.
	Created time.Time
	// Labels go into each image's configuration and, as annotations, into
	// the manifests.
	Labels map[string]string
	// Logf receives progress lines; nil discards them.
	Logf func(string, ...any)
}

// Check reports the first problem with the build's input, before anything
// is compiled: a platform that is not Linux, an edge directory that is not
// gantry-edge's module, a binary that is missing, for another platform,
// dynamically linked or not gantry-edge.
func (b ImageBuild) Check() error {
	for _, p := range b.platforms() {
		if p.OS != "linux" {
			return input.Errorf("platforms", "platform %s: gantry-edge runs on Linux only; use linux/amd64, linux/arm64 or linux/arm/v7", p)
		}
		if bin, ok := b.Binaries[p.String()]; ok {
			if err := checkBinary(bin, p); err != nil {
				return &input.Error{Input: "binary", Msg: err.Error()}
			}
			continue
		}
		if err := checkModule(b.EdgeDir); err != nil {
			return &input.Error{Input: "edge-dir", Msg: err.Error()}
		}
		if _, err := exec.LookPath("go"); err != nil {
			return input.Errorf("edge-dir", "building gantry-edge for %s needs Go on PATH (the version in %s); install it, or pass a prebuilt binary", p, filepath.Join(b.EdgeDir, "go.mod"))
		}
	}
	for key := range b.Binaries {
		found := false
		for _, p := range b.platforms() {
			found = found || p.String() == key
		}
		if !found {
			return input.Errorf("binary", "binary for %s: that platform is not among those built (%s)", key, platformList(b.platforms()))
		}
	}
	return nil
}

func (b ImageBuild) platforms() []v1.Platform {
	if len(b.Platforms) == 0 {
		return []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	}
	return b.Platforms
}

func platformList(ps []v1.Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// checkModule reports whether dir holds gantry-edge's module.
func checkModule(dir string) error {
	gomod := filepath.Join(dir, "go.mod")
	data, err := os.ReadFile(gomod)
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == EdgeModule {
				return nil
			}
		}
	}
	return fmt.Errorf("%q is not gantry-edge's source (no go.mod for module %s); run from gantry's checkout or point the edge directory at its edge/", dir, EdgeModule)
}

// checkBinary reports a prebuilt binary that cannot be gantry-edge for p.
func checkBinary(path string, p v1.Platform) error {
	f, err := elf.Open(path)
	if err != nil {
		if _, serr := os.Stat(path); serr != nil {
			return fmt.Errorf("binary for %s: %v", p, serr)
		}
		return fmt.Errorf("binary %s for %s is not a Linux executable (%v); build it with CGO_ENABLED=0 GOOS=linux go build ./cmd/gantry-edge in edge/", path, p, err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM, "386": elf.EM_386, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV}
	if m, ok := want[p.Architecture]; ok && f.Machine != m {
		return fmt.Errorf("binary %s is for %s, not %s; build it with GOARCH=%s", path, f.Machine, p, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s is dynamically linked, so it cannot run in the edge's empty image; build it with CGO_ENABLED=0", path)
		}
	}
	has, err := fileContains(path, []byte(StdioCommand))
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	if !has {
		return fmt.Errorf("binary %s is not gantry-edge (it has no %s command, so deploys could not reach its admin API); build ./cmd/gantry-edge in gantry's edge/", path, StdioCommand)
	}
	return nil
}

// fileContains reports whether the file holds s, reading it in chunks.
func fileContains(path string, s []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20+len(s))
	keep := 0
	for {
		n, err := io.ReadFull(f, buf[keep:])
		if bytes.Contains(buf[:keep+n], s) {
			return true, nil
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep = copy(buf, buf[keep+n-len(s)+1:keep+n])
	}
}

// Build compiles (or takes) gantry-edge for each platform and returns the
// image, an OCI index for several platforms. Its Cleanup removes the
// temporary binaries; call it once the image is pushed.
func (b ImageBuild) Build(ctx context.Context) (image.Artifact, error) {
	if err := b.Check(); err != nil {
		return image.Artifact{}, err
	}
	logf := b.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, err := os.MkdirTemp("", "gantry-edge-image-")
	if err != nil {
		return image.Artifact{}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	d := image.Daemonless{
		Root: dir, Base: image.Scratch, Platforms: b.platforms(), Created: b.Created,
		PlatformFiles: map[string][]image.FileMap{},
		Config: image.Config{
			Entrypoint: ImageEntrypoint(), Env: ImageEnv(), Ports: []string{ImagePort}, Labels: b.Labels,
		},
		Annotations: b.Labels,
	}
	for _, p := range d.Platforms {
		// The file's path in dir names only the platform, so the layer's
		// history, and so the digest, is the same on every machine.
		rel := filepath.Join(strings.ReplaceAll(p.String(), "/", "-"), "caddy")
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			cleanup()
			return image.Artifact{}, err
		}
		if bin, ok := b.Binaries[p.String()]; ok {
			err = linkOrCopy(bin, dst)
		} else {
			logf("go build gantry-edge for %s (in %s)", p, b.EdgeDir)
			start := time.Now()
			err = goBuild(ctx, b.EdgeDir, p, dst)
			if err == nil {
				logf("built gantry-edge for %s in %.1fs", p, time.Since(start).Seconds())
			}
		}
		if err != nil {
			cleanup()
			return image.Artifact{}, err
		}
		d.PlatformFiles[p.String()] = []image.FileMap{{Glob: filepath.ToSlash(rel), Dest: ImageBinary, Mode: 0o755}}
	}
	art, err := d.Build(ctx)
	if err != nil {
		cleanup()
		return image.Artifact{}, err
	}
	art.Cleanup = cleanup
	return art, nil
}

// goBuild compiles ./cmd/gantry-edge in dir for p, static and stripped, with
// the flags scripts/tools.sh and the tests use, so the build cache is shared.
func goBuild(ctx context.Context, dir string, p v1.Platform, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, "./cmd/gantry-edge")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && strings.HasPrefix(p.Variant, "v") {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	if o, err := cmd.CombinedOutput(); err != nil {
		msg := strings.Join(strings.Fields(string(o)), " ")
		if len(msg) > 600 {
			msg = msg[:600] + "…"
		}
		return fmt.Errorf("go build ./cmd/gantry-edge in %s for %s: %v: %s", dir, p, err, msg)
	}
	return nil
}

// linkOrCopy puts src at dst, by a hard link when both are on one file
// system.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
