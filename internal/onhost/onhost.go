// Package onhost is the session every deploy to a Docker host runs in, for
// the targets that deploy through the engine over SSH (a Compose project, a
// Swarm stack): the target's deploy lock taken as the first step, its history
// read at the start, and a record of how the deploy ended added at the end.
package onhost

import (
	"context"
	"fmt"

	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/remote"
)

// Options says whose target a session is for and how to lock it.
type Options struct {
	Scope lock.Scope   // lock.ComposeProject or lock.SwarmStack
	Lock  lock.Options // its Logf and Warnf default to the session's
	Who   lock.Info
	// HistoryPath is the target's history file on the host.
	HistoryPath string
	// Steps records the "lock" step; Logf and Warnf report progress.
	Steps       *deploy.Steps
	Logf, Warnf func(format string, args ...any)
}

// Session is one deploy under the target's lock.
type Session struct {
	h     remote.Host
	o     Options
	lk    *lock.Lock
	stops []func()
	// Current is the last successful deploy before this one, if any.
	Current *history.Entry
	// Cleanup is the context to undo or clean up with: it outlives the
	// run's cancellation (cleanup must finish), but ends when another
	// deploy took the lock over (then nothing may change the target).
	Cleanup context.Context
}

// Start takes the lock (the step "lock") and reads the history. The context
// it returns ends when ctx does or the lock is lost; the session must be
// ended with Finish.
func Start(ctx context.Context, h remote.Host, o Options) (*Session, context.Context, error) {
	var lk *lock.Lock
	err := o.Steps.Run(ctx, "lock", func(ctx context.Context) error {
		lo := o.Lock
		lo.Logf, lo.Warnf = o.Logf, o.Warnf
		var err error
		lk, err = lock.Acquire(ctx, h, o.Scope, lo, o.Who)
		return err
	})
	if err != nil {
		return nil, ctx, err
	}
	s := &Session{h: h, o: o, lk: lk}
	var stopCleanup, stop func()
	s.Cleanup, stopCleanup = lk.Context(context.WithoutCancel(ctx))
	ctx, stop = lk.Context(ctx)
	s.stops = []func(){stop, stopCleanup}
	entries, err := history.Read(ctx, h, o.HistoryPath)
	if err != nil {
		o.Warnf("%v", err)
	}
	if cur, ok := history.Current(entries); ok {
		s.Current = &cur
	}
	return s, ctx, nil
}

// Finish records e in the history (its Result is the deploy's outcome),
// releases the lock and returns err, saying so when ctx was cancelled.
func (s *Session) Finish(ctx context.Context, e history.Entry, err error) error {
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (the run was cancelled)", err)
	}
	if herr := history.Record(s.Cleanup, s.h, s.o.HistoryPath, e, err); herr != nil {
		s.o.Warnf("%v", herr)
	}
	for _, stop := range s.stops {
		stop()
	}
	if rerr := s.lk.Release(context.WithoutCancel(ctx)); rerr != nil {
		s.o.Warnf("%v", rerr)
	}
	return err
}
