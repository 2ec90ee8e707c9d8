package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
	"golang.org/x/crypto/ssh"
)

// Run runs argv on the host through the login shell, each element quoted
// (see Command), and returns its stdout. A non-zero exit is a
// *remote.ExitError; for a command killed by a signal its Code is 128+N.
// When ctx ends, the command's process group gets SIGTERM, then SIGKILL
// after remote.CancelGrace, the session is closed, and Run returns ctx's
// error.
func (c *Client) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%s: run: empty command", c)
	}
	cmd, err := Command(argv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c, short(argv), context.Cause(ctx))
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %s: %w", c, short(argv), context.Cause(ctx))
		}
		return nil, c.failed(argv, err)
	}
	defer sess.Close()

	// The login shell reports its pid (the session's process group: sshd
	// starts it with setsid), then execs the command in its place, so
	// canceling can signal the whole group even where the server refuses
	// SSH signal requests (OpenSSH does for root logins).
	var stdout, stderr bytes.Buffer
	tap := newPIDTap(&stderr)
	sess.Stdout, sess.Stderr = &stdout, tap
	line := "echo " + tap.marker + "$$ >&2; "
	if stdin != nil {
		sess.Stdin = stdin
		line += "exec " + cmd
	} else {
		// The session's stdin stays open, unused, while Run waits; a
		// watchdog on the host reads it and stops the command's process
		// group when it ends without Run's say: the runner was killed
		// or the connection dropped.
		keep, err := sess.StdinPipe()
		if err != nil {
			return nil, c.failed(argv, err)
		}
		defer keep.Close()
		line += watchdog + "exec " + cmd + " </dev/null 3<&-"
	}
	if err := sess.Start(line); err != nil {
		return nil, c.failed(argv, err)
	}
	finished := make(chan struct{})
	go func() {
		err = sess.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		c.stop(sess, tap, finished)
		return nil, fmt.Errorf("%s: %s: %w", c, short(argv), context.Cause(ctx))
	}
	tap.flush()
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), nil
	case errors.As(err, &exitErr):
		msg := stderr.String()
		if sig := exitErr.Signal(); sig != "" {
			msg += "\n(killed by SIG" + sig + ")"
		}
		return stdout.Bytes(), &remote.ExitError{Host: c.name, Argv: argv, Code: exitErr.ExitStatus(), Stderr: msg}
	}
	return stdout.Bytes(), c.failed(argv, err)
}

// watchdog is the shell text that, started before the command, waits for
// the session's stdin to end and then stops the session's process group
// (SIGTERM, SIGKILL remote.CancelGrace later). Run keeps stdin open until
// the command has finished, so only a runner that died or a connection that
// dropped ends it early; a command that already finished has left the group.
const watchdog = `exec 3<&0; { trap '' TERM; cat <&3 >/dev/null 2>&1; kill -0 $$ 2>/dev/null || exit 0; kill -s TERM -- -$$ 2>/dev/null; sleep 2; kill -s KILL -- -$$ 2>/dev/null; } </dev/null >/dev/null 2>&1 & `

// failed explains an error that is not the command's exit: usually the
// connection went away.
func (c *Client) failed(argv []string, err error) error {
	select {
	case <-c.done:
	case <-time.After(lostWait):
	}
	c.mu.Lock()
	lost, closing := c.lostErr, c.closing
	c.mu.Unlock()
	switch {
	case closing:
		return fmt.Errorf("%s: %s: the connection was closed", c, short(argv))
	case lost != nil:
		return remote.Lost("connection to %s lost during %s (%v); the command may or may not have finished on the host", c.addr, short(argv), lost)
	}
	return fmt.Errorf("%s: %s: %w", c, short(argv), err)
}

// newSession opens a session, giving up when ctx ends (opening waits for
// the server, which may not be answering).
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		sess *ssh.Session
		err  error
	}
	opened := make(chan result, 1)
	go func() {
		s, err := c.conn.NewSession()
		opened <- result{s, err}
	}()
	select {
	case r := <-opened:
		return r.sess, r.err
	case <-ctx.Done():
		go func() {
			if r := <-opened; r.sess != nil {
				r.sess.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// stop ends a running command: SIGTERM to its process group, SIGKILL if it
// is still running after remote.CancelGrace. The group gets one SIGTERM
// only: a second one makes some programs (docker compose) abort instead of
// shutting down cleanly.
func (c *Client) stop(sess *ssh.Session, tap *pidTap, finished <-chan struct{}) {
	defer sess.Close()
	pid := tap.wait(remote.CancelGrace, finished, c.done)
	if pid > 0 {
		c.killGroup(pid, "TERM")
	} else {
		// The command has not reported its pid (it may not have started);
		// ask sshd instead.
		sess.Signal(ssh.SIGTERM)
	}
	select {
	case <-finished:
		return
	case <-c.done:
		return
	case <-time.After(remote.CancelGrace):
	}
	sess.Signal(ssh.SIGKILL)
	if pid > 0 {
		c.killGroup(pid, "KILL")
	}
}

// killGroup sends sig to process group pid on the host, from a session of
// its own.
func (c *Client) killGroup(pid int, sig string) {
	ctx, cancel := context.WithTimeout(context.Background(), remote.CancelGrace)
	defer cancel()
	sess, err := c.newSession(ctx)
	if err != nil {
		return
	}
	defer sess.Close()
	done := make(chan error, 1)
	go func() { done <- sess.Run("kill -s " + sig + " -- -" + strconv.Itoa(pid)) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// pidTap passes a command's stderr through, minus the line with the pid
// the login shell prints first (after whatever its startup files print).
// The line starts with a random marker, so no output can pose as it.
type pidTap struct {
	marker string
	w      io.Writer

	mu    sync.Mutex
	pid   int
	found chan struct{} // closed once the pid line went by
	head  []byte        // stderr before the pid line, up to a newline
}

func newPIDTap(w io.Writer) *pidTap {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	return &pidTap{marker: "gantry-pid-" + hex.EncodeToString(nonce) + ":", w: w, found: make(chan struct{})}
}

func (p *pidTap) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isFound() {
		return p.w.Write(b)
	}
	p.head = append(p.head, b...)
	for !p.isFound() {
		i := bytes.IndexByte(p.head, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := p.head[:i+1]
		if rest, ok := bytes.CutPrefix(line[:i], []byte(p.marker)); ok {
			p.pid, _ = strconv.Atoi(string(rest))
			close(p.found)
		} else if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
		p.head = p.head[i+1:]
	}
	_, err := p.w.Write(p.head)
	p.head = nil
	return len(b), err
}

func (p *pidTap) isFound() bool {
	select {
	case <-p.found:
		return true
	default:
		return false
	}
}

// flush writes out what is held back when the pid line never came, e.g.
// when the login shell failed.
func (p *pidTap) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.Write(p.head)
	p.head = nil
}

// wait returns the pid once it is known, or 0 after timeout or when the
// command or connection ends first.
func (p *pidTap) wait(timeout time.Duration, finished, dead <-chan struct{}) int {
	select {
	case <-p.found:
	case <-finished:
		return 0
	case <-dead:
		return 0
	case <-time.After(timeout):
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}
