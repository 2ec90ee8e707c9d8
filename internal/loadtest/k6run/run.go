package k6run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-dev/gantry/internal/input"
)

// RawName is the file name of k6's raw JSON output (one JSON object a line,
// gzipped) in RunOptions.OutDir.
const RawName = "raw.json.gz"

// DefaultGrace is how long k6 gets, after SIGINT, to stop its scenarios,
// run teardown and write its outputs before it is killed.
const DefaultGrace = 30 * time.Second

// stderrLines is how many of k6's last stderr lines an ExitError carries.
const stderrLines = 20

// k6's exit codes (go.k6.io/k6/errext/exitcodes) that Run tells apart.
const (
	ExitThresholdsFailed = 99
	ExitInvalidConfig    = 104
	ExitExternalAbort    = 105
	ExitScriptException  = 107
	ExitScriptAborted    = 108
)

// RunOptions is one k6 run.
type RunOptions struct {
	// K6 is the k6 executable, as Find returns it.
	K6 string
	// Script is the k6 script to run.
	Script string
	// OutDir receives RawName; it is created when missing.
	OutDir string
	// Dir is k6's working directory; empty means the current one.
	Dir string
	// Env holds the values the script reads from __ENV, passed as -e
	// KEY=VALUE arguments (never through a shell). Run never logs a value;
	// the script itself may print one, so secrets must also be masked in
	// Stdout and Stderr (action.Mask does that for an action's log).
	Env map[string]string
	// Stdout and Stderr receive k6's output as it comes, one whole line
	// per Write; writes to them are serialized. Nil discards.
	Stdout, Stderr io.Writer
	// Logf, when set, receives the command line (with -e values redacted)
	// and how k6 ended.
	Logf func(format string, args ...any)
	// Grace is how long k6 gets to stop after SIGINT when ctx is cancelled
	// or Background.Stop is called; 0 means DefaultGrace.
	Grace time.Duration
	// Environ is k6's process environment before K6_NO_USAGE_REPORT=true
	// and K6_WEB_DASHBOARD=false are added; nil means os.Environ().
	Environ []string
}

func (o *RunOptions) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// Result is how a k6 run ended. Thresholds failing is a result, not an error.
type Result struct {
	// RawPath is k6's raw JSON output; empty when k6 wrote none (it failed
	// before the test started).
	RawPath string
	// ExitCode is k6's exit code; -1 when it was killed.
	ExitCode int
	// ThresholdsFailed is true when k6 exited 99: the test ran and one of
	// the script's thresholds failed.
	ThresholdsFailed bool
	// Stopped is true when k6 was interrupted (ctx cancelled or
	// Background.Stop) rather than finishing on its own.
	Stopped  bool
	Started  time.Time
	Duration time.Duration
}

// ExitError is a k6 run that failed: k6's exit code and its last lines on
// stderr, where it logs why.
type ExitError struct {
	Code   int
	Stderr []string
}

func (e *ExitError) Error() string {
	var what string
	switch e.Code {
	case ExitScriptException:
		what = "script error"
	case ExitScriptAborted:
		what = "the script aborted the test"
	case ExitInvalidConfig:
		what = "invalid k6 configuration"
	case ExitExternalAbort:
		what = "k6 was interrupted"
	case 100, 101, 102:
		what = "a k6 timeout (setup, teardown or handleSummary)"
	case 109:
		what = "k6 crashed"
	case 110:
		what = "the script marked the test as failed"
	default:
		what = "k6 failed"
	}
	msg := fmt.Sprintf("k6 run: %s (k6 exit code %d)", what, e.Code)
	if d := errorDetail(e.Stderr); d != "" {
		msg += ": " + d
	}
	return msg
}

// Run runs k6 and waits for it. Cancelling ctx sends k6 SIGINT, upon which
// it stops the test and writes its outputs; it is killed if it has not
// exited after the grace period. The error is nil when k6 exited 0 or 99
// (Result.ThresholdsFailed); a cancelled run returns its Result and an
// error wrapping the context's cause.
func Run(ctx context.Context, o RunOptions) (Result, error) {
	p, err := start(ctx, o)
	if err != nil {
		return Result{}, err
	}
	return p.wait(ctx)
}

