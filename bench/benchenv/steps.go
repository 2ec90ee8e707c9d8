package benchenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
)

// Run is one gantry command run as a workflow step: when it started and
// ended, what it wrote, and its error.
type Run struct {
	Start, End time.Time
	Outputs    map[string]string
	Summary    string
	Log        string
	Err        error
}

// Took is how long the command ran.
func (r *Run) Took() time.Duration { return r.End.Sub(r.Start) }

// RunGantry runs the gantry binary with args in dir as a workflow step would,
// its GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files under dir/steps named after
// name; Ctrl-C sends it SIGTERM so that it rolls back and releases its lock.
func RunGantry(ctx context.Context, gantry, dir string, env []string, name string, args ...string) *Run {
	stepDir := filepath.Join(dir, "steps")
	_ = os.MkdirAll(stepDir, 0o755)
	outFile, sumFile := filepath.Join(stepDir, name+".out"), filepath.Join(stepDir, name+".md")
	for _, f := range []string{outFile, sumFile} {
		_ = os.Remove(f)
		_ = os.WriteFile(f, nil, 0o644)
	}
	stepEnv := append(append([]string{}, env...), "GITHUB_OUTPUT="+outFile, "GITHUB_STEP_SUMMARY="+sumFile)
	cmd := exec.CommandContext(ctx, gantry, args...)
	cmd.Dir, cmd.Env = dir, stepEnv
	// On Ctrl-C gantry gets SIGTERM, so it rolls back and releases its lock.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	r := &Run{Start: time.Now()}
	err := cmd.Run()
	r.End = time.Now()
	r.Log = log.String()
	if data, rerr := os.ReadFile(sumFile); rerr == nil {
		r.Summary = string(data)
	}
	if data, rerr := os.ReadFile(outFile); rerr == nil {
		r.Outputs, _ = action.ParseOutputs(string(data))
	}
	if err != nil {
		r.Err = fmt.Errorf("gantry %s: %v\n%s", args[0], err, Tail(r.Log, 3000))
	}
	return r
}

// Exec runs argv in dir with env and returns its stdout; the error carries the
// end of what it printed.
func Exec(ctx context.Context, dir string, env []string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, Tail(stderr.String()+stdout.String(), 3000))
	}
	return stdout.String(), nil
}

// Tail is the last n bytes of s, marked with … when cut.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
