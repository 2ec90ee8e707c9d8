package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// ErrConnectionLost is matched (errors.Is) by errors of commands whose
// connection to the host went away.
var ErrConnectionLost = errors.New("connection lost")

type lostError struct{ msg string }

func (e *lostError) Error() string        { return e.msg }
func (e *lostError) Is(target error) bool { return target == ErrConnectionLost }

// Lost makes an error that errors.Is recognises as ErrConnectionLost.
func Lost(format string, args ...any) error {
	return &lostError{msg: fmt.Sprintf(format, args...)}
}

// Redial is a Host that opens a new connection when the last one was lost:
// the command that was cut still fails (it may or may not have run), but
// what follows, such as rolling back and releasing the deploy lock, reaches
// the host again.
type Redial struct {
	dial func(context.Context) (Host, error)
	mu   sync.Mutex
	h    Host
	name string
	// Logf reports reconnections; nil is silent.
	Logf func(string, ...any)
}

// NewRedial connects with dial and keeps dial to reconnect.
func NewRedial(ctx context.Context, dial func(context.Context) (Host, error)) (*Redial, error) {
	h, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	return &Redial{dial: dial, h: h, name: h.String()}, nil
}

func (r *Redial) current(ctx context.Context) (Host, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h != nil {
		return r.h, nil
	}
	h, err := r.dial(ctx)
	if err != nil {
		return nil, Lost("reconnect to %s: %v", r.name, err)
	}
	if r.Logf != nil {
		r.Logf("reconnected to %s", r.name)
	}
	r.h = h
	return h, nil
}

// drop forgets h after it lost its connection, so the next call redials.
func (r *Redial) drop(h Host, err error) {
	if !errors.Is(err, ErrConnectionLost) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == h {
		_ = h.Close()
		r.h = nil
	}
}

// Run runs argv on the current connection, reconnecting first if the last
// one was lost.
func (r *Redial) Run(ctx context.Context, argv []string, stdin io.Reader) ([]byte, error) {
	h, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	out, err := h.Run(ctx, argv, stdin)
	r.drop(h, err)
	return out, err
}

// DialContext dials from the host, reconnecting first if needed.
func (r *Redial) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	h, err := r.current(ctx)
	if err != nil {
		return nil, err
	}
	c, err := h.DialContext(ctx, network, addr)
	r.drop(h, err)
	return c, err
}

// String names the host.
func (r *Redial) String() string { return r.name }

// Close closes the current connection.
func (r *Redial) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		return nil
	}
	err := r.h.Close()
	r.h = nil
	return err
}