// errStopped is the cause Background.Stop cancels its run with.
var errStopped = errors.New("stopped by gantry")

// Background is k6 running while something else happens, such as a deploy.
type Background struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
	res    Result
	err    error
}

// Start starts k6 as Run does and returns without waiting; call Stop to end
// the test (also after Done, to get the result). Cancelling ctx stops k6 as
// it stops Run.
func Start(ctx context.Context, o RunOptions) (*Background, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	p, err := start(ctx, o)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	b := &Background{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.res, b.err = p.wait(ctx)
		cancel(nil)
	}()
	return b, nil
}

// Done is closed when k6 has exited, on its own or stopped: a test that ends
// before the deploy it watches, or fails to start, shows here.
func (b *Background) Done() <-chan struct{} { return b.done }

// Stop sends k6 SIGINT (unless it already exited) and waits for it to write
// its outputs and exit. A run Stop ended has Result.Stopped and no error.
// When ctx ends first Stop returns ctx's error; k6 is still killed after
// its grace period.
func (b *Background) Stop(ctx context.Context) (Result, error) {
	b.cancel(errStopped)
	select {
	case <-b.done:
		return b.res, b.err
	case <-ctx.Done():
		return Result{}, fmt.Errorf("k6 run: waiting for k6 to stop: %w", ctx.Err())
	}
}

// process is a started k6.
type process struct {
	o       RunOptions
	cmd     *exec.Cmd
	raw     string
	grace   time.Duration
	started time.Time
	stdout  *lineWriter
	stderr  *lineWriter
	last    *ring
	// interrupted is set once k6 was sent SIGINT (or killed) for a
	// cancelled context, as opposed to a context cancelled after k6 exited.
	interrupted atomic.Bool
}

// envKeyRE is what k6's -e accepts as a name without surprises.
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func start(ctx context.Context, o RunOptions) (*process, error) {
	if o.K6 == "" {
		return nil, errors.New("k6 run: no k6 executable given")
	}
	if o.Script == "" {
		return nil, errors.New("k6 run: no script given")
	}
	if o.OutDir == "" {
		return nil, errors.New("k6 run: no output directory given")
	}
	keys := make([]string, 0, len(o.Env))
	for k, v := range o.Env {
		if !envKeyRE.MatchString(k) {
			return nil, &input.Error{Input: "env", Msg: fmt.Sprintf("%q is not a variable name (letters, digits and _, not starting with a digit)", k)}
		}
		if strings.ContainsRune(v, 0) {
			// The value itself is never repeated: it may be a secret.
			return nil, &input.Error{Input: "env", Msg: fmt.Sprintf("the value of %s contains a NUL byte, which cannot be passed to k6", k)}
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("k6 run: %w", err)
	}
	raw := filepath.Join(o.OutDir, RawName)
	// A raw file from an earlier run must not pass for this run's output.
	if err := os.Remove(raw); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("k6 run: %w", err)
	}

	// --address= turns k6 1.x's REST API off (2.x starts it only when
	// given an address): nothing uses it, and parallel runs would fight
	// over its port. Every other argument means the same to both majors.
	args := []string{"run", "--address=", "--out", "json=" + raw}
	shown := slices.Clone(args)
	for _, k := range keys {
		args = append(args, "-e", k+"="+o.Env[k])
		shown = append(shown, "-e", k+"=***")
	}
	script := o.Script
	if strings.HasPrefix(script, "-") {
		script = "./" + script // a file, not a flag
	}
	args = append(args, script)
	shown = append(shown, script)

	cmd := exec.CommandContext(ctx, o.K6, args...)
	cmd.Dir = o.Dir
	environ := o.Environ
	if environ == nil {
		environ = os.Environ()
	}
	// Later entries win: k6 must not phone home or start its dashboard.
	cmd.Env = append(slices.Clone(environ), "K6_NO_USAGE_REPORT=true", "K6_WEB_DASHBOARD=false")
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	var mu sync.Mutex
	p := &process{o: o, cmd: cmd, raw: raw, grace: grace, last: newRing(stderrLines)}
	interruptOnCancel(cmd)
	if interrupt := cmd.Cancel; interrupt != nil {
		cmd.Cancel = func() error {
			err := interrupt()
			if err == nil {
				p.interrupted.Store(true)
			}
			return err
		}
	}
	cmd.WaitDelay = grace
	p.stdout = &lineWriter{mu: &mu, w: o.Stdout}
	p.stderr = &lineWriter{mu: &mu, w: o.Stderr, keep: p.last.add}
	cmd.Stdout = p.stdout
	cmd.Stderr = p.stderr

	o.logf("k6 run: %s", commandLine(o.K6, shown))
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("k6 run: start %s: %w", o.K6, err)
	}
	return p, nil
}

