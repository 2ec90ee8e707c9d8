// Package clock is the time deploys wait on: the wall clock in production, and in tests a
// simulated cloud's virtual clock, so that a 15-minute rollout is watched in milliseconds.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or returns ctx's error when it ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

// Real is the wall clock.
type Real struct{}

// Now is time.Now.
func (Real) Now() time.Time { return time.Now() }

// Sleep waits d or until ctx ends.
func (Real) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Virtual is a simulated clock: Sleep moves it forward with Advance instead of waiting (a fake
// server's Now and Advance), and Before, when set, runs first (a test acting mid-deploy).
type Virtual struct {
	NowFunc func() time.Time
	Advance func(time.Duration)
	Before  func()
}

// Now is NowFunc's reading.
func (v Virtual) Now() time.Time { return v.NowFunc() }

// Sleep runs Before and advances the clock by d, unless ctx has ended.
func (v Virtual) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if v.Before != nil {
		v.Before()
	}
	v.Advance(d)
	return nil
}
