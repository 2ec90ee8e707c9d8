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

// demoSHA is the commit the demo builds when it does not run in a git checkout.
const demoSHA = "0123456789abcdef0123456789abcdef01234567"

// runDemo runs the local demo of the chain on embedded defaults: build the
// sample app daemonlessly, push it to an embedded registry, push again to
// show that an unchanged push moves no bytes. Summaries go to summaryDir.
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
	if err := os.MkdirAll(summaryDir, 0o755); err != nil {
		return err
	}
	summaryDir, _ = filepath.Abs(summaryDir)
	sha := demoSHA
	if out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output(); err == nil {
		sha = strings.TrimSpace(string(out))
	}
	tmp, err := os.MkdirTemp("", "gantry-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	say := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "\n▶ "+format+"\n", args...) }
	say("building examples/app at %s", sha[:7])
	bin, err := demo.BuildApp(ctx, root, tmp, sha, "demo")
	if err != nil {
		return err
	}
	reg, err := demo.StartRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()
	repo := reg.Host + "/demo/app"
	say("embedded registry on %s", reg.Host)

	var digest string
	for i, title := range []string{"build-push (cold)", "build-push again (unchanged: nothing to upload)"} {
		say("%s", title)
		outFile := filepath.Join(tmp, fmt.Sprintf("output-%d", i))
		summary := filepath.Join(summaryDir, fmt.Sprintf("%d-build-push.md", i+1))
		_ = os.Remove(summary)
		stepEnv := env
		stepEnv.Getenv = overlay(env.Getenv, map[string]string{"GITHUB_OUTPUT": outFile, "GITHUB_STEP_SUMMARY": summary})
		code := Run(ctx, []string{"build-push",
			"--registries", repo, "--sha", sha, "--tags", "latest",
			"--files", bin + ":/app:0755", "--entrypoint", "/app", "--ports", "8080",
		}, stepEnv)
		if code != 0 {
			return fmt.Errorf("%s failed (exit %d)", title, code)
		}
		data, err := os.ReadFile(outFile)
		if err != nil {
			return err
		}
		outs, err := action.ParseOutputs(string(data))
		if err != nil {
			return err
		}
		digest = outs["digest"]
		fmt.Fprintf(env.Stderr, "  digest=%s sha-tag=%s\n", outs["digest"], outs["sha-tag"])
	}
	say("done: %s@%s; job summaries in %s", repo, digest, summaryDir)
	fmt.Fprintf(env.Stdout, "digest=%s\n", digest)
	return nil
}

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
