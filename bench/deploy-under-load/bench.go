package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gantry-dev/gantry/bench/benchenv"
	"github.com/gantry-dev/gantry/internal/demo"
)

// The commits of the releases deployed: v1 serves before each deploy, v2 is
// the new version, and crash is the release that exits on start.
const (
	shaV1    = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	shaV2    = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	shaCrash = "dead000ccccccccccccccccccccccccccccccccc"
)

// bench holds what every scenario shares: binaries, images, the registry,
// the environment of the tools, and what to clean up.
type bench struct {
	c         config
	id        string // bench-dul-<random>: the prefix of every name
	root, tmp string
	bin       map[string]string
	env       []string
	reg       *demo.Registry
	// images by release: v1, v2, crash, edge (repository@digest).
	images map[string]string

	// bg is the blue-green project, which the crash scenario deploys to
	// again; bgServes is the commit it serves.
	bg       *edgeTarget
	bgServes string

	mu       sync.Mutex
	projects []string // Compose projects to remove
}

func newBench(ctx context.Context, c config, root, tmp string) (*bench, error) {
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	b := &bench{c: c, id: "bench-dul-" + hex.EncodeToString(rnd), root: root, tmp: tmp,
		bin: map[string]string{}, images: map[string]string{}}
	for _, name := range []string{"k6", "caddy"} {
		p := filepath.Join(root, ".bin", name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s not found; run ./scripts/tools.sh test", p)
		}
		b.bin[name] = p
	}
	for _, name := range []string{"docker", "curl", "sh"} {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s not found on PATH", name)
		}
		b.bin[name] = p
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the Docker engine is not reachable: %s", strings.TrimSpace(string(out)))
	}
	if out, err := exec.CommandContext(ctx, "docker", "compose", "version").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("docker compose v2 is missing (%s); run ./scripts/tools.sh test", strings.TrimSpace(string(out)))
	}

	// gantry and the tools get no GitHub Actions variables (gantry runs in
	// local mode; the bench sets GITHUB_OUTPUT and GITHUB_STEP_SUMMARY per
	// step), and k6 reports no usage.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GITHUB_") || strings.HasPrefix(k, "RUNNER_") || strings.HasPrefix(k, "ACTIONS_") || strings.HasPrefix(k, "K6_") {
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "K6_NO_USAGE_REPORT=true", "GITHUB_ACTOR=bench")
	logf("run %s in %s", b.id, tmp)
	return b, nil
}

// prepare builds gantry, the two releases of examples/app, the crashing
// release and the edge image, and pushes the images to the registry.
func (b *bench) prepare(ctx context.Context) error {
	b.bin["gantry"] = filepath.Join(b.tmp, "gantry")
	logf("building gantry (CGO_ENABLED=0 -trimpath -ldflags '-s -w')")
	if err := goBuild(ctx, b.root, b.bin["gantry"], "./cmd/gantry", "-s -w"); err != nil {
		return err
	}
	var err error
	if b.reg, err = demo.StartRegistry(); err != nil {
		return err
	}
	logf("registry on %s", b.reg.Host)
	push := func(release, sha string, args ...string) error {
		outs, err := b.gantryStep(ctx, "build-push-"+release, append([]string{"build-push",
			"--registries", b.reg.Host + "/" + b.id + "/" + release, "--sha", sha}, args...)...)
		if err != nil {
			return err
		}
		b.images[release] = strings.Split(outs["images"], "\n")[0]
		return nil
	}
	for _, r := range []struct{ release, sha string }{{"v1", shaV1}, {"v2", shaV2}} {
		bin, err := demo.BuildApp(ctx, b.root, filepath.Join(b.tmp, r.release), r.sha, r.release)
		if err != nil {
			return err
		}
		if err := push(r.release, r.sha, "--files", bin+":/app:0755", "--entrypoint", "/app", "--ports", "8080"); err != nil {
			return err
		}
	}
	crash := filepath.Join(b.tmp, "crash", "app")
	if err := goBuild(ctx, b.root, crash, "./bench/deploy-under-load/crashapp", "-s -w"); err != nil {
		return err
	}
	if err := push("crash", shaCrash, "--files", crash+":/app:0755", "--entrypoint", "/app", "--ports", "8080"); err != nil {
		return err
	}
	if err := push("edge", shaV1, "--files", b.bin["caddy"]+":/usr/bin/caddy:0755", "--entrypoint", "/usr/bin/caddy",
		"--env", "XDG_CONFIG_HOME=/config", "--env", "XDG_DATA_HOME=/data"); err != nil {
		return err
	}
	// Pulled once, untimed, as a host that has deployed before has them:
	// every deploy below still runs its own pull.
	for _, img := range b.images {
		if _, err := b.exec(ctx, nil, "docker", "pull", "--quiet", img); err != nil {
			return err
		}
	}
	return nil
}

