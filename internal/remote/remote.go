// Package remote is where deploy commands run: a Host runs programs from
// fixed argv and opens TCP connections from the host's side, over SSH or on
// the local machine, so every deploy takes the same code path either way.
package remote

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
)

// Host runs commands on a deploy target.
type Host interface {
	// Run runs argv with stdin (nil for none) and returns its stdout. A
	// non-zero exit is an *ExitError carrying stderr. argv is never pasted
	// into a shell string unquoted: implementations quote every element.
	Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error)
	// DialContext opens a connection from the host, e.g. to a container's
	// address on a Docker network.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// String names the host for logs and errors, e.g. deploy@vm1:22.
	String() string
	Close() error
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Host   string
	Argv   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if lines := strings.Split(msg, "\n"); len(lines) > 20 {
		msg = strings.Join(lines[len(lines)-20:], "\n")
	}
	if msg == "" {
		msg = "(no output)"
	}
	return fmt.Sprintf("%s: %s exited %d: %s", e.Host, strings.Join(e.Argv, " "), e.Code, msg)
}
