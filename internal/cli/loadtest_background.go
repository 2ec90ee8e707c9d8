package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
)

// Background load tests: start mode leaves a gantry process running the test
// (k6 under it) after its step ends, as a deploy under load needs; stop mode
// interrupts it, waits for its verdict and reports it with the requests of a
// time window. The background process keeps its files in backgroundDir.

const (
	// backgroundDir is the directory, under the output directory, with the
	// background process's pid, log, outputs and summary.
	backgroundDir = "background"
	// startTimeout bounds the wait for k6 to start its test.
	startTimeout = 2 * time.Minute
	// stopTimeout bounds the wait for the background test to end after
	// SIGINT: k6's own grace period, then the summary.
	stopTimeout = 2 * time.Minute
)

// startBackground re-runs this command as a detached process with the same
// inputs (in its environment, never on a command line) and returns once k6
// has started writing its output.
func startBackground(ctx context.Context, a *action.Action, dir, k6 string) error {
	exe := a.Getenv("GANTRY_SELF") // tests run the built gantry, not the test binary
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("finding gantry's own executable: %w", err)
		}
	}
	bg := filepath.Join(dir, backgroundDir)
	if pid, err := readPID(bg); err == nil && alive(pid) {
		return fmt.Errorf("a background load test (pid %d) already runs with output-dir %s; stop it first (mode: stop)", pid, dir)
	}
	if err := os.RemoveAll(bg); err != nil {
		return err
	}
	if err := os.MkdirAll(bg, 0o755); err != nil {
		return err
	}
	raw := filepath.Join(dir, "raw.json.gz")
	if err := os.Remove(raw); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	log, err := os.Create(filepath.Join(bg, "log"))
	if err != nil {
		return err
	}
	defer log.Close()
	in := a.Inputs()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INPUT_") && !strings.HasPrefix(kv, "GITHUB_OUTPUT=") && !strings.HasPrefix(kv, "GITHUB_STEP_SUMMARY=") && !strings.HasPrefix(kv, "GITHUB_ACTIONS=") {
			env = append(env, kv)
		}
	}
	for _, spec := range a.Spec().Inputs {
		if v := in.String(spec.Name); v != "" {
			env = append(env, "INPUT_"+strings.ToUpper(strings.ReplaceAll(spec.Name, "-", "_"))+"="+v)
		}
	}
	abs, _ := filepath.Abs(dir)
	env = append(env,
		backgroundEnv+"=1",
		"INPUT_OUTPUT_DIR="+abs,
		"INPUT_K6_VERSION="+in.String("k6-version"),
		"PATH="+filepath.Dir(k6)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GITHUB_OUTPUT="+filepath.Join(bg, "outputs"),
		"GITHUB_STEP_SUMMARY="+filepath.Join(bg, "summary.md"),
		// Not GITHUB_ACTIONS: its log is a file (uploaded with the results),
		// where ::add-mask:: lines would write the secrets out.
	)
	for _, k := range []string{"GITHUB_REPOSITORY", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_API_URL", "RUNNER_TEMP", "RUNNER_TOOL_CACHE"} {
		if v := a.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	cmd := exec.Command(exe, "loadtest")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, log, log
	if err := detach(cmd); err != nil { // outlives this step
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the background load test: %w", err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(bg, "pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(startTimeout)
	for {
		if _, err := os.Stat(raw); err == nil {
			break
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(filepath.Join(bg, "log"))
			return fmt.Errorf("the background load test ended before k6 started (%v): %s", err, lastLines(string(out), 5))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGINT)
			return fmt.Errorf("k6 did not start within %s; its log is in %s", startTimeout, filepath.Join(bg, "log"))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGINT)
			return ctx.Err()
		case <-tick.C:
		}
	}
	a.SetOutput("output-dir", abs)
	a.Infof("k6 runs in the background (gantry pid %d, output in %s); a later step with mode: stop and the same output-dir ends it and reports", pid, abs)
	fmt.Fprintf(a.Summary(), "### ⏱️ %s started in the background\n\nk6 runs until a later step stops it (`mode: stop`, output-dir `%s`).\n", action.Escape(in.String("title")), action.Escape(filepath.Base(abs)))
	return nil
}

// stopBackground interrupts the background test of dir, waits until it has
// written its verdict, and reports that verdict and the window's requests.
func stopBackground(ctx context.Context, a *action.Action, dir, title string, win [2]time.Time) error {
	bg := filepath.Join(dir, backgroundDir)
	pid, err := readPID(bg)
	if err != nil {
		return fmt.Errorf("no background load test in %s (%v): start one with mode: start and the same output-dir", dir, err)
	}
	if alive(pid) {
		if err := interrupt(pid); err != nil {
			return fmt.Errorf("stopping the background load test (pid %d): %w", pid, err)
		}
		a.Infof("stopping the background load test (pid %d)", pid)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(stopTimeout)
	for alive(pid) {
		select {
		case <-deadline:
			killPID(pid)
			return fmt.Errorf("the background load test (pid %d) did not end within %s of SIGINT; killed it", pid, stopTimeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	// k6's log, redacted by the background process already, is data: fenced
	// by ::stop-commands:: as in run mode.
	log, _ := os.ReadFile(filepath.Join(bg, "log"))
	if err := a.Untrusted(func(w io.Writer) error { _, err := w.Write(log); return err }); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(bg, "outputs"))
	if err != nil {
		return fmt.Errorf("the background load test left no verdict (%v); its log is above", err)
	}
	outs, err := action.ParseOutputs(string(data))
	if err != nil {
		return err
	}
	for name, v := range outs {
		if a.Spec().HasOutput(name) {
			a.SetOutput(name, v)
		}
	}
	if sum, err := os.ReadFile(filepath.Join(bg, "summary.md")); err == nil {
		a.Summary().Write(sum)
	}
	if !win[0].IsZero() || !win[1].IsZero() {
		if err := reportWindow(a, filepath.Join(dir, "raw.json.gz"), win); err != nil {
			return err
		}
	}
	if v := outs["verdict"]; v != "pass" {
		return fmt.Errorf("%s: verdict %s", title, v)
	}
	return nil
}

func readPID(bg string) (int, error) {
	b, err := os.ReadFile(filepath.Join(bg, "pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive tells whether pid runs (and is not a zombie we could wait for).
func alive(pid int) bool {
	if !signalable(pid) {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // no procfs: trust kill(0)
	}
	// The state follows the command name in parentheses: Z is a zombie.
	if i := strings.LastIndexByte(string(st), ')'); i >= 0 && i+2 < len(st) {
		return st[i+2] != 'Z'
	}
	return true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
