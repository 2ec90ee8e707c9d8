package edge_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gantry-dev/gantry/internal/edge"
)

// staticBinary compiles a static linux program for arch that prints text,
// so the text is in the binary as gantry-edge's command name is in its.
func staticBinary(t *testing.T, arch, text string) string {
	t.Helper()
	dir := t.TempDir()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(" + strings.ReplaceAll(`"TEXT"`, "TEXT", text) + ") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module fake\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bin-"+arch)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, o)
	}
	return out
}

func TestImageBuildCheck(t *testing.T) {
	t.Parallel()
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	relay := staticBinary(t, "amd64", edge.StdioCommand)
	other := staticBinary(t, "amd64", "a stock caddy")
	armRelay := staticBinary(t, "arm64", edge.StdioCommand)
	notModule := t.TempDir()
	if err := os.WriteFile(filepath.Join(notModule, "go.mod"), []byte("module example.com/caddy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    edge.ImageBuild
		want string // "" for no error
	}{
		{"edge module of the checkout", edge.ImageBuild{EdgeDir: "../../edge"}, ""},
		{"prebuilt binary", edge.ImageBuild{Binaries: map[string]string{"linux/amd64": relay}}, ""},
		{"a binary per platform", edge.ImageBuild{Platforms: []v1.Platform{amd64, arm64}, Binaries: map[string]string{"linux/amd64": relay, "linux/arm64": armRelay}}, ""},
		{"not linux", edge.ImageBuild{EdgeDir: "../../edge", Platforms: []v1.Platform{{OS: "windows", Architecture: "amd64"}}}, "runs on Linux only"},
		{"missing edge dir", edge.ImageBuild{EdgeDir: filepath.Join(notModule, "nope")}, "is not gantry-edge's source"},
		{"another module", edge.ImageBuild{EdgeDir: notModule}, "is not gantry-edge's source"},
		{"missing binary", edge.ImageBuild{Binaries: map[string]string{"linux/amd64": filepath.Join(notModule, "caddy")}}, "no such file"},
		{"not an executable", edge.ImageBuild{Binaries: map[string]string{"linux/amd64": filepath.Join(notModule, "go.mod")}}, "is not a Linux executable"},
		{"other architecture", edge.ImageBuild{Binaries: map[string]string{"linux/amd64": armRelay}}, "not linux/amd64"},
		{"dynamically linked", edge.ImageBuild{Binaries: map[string]string{"linux/amd64": "/bin/true"}}, "dynamically linked"},
		{"not gantry-edge", edge.ImageBuild{Binaries: map[string]string{"linux/amd64": other}}, "is not gantry-edge"},
		{"binary for a platform not built", edge.ImageBuild{EdgeDir: "../../edge", Binaries: map[string]string{"linux/arm64": armRelay}}, "not among those built"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Check = %v, want an error with %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestImageBuildLayout checks the image deploys rely on: the binary at
// /usr/bin/caddy, run as caddy run --resume, the admin API inside the
// container, one port, and the same digest from the same input.
func TestImageBuildLayout(t *testing.T) {
	t.Parallel()
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	b := edge.ImageBuild{
		Platforms: []v1.Platform{amd64, arm64},
		Binaries:  map[string]string{"linux/amd64": staticBinary(t, "amd64", edge.StdioCommand), "linux/arm64": staticBinary(t, "arm64", edge.StdioCommand)},
		Created:   time.Unix(1700000000, 0).UTC(),
	}
	art, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer art.Cleanup()
	if art.Index == nil {
		t.Fatal("two platforms gave no index")
	}
	im, err := art.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(im.Manifests))
	}
	for _, m := range im.Manifests {
		img, err := art.Index.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if !slices.Equal(c.Entrypoint, []string{"caddy", "run", "--resume"}) || !slices.Contains(c.Env, "CADDY_ADMIN=127.0.0.1:2019") ||
			!slices.Contains(c.Env, "XDG_DATA_HOME=/data") || !slices.Contains(c.Env, "XDG_CONFIG_HOME=/config") || len(c.ExposedPorts) != 1 {
			t.Errorf("%s: config %+v", m.Platform, c)
		}
		if cf.Architecture != m.Platform.Architecture {
			t.Errorf("config says %s for %s", cf.Architecture, m.Platform)
		}
		ls, err := img.Layers()
		if err != nil || len(ls) != 1 {
			t.Fatalf("%s: %d layers (%v), want 1", m.Platform, len(ls), err)
		}
		files := layerFiles(t, ls[0])
		if files["usr/bin/caddy"] != 0o755 {
			t.Errorf("%s: layer holds %v, want usr/bin/caddy 0755", m.Platform, files)
		}
	}
	again, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Cleanup()
	d1, _ := art.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same binaries gave %s and %s", d1, d2)
	}
}

// layerFiles lists a layer's regular files with their modes.
func layerFiles(t *testing.T, l v1.Layer) map[string]int64 {
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
		if h.Typeflag == tar.TypeReg {
			out[h.Name] = h.Mode
		}
	}
}

func TestEngineReason(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "caddy": executable file not found in $PATH: unknown`, `exec: "caddy": executable file not found in $PATH`},
		{"starting container failed: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec format error: unknown.", "exec format error"},
		{"driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:80 failed: port is already allocated", "driver failed programming external connectivity on endpoint x: Bind for 0.0.0.0:80 failed: port is already allocated"},
		{"  two\nlines ", "two lines"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := edge.EngineReason(tc.in); got != tc.want {
			t.Errorf("EngineReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
