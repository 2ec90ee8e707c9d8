// Package demo holds the parts of gantry's local demo that are not gantry
// commands: building the sample app and an embedded registry.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is an in-memory OCI registry on loopback.
type Registry struct {
	Host string
	srv  *http.Server
}

// StartRegistry starts an in-memory registry on 127.0.0.1 on a free port.
func StartRegistry() (*Registry, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded registry: %w", err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &Registry{Host: l.Addr().String(), srv: srv}, nil
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// BuildApp compiles examples/app under root into dir as a static Linux
// binary that reports sha and version on /health.
func BuildApp(ctx context.Context, root, dir, sha, version string) (string, error) {
	out := filepath.Join(dir, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out,
		"-ldflags", "-s -w -X main.gitSHA="+sha+" -X main.version="+version, "./examples/app")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build examples/app: %v\n%s", err, buf.String())
	}
	return out, nil
}

// FindRoot returns the gantry checkout the demo runs in: the working
// directory or one of its parents holding examples/app.
func FindRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "examples", "app", "main.go")); err == nil && !st.IsDir() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the demo runs inside a gantry checkout (examples/app not found above the working directory)")
		}
		dir = parent
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Down removes the demo project's containers, network and volumes.
func Down(ctx context.Context, project string) {
	out, _ := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+project).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	_ = exec.CommandContext(ctx, "docker", "network", "rm", project+"_default").Run()
	_ = exec.CommandContext(ctx, "docker", "volume", "rm", project+"_gantry-edge-config", project+"_gantry-edge-data").Run()
}
