package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// CancelGrace is how long a canceled command has between SIGTERM and
// SIGKILL, on the local machine and over SSH.
const CancelGrace = 2 * time.Second

// Local is a Host on this machine: commands run from argv directly, with no
// shell in between.
type Local struct {
	// Name names the host in logs and errors; "local" when empty.
	Name string
}

var _ Host = (*Local)(nil)

// Run runs argv and returns its stdout. When ctx ends, the program gets
// SIGTERM, then SIGKILL after CancelGrace (its own children are not
// signaled; Run stops waiting for their output then too). A program that is
// not found is an *ExitError with code 127, as a shell over SSH reports it.
func (l *Local) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%s: run: empty command", l)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			return cmd.Process.Kill() // no SIGTERM on Windows
		}
		return nil
	}
	cmd.WaitDelay = CancelGrace
	err := cmd.Run()
	if ctx.Err() != nil && err != nil {
		return nil, fmt.Errorf("%s: %s: %w", l, strings.Join(argv, " "), context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), nil
	case errors.Is(err, exec.ErrNotFound):
		return stdout.Bytes(), &ExitError{Host: l.String(), Argv: argv, Code: 127, Stderr: argv[0] + ": command not found"}
	case errors.As(err, &exitErr):
		code := exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal()) // as a shell reports it
		}
		return stdout.Bytes(), &ExitError{Host: l.String(), Argv: argv, Code: code, Stderr: stderr.String()}
	default:
		return stdout.Bytes(), fmt.Errorf("%s: %s: %w", l, argv[0], err)
	}
}

// DialContext connects from this machine.
func (l *Local) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (l *Local) String() string {
	if l.Name == "" {
		return "local"
	}
	return l.Name
}

// Close does nothing: a Local holds no resources.
func (l *Local) Close() error { return nil }
