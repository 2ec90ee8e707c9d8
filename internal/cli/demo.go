package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/demo"
)

// demoSHA is the commit of the demo's first version.
const demoSHA = "0123456789abcdef0123456789abcdef01234567"

// runDemo runs the local demo of the chain on embedded defaults: build two
// versions of the sample app daemonlessly, push them to an embedded
// registry, deploy v1 to this machine's Docker engine as a Compose host,
// deploy v2 blue-green under a constant load and count failed requests, roll
// back. Summaries go to summaryDir.
func runDemo(ctx context.Context, args []string, env action.Env) int {
	summaryDir := "gantry-demo"
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--summary-dir" && i+1 < len(args):
			summaryDir = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--summary-dir="):
			summaryDir = strings.TrimPrefix(args[i], "--summary-dir=")
		default:
			fmt.Fprintf(env.Stderr, "gantry demo: unknown argument %q; the only flag is --summary-dir DIR\n", args[i])
			return 1
		}
	}
	if err := demoMain(ctx, env, summaryDir); err != nil {
		fmt.Fprintf(env.Stderr, "gantry demo: %v\n", err)
		return 1
	}
	return 0
}

func demoMain(ctx context.Context, env action.Env, summaryDir string) error {
	root, err := demo.FindRoot()
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("the demo deploys to this machine's Docker engine, which is not reachable (%s); start Docker and run again", strings.TrimSpace(string(out)))
	}
	composeArgv := []string{"docker", "compose", "version"}
	if bin := overlay(env.Getenv, nil)(ComposeBinaryEnv); bin != "" {
		composeArgv = []string{bin, "version"}
	}
	if out, err := exec.CommandContext(ctx, composeArgv[0], composeArgv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("the demo needs docker compose v2 (%s: %s); run scripts/demo.sh, which builds its own copy when none is installed", strings.Join(composeArgv, " "), strings.TrimSpace(string(out)+" "+err.Error()))
	}
	caddy := filepath.Join(root, ".bin", "caddy")
	if _, err := os.Stat(caddy); err != nil {
		return fmt.Errorf("the demo's edge proxy needs %s; run scripts/demo.sh (or scripts/tools.sh demo) to build it", caddy)
	}
	if err := os.MkdirAll(summaryDir, 0o755); err != nil {
		return err
	}
	summaryDir, _ = filepath.Abs(summaryDir)
	tmp, err := os.MkdirTemp("", "gantry-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	say := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "\n▶ "+format+"\n", args...) }
	step := 0
	// gantry runs one gantry command as a workflow step would and returns its outputs.
	gantry := func(title string, args ...string) (map[string]string, error) {
		step++
		say("%s", title)
		outFile := filepath.Join(tmp, fmt.Sprintf("output-%d", step))
		summary := filepath.Join(summaryDir, fmt.Sprintf("%d-%s.md", step, args[0]))
		_ = os.Remove(summary)
		stepEnv := env
		stepEnv.Getenv = overlay(env.Getenv, map[string]string{"GITHUB_OUTPUT": outFile, "GITHUB_STEP_SUMMARY": summary, "GITHUB_ACTOR": "demo"})
		if code := Run(ctx, args, stepEnv); code != 0 {
			return nil, fmt.Errorf("%s failed (exit %d); see %s", title, code, summary)
		}
		data, err := os.ReadFile(outFile)
		if err != nil {
			return nil, err
		}
		return action.ParseOutputs(string(data))
	}

	reg, err := demo.StartRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()
	say("embedded registry on %s", reg.Host)

	// Two versions of the sample app, and the edge proxy, built daemonlessly.
	images := map[string]string{}
	for i, sha := range []string{demoSHA, demoSHA2} {
		version := fmt.Sprintf("v%d", i+1)
		bin, err := demo.BuildApp(ctx, root, filepath.Join(tmp, version), sha, version)
		if err != nil {
			return err
		}
		outs, err := gantry("build-push "+version+" of examples/app", "build-push",
			"--registries", reg.Host+"/demo/app", "--sha", sha, "--tags", version,
			"--files", bin+":/app:0755", "--entrypoint", "/app", "--ports", "8080")
		if err != nil {
			return err
		}
		images[sha] = strings.Split(outs["images"], "\n")[0]
	}
	outs, err := gantry("build-push the edge proxy (Caddy)", "build-push",
		"--registries", reg.Host+"/demo/edge", "--sha", demoSHA,
		"--files", caddy+":/usr/bin/caddy:0755", "--entrypoint", "/usr/bin/caddy",
		"--env", "XDG_CONFIG_HOME=/config", "--env", "XDG_DATA_HOME=/data")
	if err != nil {
		return err
	}
	edgeImage := strings.Split(outs["images"], "\n")[0]

	compose := filepath.Join(tmp, "compose.yml")
	if err := os.WriteFile(compose, []byte(demoCompose), 0o644); err != nil {
		return err
	}
	port, err := demo.FreePort()
	if err != nil {
		return err
	}
	project := "gantry-demo"
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	target := []string{"--host", "local", "--project", project, "--project-dir", filepath.Join(tmp, "host"),
		"--edge-image", edgeImage, "--edge-ports", fmt.Sprintf("127.0.0.1:%d:80", port),
		"--url", url, "--drain", "5s", "--stop-timeout", "5s"}
	defer demo.Down(context.WithoutCancel(ctx), project)
	demo.Down(ctx, project) // a previous run's leftovers

	if _, err := gantry("deploy-compose v1 (first deploy)", append([]string{"deploy-compose",
		"--compose-file", compose, "--images", "web=" + images[demoSHA], "--sha", demoSHA}, target...)...); err != nil {
		return err
	}
	load := demo.StartLoad(url, 8)
	_, err = gantry("deploy-compose v2, blue-green, under constant load", append([]string{"deploy-compose",
		"--compose-file", compose, "--images", "web=" + images[demoSHA2], "--sha", demoSHA2}, target...)...)
	load.Stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "  load during the blue-green deploy: %d requests, %d failed\n", load.Total.Load(), load.Failed.Load())
	if _, err := gantry("rollback to v1 (no rebuild)", append([]string{"rollback", "--to", "previous"}, target...)...); err != nil {
		return err
	}
	say("done: v1 → v2 (blue-green, %d of %d requests failed under load) → rolled back to v1; job summaries in %s", load.Failed.Load(), load.Total.Load(), summaryDir)
	fmt.Fprintf(env.Stdout, "failed-requests=%d\ntotal-requests=%d\n", load.Failed.Load(), load.Total.Load())
	return nil
}

// demoSHA2 is the commit of the demo's second version.
const demoSHA2 = "89abcdef0123456789abcdef0123456789abcdef"

const demoCompose = `services:
  web:
    image: demo/web
    expose: ["8080"]
    labels:
      gantry.edge: "true"
`

// overlay returns a getenv that answers vars first, then base.
func overlay(base func(string) string, vars map[string]string) func(string) string {
	if base == nil {
		base = os.Getenv
	}
	return func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		return base(k)
	}
}
