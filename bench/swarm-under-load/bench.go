package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
	"github.com/gantry-dev/gantry/internal/demo"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// The commits of the releases deployed: v1 serves before each update, v2 is
// the new version.
const (
	shaV1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	shaV2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// bench holds what the scenarios share: binaries, images, the registry,
// the environment of the tools, and what to clean up.
type bench struct {
	c         config
	id        string // bench-sul-<random>: the prefix of every name
	root, tmp string
	bin       map[string]string
	env       []string
	reg       *registry
	// images by release: v1, v2, and edge when an edge scenario runs
	// (repository@digest).
	images map[string]string
	// swarmInit says whether this run turned swarm mode on.
	swarmInit bool

	mu     sync.Mutex
	stacks []string // stacks to remove
}

func newBench(ctx context.Context, c config, root, tmp string) (*bench, error) {
	rnd := make([]byte, 3)
	_, _ = rand.Read(rnd)
	b := &bench{c: c, id: "bench-sul-" + hex.EncodeToString(rnd), root: root, tmp: tmp,
		bin: map[string]string{}, images: map[string]string{}}
	tools := []string{"k6", "registry"}
	if slices.ContainsFunc(c.Scenarios, isEdge) {
		tools = append(tools, "caddy") // gantry-edge: Caddy with gantry's upstreams module
	}
	for _, name := range tools {
		p := filepath.Join(root, ".bin", name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s not found; run ./scripts/tools.sh test", p)
		}
		b.bin[name] = p
	}
	progs := []string{"docker"}
	if slices.ContainsFunc(c.Scenarios, func(k string) bool { return !isEdge(k) }) {
		progs = append(progs, "nsenter", "ip") // the stand-in balancer of the rolling scenarios
	}
	for _, name := range progs {
		p, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s not found on PATH (the stand-in balancer needs docker, nsenter and ip)", name)
		}
		b.bin[name] = p
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the Docker engine is not reachable: %s", strings.TrimSpace(string(out)))
	}
	// gantry and the tools get no GitHub Actions variables (gantry runs in
	// local mode; each step gets its own GITHUB_OUTPUT and
	// GITHUB_STEP_SUMMARY), and k6 reports no usage.
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

// ensureSwarm puts the engine in swarm mode when it is not, as
// internal/testenv.Swarm does.
func (b *bench) ensureSwarm(ctx context.Context) error {
	state := func() string {
		out, _ := exec.CommandContext(ctx, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}").Output()
		return strings.TrimSpace(string(out))
	}
	switch s := state(); s {
	case "active":
		return nil
	case "inactive":
		out, err := exec.CommandContext(ctx, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1").CombinedOutput()
		if err != nil {
			if state() == "active" {
				return nil // someone else initialized it meanwhile
			}
			return fmt.Errorf("the engine refuses swarm mode: docker swarm init: %v: %s", err, out)
		}
		b.swarmInit = true
		logf("swarm mode turned on (docker swarm init --advertise-addr 127.0.0.1); it stays on")
		return nil
	default:
		return fmt.Errorf("the engine's swarm state is %q; want active or inactive", s)
	}
}

// prepare builds gantry and the two releases of examples/app, starts the
// registry and pushes the images to it, and the edge's image when an edge
// scenario runs.
func (b *bench) prepare(ctx context.Context) error {
	b.bin["gantry"] = filepath.Join(b.tmp, "gantry")
	logf("building gantry (CGO_ENABLED=0 -trimpath -ldflags '-s -w')")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.bin["gantry"], "./cmd/gantry")
	cmd.Dir, cmd.Env = b.root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gantry: %v\n%s", err, out)
	}
	var err error
	if b.reg, err = startRegistry(ctx, b.bin["registry"], filepath.Join(b.tmp, "registry")); err != nil {
		return err
	}
	logf("registry on %s", b.reg.Host)
	for _, r := range []struct{ release, sha string }{{"v1", shaV1}, {"v2", shaV2}} {
		bin, err := demo.BuildApp(ctx, b.root, filepath.Join(b.tmp, r.release), r.sha, r.release)
		if err != nil {
			return err
		}
		run := b.runGantry(ctx, "build-push-"+r.release, "build-push", "--registries", b.reg.Host+"/"+b.id+"/"+r.release,
			"--sha", r.sha, "--files", bin+":/app:0755", "--entrypoint", "/app", "--ports", "8080")
		if run.Err != nil {
			return run.Err
		}
		b.images[r.release] = strings.Split(run.Outputs["images"], "\n")[0]
	}
	if _, ok := b.bin["caddy"]; ok {
		if err := b.pushEdge(ctx); err != nil {
			return err
		}
	}
	// Pulled once, untimed, as a host that has deployed before has them:
	// every deploy still resolves and pulls through the registry.
	for _, img := range b.images {
		if _, err := b.exec(ctx, nil, "docker", "pull", "--quiet", img); err != nil {
			return err
		}
	}
	return nil
}