// wait waits for k6 to exit and maps its exit code.
func (p *process) wait(ctx context.Context) (Result, error) {
	werr := p.cmd.Wait()
	p.stdout.flush()
	p.stderr.flush()
	res := Result{Started: p.started, Duration: time.Since(p.started), ExitCode: -1}
	if st := p.cmd.ProcessState; st != nil {
		res.ExitCode = st.ExitCode()
	} else {
		return res, fmt.Errorf("k6 run: %w", werr)
	}
	if _, err := os.Stat(p.raw); err == nil {
		res.RawPath = p.raw
	}
	res.ThresholdsFailed = res.ExitCode == ExitThresholdsFailed
	res.Stopped = p.interrupted.Load()
	p.o.logf("k6 run: k6 exited with code %d after %s", res.ExitCode, res.Duration.Round(time.Millisecond))

	switch {
	case res.Stopped && res.ExitCode == -1:
		return res, fmt.Errorf("k6 run: k6 did not stop within %s of SIGINT and was killed; its raw output may be incomplete (%w)", p.grace, context.Cause(ctx))
	case res.Stopped && errors.Is(context.Cause(ctx), errStopped):
		return res, nil
	case res.Stopped:
		return res, fmt.Errorf("k6 run: k6 stopped after %s: %w", res.Duration.Round(time.Millisecond), context.Cause(ctx))
	case res.ExitCode == 0 || res.ThresholdsFailed:
		return res, nil
	case res.ExitCode == -1:
		return res, fmt.Errorf("k6 run: k6 was killed: %v", werr)
	}
	return res, &ExitError{Code: res.ExitCode, Stderr: p.last.last()}
}

// commandLine renders argv for a log line, quoting arguments that are empty
// or hold spaces or quotes so that each reads as one.
func commandLine(exe string, args []string) string {
	parts := make([]string, 0, len(args)+1)
	for _, a := range append([]string{exe}, args...) {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// errorDetail turns k6's last stderr lines into one readable message: the
// msg (and hint) of its error lines, or failing those its last lines.
func errorDetail(lines []string) string {
	var parts []string
	for _, l := range lines {
		if !strings.Contains(l, "level=error") && !strings.Contains(l, "level=fatal") {
			continue
		}
		msg, ok := logfmtValue(l, "msg")
		if !ok {
			parts = append(parts, l)
			continue
		}
		if hint, ok := logfmtValue(l, "hint"); ok && hint != "" {
			msg += " (" + hint + ")"
		}
		parts = append(parts, msg)
	}
	if len(parts) == 0 {
		for _, l := range lines[max(0, len(lines)-3):] {
			if l = strings.TrimSpace(l); l != "" {
				parts = append(parts, l)
			}
		}
	}
	return strings.Join(strings.Fields(strings.Join(parts, "; ")), " ")
}

// logfmtValue reads key's value from a logrus text line
// (time="…" level=error msg="…" hint="…").
func logfmtValue(line, key string) (string, bool) {
	i := 0
	for {
		j := strings.Index(line[i:], key+"=")
		if j < 0 {
			return "", false
		}
		j += i
		if j == 0 || line[j-1] == ' ' {
			i = j + len(key) + 1
			break
		}
		i = j + 1
	}
	rest := line[i:]
	if !strings.HasPrefix(rest, `"`) {
		v, _, _ := strings.Cut(rest, " ")
		return v, true
	}
	for k := 1; k < len(rest); k++ {
		switch rest[k] {
		case '\\':
			k++
		case '"':
			v, err := strconv.Unquote(rest[:k+1])
			if err != nil {
				return rest[1:k], true
			}
			return v, true
		}
	}
	return rest[1:], true
}
