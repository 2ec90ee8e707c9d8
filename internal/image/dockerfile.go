package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Dockerfile builds an image with the local Docker engine (BuildKit through
// docker buildx when installed, else docker build) and hands the result to
// go-containerregistry for pushing, so `docker push` is never used.
type Dockerfile struct {
	Context    string
	Dockerfile string // relative to the working directory, default Context/Dockerfile
	BuildArgs  []string
	Target     string
	Labels     map[string]string
	Platforms  []string
	// Docker is the docker executable; default "docker" on PATH.
	Docker string
	Logf   func(string, ...any)
}

// ExecError is a failed command with the output it printed, so a failed build
// shows why.
type ExecError struct {
	Cmd    string
	Err    error
	Output string
}

func (e *ExecError) Error() string {
	out := strings.TrimSpace(e.Output)
	if lines := strings.Split(out, "\n"); len(lines) > 15 {
		out = strings.Join(lines[len(lines)-15:], "\n")
	}
	return fmt.Sprintf("%s: %v\n%s", e.Cmd, e.Err, out)
}

func (e *ExecError) Unwrap() error { return e.Err }

// Build runs the build and loads the result; Cleanup removes its files.
func (d Dockerfile) Build(ctx context.Context) (Artifact, error) {
	docker := d.Docker
	if docker == "" {
		docker = "docker"
	}
	if _, err := exec.LookPath(docker); err != nil {
		return Artifact{}, fmt.Errorf("building from a Dockerfile needs the docker CLI and engine; install Docker, or build daemonlessly with base and files")
	}
	if st, err := os.Stat(d.Context); err != nil || !st.IsDir() {
		return Artifact{}, fmt.Errorf("context %q is not a directory", d.Context)
	}
	dockerfile := d.Dockerfile
	if dockerfile == "" {
		dockerfile = filepath.Join(d.Context, "Dockerfile")
	}
	if _, err := os.Stat(dockerfile); err != nil {
		return Artifact{}, fmt.Errorf("dockerfile %q not found", dockerfile)
	}
	tmp, err := os.MkdirTemp("", "gantry-build-")
	if err != nil {
		return Artifact{}, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	out := filepath.Join(tmp, "image.tar")

	buildx := exec.CommandContext(ctx, docker, "buildx", "version").Run() == nil
	if len(d.Platforms) > 1 && !buildx {
		cleanup()
		return Artifact{}, fmt.Errorf("building %d platforms from a Dockerfile needs docker buildx; install it or build one platform", len(d.Platforms))
	}
	// A unique tag keeps the result from being pruned as a dangling image
	// between build and save; it is removed again after the save.
	tag := "gantry-build:" + filepath.Base(tmp)
	var args []string
	if buildx {
		args = []string{"buildx", "build", "--output", "type=oci,dest=" + out}
	} else {
		args = []string{"build", "--tag", tag}
	}
	args = append(args, "--file", dockerfile)
	if len(d.Platforms) > 0 {
		args = append(args, "--platform", strings.Join(d.Platforms, ","))
	}
	for _, a := range d.BuildArgs {
		args = append(args, "--build-arg", a)
	}
	if d.Target != "" {
		args = append(args, "--target", d.Target)
	}
	keys := make([]string, 0, len(d.Labels))
	for k := range d.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--label", k+"="+d.Labels[k])
	}
	args = append(args, "--", d.Context)
	if err := d.run(ctx, docker, buildx, args...); err != nil {
		cleanup()
		return Artifact{}, err
	}
	if !buildx {
		err := d.run(ctx, docker, false, "save", "--output", out, tag)
		_ = exec.Command(docker, "rmi", "--no-prune", tag).Run()
		if err != nil {
			cleanup()
			return Artifact{}, err
		}
	}
	art, err := LoadTar(out)
	if err != nil {
		cleanup()
		return Artifact{}, err
	}
	inner := art.Cleanup
	art.Cleanup = func() {
		if inner != nil {
			inner()
		}
		cleanup()
	}
	return art, nil
}

// run runs docker with args. BuildKit is asked for only when buildx is
// installed: without it, recent docker CLIs refuse DOCKER_BUILDKIT=1, and the
// classic builder is what the engine offers.
func (d Dockerfile) run(ctx context.Context, docker string, buildkit bool, args ...string) error {
	if d.Logf != nil {
		d.Logf("$ %s %s", docker, strings.Join(args, " "))
	}
	cmd := exec.CommandContext(ctx, docker, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if buildkit {
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1")
	}
	if err := cmd.Run(); err != nil {
		return &ExecError{Cmd: docker + " " + args[0], Err: err, Output: buf.String()}
	}
	if d.Logf != nil {
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			d.Logf("  %s", line)
		}
	}
	return nil
}