// goBuild builds a static Linux binary of pkg.
func goBuild(ctx context.Context, root, out, pkg, ldflags string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// project registers a Compose project for removal and removes any
// leftovers of it (there are none unless the run id repeats).
func (b *bench) project(ctx context.Context, suffix string) string {
	p := b.id + "-" + suffix
	b.mu.Lock()
	b.projects = append(b.projects, p)
	b.mu.Unlock()
	demo.Down(ctx, p)
	return p
}

// Close removes every project's containers, network and volumes, the
// image names the engine pulled, and stops the registry.
func (b *bench) Close(ctx context.Context) {
	b.mu.Lock()
	projects := b.projects
	b.mu.Unlock()
	for _, p := range projects {
		demo.Down(ctx, p)
		if out, _ := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+p).Output(); len(bytes.TrimSpace(out)) > 0 {
			logf("cleanup: containers of %s are still there: %s", p, bytes.TrimSpace(out))
		}
	}
	for _, img := range b.images {
		_ = exec.CommandContext(ctx, "docker", "image", "rm", img).Run()
	}
	if b.reg != nil {
		_ = b.reg.Close()
	}
	logf("cleaned up %d Compose projects (%s-*)", len(projects), b.id)
}

// gantryStep runs one gantry command as a workflow step would, with its own
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY, and returns its outputs.
func (b *bench) gantryStep(ctx context.Context, name string, args ...string) (map[string]string, error) {
	r := b.runGantry(ctx, name, args...)
	if r.Err != nil {
		return nil, r.Err
	}
	return r.Outputs, nil
}

// gantryRun is one gantry command run as a workflow step (benchenv.Run).
type gantryRun = benchenv.Run

func (b *bench) runGantry(ctx context.Context, name string, args ...string) *gantryRun {
	return benchenv.RunGantry(ctx, b.bin["gantry"], b.tmp, b.env, name, args...)
}

// exec runs a command in the tools' environment and returns its stdout.
func (b *bench) exec(ctx context.Context, env []string, argv ...string) (string, error) {
	return benchenv.Exec(ctx, b.tmp, append(append([]string{}, b.env...), env...), argv...)
}

func tail(s string, n int) string { return benchenv.Tail(s, n) }

// versions reports the version of every program involved.
func (b *bench) versions(ctx context.Context) map[string]string {
	v := map[string]string{}
	first := func(argv ...string) string {
		out, err := b.exec(ctx, nil, argv...)
		if err != nil {
			return "unknown"
		}
		for _, line := range strings.Split(out, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				return line
			}
		}
		return "unknown"
	}
	v["gantry"] = benchenv.GantryBuild(ctx, b.root)
	v["docker"] = "engine " + first("docker", "version", "--format", "{{.Server.Version}}") + ", client " + first("docker", "version", "--format", "{{.Client.Version}}")
	v["compose"] = first("docker", "compose", "version", "--short")
	v["k6"] = first(b.bin["k6"], "version")
	v["caddy"] = moduleVersion(ctx, b.bin["caddy"], "github.com/caddyserver/caddy/v2")
	v["curl"] = first("curl", "--version")
	return v
}

// moduleVersion reads the version of module mod from a Go binary's build
// information (caddy built by go install reports "unknown" itself).
func moduleVersion(ctx context.Context, bin, mod string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == mod {
			return f[2]
		}
	}
	return "unknown"
}
