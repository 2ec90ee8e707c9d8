// Package lock is the deploy lock of a target: one object in the Docker
// engine (a Compose project) or in the swarm (a stack), created atomically by
// name and removed by id, holding who deploys what and why, and kept alive by
// a heartbeat. Every deployer with docker access to the target takes the
// same lock, whatever its SSH user, home or working directory.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/remote"
)

// Defaults for Options.
const (
	DefaultWait = 10 * time.Minute
	// NoWait as Options.Wait fails at once when someone else holds the lock.
	NoWait time.Duration = -1
	// DefaultStale is how long a holder's heartbeat may stay unchanged
	// before the holder is taken for dead and its lock taken over.
	DefaultStale     = 30 * time.Second
	DefaultHeartbeat = 5 * time.Second
	DefaultPoll      = 2 * time.Second
	// minBeatsPerStale keeps Stale several heartbeats long, so that one
	// slow beat never makes a live holder look dead.
	minBeatsPerStale = 3
)

// ErrLost is the cause of a Context's end when the lock was taken over or
// removed while held: the deploy must stop changing the target.
var ErrLost = errors.New("the deploy lock was lost")

// Info says who holds a lock.
type Info struct {
	ID      string    `json:"id"`
	Actor   string    `json:"actor"`
	RunURL  string    `json:"run_url,omitempty"`
	SHA     string    `json:"sha,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Machine string    `json:"machine,omitempty"` // where the holder runs: a runner or a laptop
	Started time.Time `json:"started"`
}

func (i Info) String() string {
	s := i.Actor
	if s == "" {
		s = "someone"
	}
	if i.SHA != "" {
		s += " deploying " + commit.Short(i.SHA)
	}
	if i.RunURL != "" {
		s += " (" + i.RunURL + ")"
	} else if i.Machine != "" {
		s += " (from " + i.Machine + ")"
	}
	if i.Reason != "" {
		s += ", reason: " + strings.Join(strings.Fields(i.Reason), " ")
	}
	if !i.Started.IsZero() {
		s += ", since " + i.Started.UTC().Format("15:04:05 UTC")
	}
	return s
}

// Options controls acquiring a lock.
type Options struct {
	// Wait is how long to wait for another holder; 0 means DefaultWait and
	// NoWait not at all.
	Wait time.Duration
	// Stale is how long a holder's heartbeat may stay unchanged, as seen by
	// a waiter, before the holder is taken for dead and its lock taken
	// over; 0 means DefaultStale. It is raised to three heartbeats at least.
	Stale     time.Duration
	Heartbeat time.Duration
	Poll      time.Duration
	Logf      func(string, ...any)
	Warnf     func(string, ...any)
}

// HeldError is a lock that stayed held by a live holder for the whole wait.
type HeldError struct {
	Name   string
	Holder Info
	Waited time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("deploy lock %s is held by %s; waited %s (raise lock-wait, or wait for that deploy to finish)", e.Name, e.Holder, e.Waited.Round(time.Second))
}

// Lock is a held lock; Release it when the deploy ends.
type Lock struct {
	st   store
	o    Options
	id   string // the engine's id of the lock object
	Info Info

	stop, done chan struct{}
	lost       chan struct{}
	lostErr    error
	once       sync.Once
	lostOnce   sync.Once
}

// Acquire takes the lock of scope on h, waiting up to o.Wait while a live
// holder has it, and taking it over from a holder whose heartbeat stayed
// unchanged for o.Stale. Taking over removes exactly the instance that was
// watched (by its id), so two waiters can never both hold the lock.
func Acquire(ctx context.Context, h remote.Host, scope Scope, o Options, info Info) (*Lock, error) {
	if err := scope.valid(); err != nil {
		return nil, err
	}
	o = withDefaults(o)
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	info.ID = hex.EncodeToString(b)
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	st := newStore(h, scope)
	start := time.Now()
	var (
		seen       instance  // the holder as last seen
		seenAt     time.Time // when seen's heartbeat last changed, by our clock
		lastHolder string
		lastLog    time.Time
	)
	for {
		id, held, err := st.create(ctx, info)
		if err != nil {
			return nil, err
		}
		if held == nil {
			l := &Lock{st: st, o: o, id: id, Info: info, stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
			go l.heartbeat()
			return l, nil
		}
		now := time.Now()
		if held.ID != seen.ID || held.Beat != seen.Beat {
			seen, seenAt = *held, now
		} else if quiet := now.Sub(seenAt); quiet >= o.Stale {
			o.Warnf("taking over the deploy lock %s from %s: its heartbeat has not changed for %s (%s; lock-stale %s)", st, held.Owner, quiet.Round(time.Second), held.lastBeat(), o.Stale)
			// By id: if another waiter took over first, this removes nothing.
			if err := st.remove(ctx, held.ID); err != nil && !errors.Is(err, errGone) {
				return nil, err
			}
			seen = instance{}
			continue
		}
		if s := held.Owner.String(); s != lastHolder || now.Sub(lastLog) > 30*time.Second {
			o.Logf("waiting for the deploy lock %s: held by %s", st, s)
			lastHolder, lastLog = s, now
		}
		if now.Sub(start) >= o.Wait {
			return nil, &HeldError{Name: st.String(), Holder: held.Owner, Waited: now.Sub(start)}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the deploy lock held by %s: %w", held.Owner, context.Cause(ctx))
		case <-time.After(o.Poll):
		}
	}
}

func withDefaults(o Options) Options {
	switch {
	case o.Wait == 0:
		o.Wait = DefaultWait
	case o.Wait < 0:
		o.Wait = 0
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Stale <= 0 {
		o.Stale = DefaultStale
	}
	if min := minBeatsPerStale * o.Heartbeat; o.Stale < min {
		o.Stale = min
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	return o
}

// heartbeat writes a new beat every o.Heartbeat. A beat that finds the lock
// object gone or replaced, or beats failing for longer than o.Stale (a
// waiter may have taken over meanwhile), mark the lock lost.
func (l *Lock) heartbeat() {
	defer close(l.done)
	t := time.NewTicker(l.o.Heartbeat)
	defer t.Stop()
	lastOK := time.Now()
	for n := 1; ; n++ {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		// A slow beat still counts if it lands before waiters give up.
		ctx, cancel := context.WithTimeout(context.Background(), l.o.Stale/2)
		err := l.st.beat(ctx, l.id, n)
		cancel()
		switch {
		case err == nil:
			lastOK = time.Now()
		case errors.Is(err, errGone):
			l.markLost(fmt.Errorf("%w: %s was removed or taken over by another deploy", ErrLost, l.st))
			return
		case time.Since(lastOK) > l.o.Stale:
			l.markLost(fmt.Errorf("%w: no heartbeat reached %s for %s (%v); another deploy may have taken it over", ErrLost, l.st, time.Since(lastOK).Round(time.Second), err))
			return
		}
	}
}

func (l *Lock) markLost(err error) {
	l.lostOnce.Do(func() {
		l.lostErr = err
		close(l.lost)
		l.o.Warnf("%v", err)
	})
}

// Lost is closed when the lock was lost while held.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Context returns a context that ends, with ErrLost as its cause, when the
// lock is lost, so that a deploy stops changing a target it no longer owns.
func (l *Lock) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-l.lost:
			cancel(l.lostErr)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

// Release stops the heartbeat and removes the lock object, by its id: a lock
// that was taken over is left to its new holder.
func (l *Lock) Release(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	err := l.st.remove(ctx, l.id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errGone):
		return fmt.Errorf("the deploy lock %s was taken over by another deploy; not releasing it", l.st)
	default:
		return fmt.Errorf("release the deploy lock %s: %w", l.st, err)
	}
}

// String names the lock object, e.g. container gantry-lock.shop.
func (l *Lock) String() string { return l.st.String() }

// WaitInput turns a lock-wait input into Options.Wait: 0 (a user's "0s") is NoWait.
func WaitInput(d time.Duration) time.Duration {
	if d <= 0 {
		return NoWait
	}
	return d
}