// pushEdge builds the edge's image as internal/testenv.CaddyImage does,
// daemonlessly from .bin/caddy (gantry-edge): FROM scratch, the binary at
// /usr/bin/caddy, a bootstrap configuration that only opens the admin API,
// and Caddy's configuration and data under /config and /data. deploy-swarm
// runs it with its own entrypoint (caddy run --resume, CADDY_ADMIN).
func (b *bench) pushEdge(ctx context.Context) error {
	bin, err := filepath.EvalSymlinks(b.bin["caddy"])
	if err != nil {
		return err
	}
	boot := filepath.Join(b.tmp, "edge", "edge.json")
	if err := os.MkdirAll(filepath.Dir(boot), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(boot, []byte(testenv.CaddyBootstrap), 0o644); err != nil {
		return err
	}
	run := b.runGantry(ctx, "build-push-edge", "build-push", "--registries", b.reg.Host+"/"+b.id+"/edge", "--sha", shaV1,
		"--files", bin+":/usr/bin/caddy:0755", "--files", boot+":/etc/caddy/edge.json:0644",
		"--entrypoint", "/usr/bin/caddy run --config /etc/caddy/edge.json --resume",
		"--env", "XDG_CONFIG_HOME=/config", "--env", "XDG_DATA_HOME=/data", "--env", "HOME=/",
		"--ports", "80")
	if run.Err != nil {
		return run.Err
	}
	b.images["edge"] = strings.Split(run.Outputs["images"], "\n")[0]
	return nil
}

// registry is a distribution registry server (.bin/registry) with
// filesystem storage.
type registry struct {
	Host   string
	cmd    *exec.Cmd
	exited chan error
	log    string
}

func startRegistry(ctx context.Context, bin, dir string) (*registry, error) {
	port, err := demo.FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &registry{Host: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(dir, "registry.log"), exited: make(chan error, 1)}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(testenv.RegistryConfig(filepath.Join(dir, "data"), r.Host, "")), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(r.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	// Not bound to ctx: it must outlive an interrupt until the stacks are gone.
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	client := &http.Client{Timeout: 2 * time.Second}
	for range 600 { // 30 s
		if resp, err := client.Get("http://" + r.Host + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case err := <-r.exited:
			r.exited <- err
			data, _ := os.ReadFile(r.log)
			return nil, fmt.Errorf("registry on %s exited: %v\n%s", r.Host, err, tail(string(data), 2000))
		case <-ctx.Done():
			r.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.Close()
	return nil, fmt.Errorf("registry on %s did not answer within 30s", r.Host)
}

// Close stops the registry and waits for it to exit.
func (r *registry) Close() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		r.exited <- err
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
	}
}

// stack registers a stack for removal and returns its name.
func (b *bench) stack(suffix string) string {
	s := b.id + "-" + suffix
	b.mu.Lock()
	b.stacks = append(b.stacks, s)
	b.mu.Unlock()
	return s
}

// removeStack removes a stack and waits (bounded) until its services,
// containers and networks are gone, removing leftover networks itself
// (docker stack rm does not wait for the tasks to stop before it removes
// the networks), then removes the stack's volumes (the edge's
// <stack>_gantry-edge-config and -data), which docker stack rm keeps.
func (b *bench) removeStack(ctx context.Context, stack string) {
	label := "label=com.docker.stack.namespace=" + stack
	_, _ = b.exec(ctx, nil, "docker", "stack", "rm", stack)
	var left string
	for range 240 { // 120 s
		svcs, _ := b.exec(ctx, nil, "docker", "service", "ls", "--quiet", "--filter", label)
		ctrs, _ := b.exec(ctx, nil, "docker", "ps", "--all", "--quiet", "--filter", label)
		nets, _ := b.exec(ctx, nil, "docker", "network", "ls", "--quiet", "--filter", label)
		if strings.TrimSpace(svcs+ctrs) == "" && strings.TrimSpace(nets) != "" {
			_, _ = b.exec(ctx, nil, append([]string{"docker", "network", "rm"}, strings.Fields(nets)...)...)
			nets, _ = b.exec(ctx, nil, "docker", "network", "ls", "--quiet", "--filter", label)
		}
		left = strings.Join(strings.Fields(svcs+" "+ctrs+" "+nets), " ")
		if left == "" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if left != "" {
		logf("cleanup: %s still has services, containers or networks after 120 s: %s", stack, left)
	}
	vols, _ := b.exec(ctx, nil, "docker", "volume", "ls", "--quiet", "--filter", label)
	names := strings.Fields(vols)
	for _, v := range []string{stack + "_gantry-edge-config", stack + "_gantry-edge-data"} {
		if _, err := b.exec(ctx, nil, "docker", "volume", "inspect", v); err == nil && !slices.Contains(names, v) {
			names = append(names, v)
		}
	}
	if len(names) > 0 {
		if _, err := b.exec(ctx, nil, append([]string{"docker", "volume", "rm"}, names...)...); err != nil {
			logf("cleanup: %s's volumes: %v", stack, firstLine(err.Error()))
		}
	}
}

// Close removes every stack (services, containers, networks), the image
// names the engine pulled, and stops the registry.
func (b *bench) Close(ctx context.Context) {
	b.mu.Lock()
	stacks := b.stacks
	b.mu.Unlock()
	for _, s := range stacks {
		b.removeStack(ctx, s)
	}
	for _, img := range b.images {
		_ = exec.CommandContext(ctx, "docker", "image", "rm", img).Run()
	}
	if b.reg != nil {
		b.reg.Close()
	}
	logf("cleaned up %d stacks (%s-*) and %d images", len(stacks), b.id, len(b.images))
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
	v["k6"] = first(b.bin["k6"], "version")
	v["registry"] = strings.TrimPrefix(first(b.bin["registry"], "--version"), b.bin["registry"]+" ")
	if p, ok := b.bin["caddy"]; ok {
		v["edge"] = "gantry-edge (Caddy " + moduleVersion(ctx, p, "github.com/caddyserver/caddy/v2") + " + gantry's upstreams module"
		if stamp, err := os.ReadFile(filepath.Join(b.root, ".bin", ".gantry-edge.version")); err == nil {
			v["edge"] += ", edge/ sources " + strings.TrimSpace(string(stamp))
		}
		v["edge"] += ")"
	}
	return v
}

// moduleVersion reads the version of module mod from a Go binary's build
// information (a Caddy built from source reports "unknown" itself).
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
