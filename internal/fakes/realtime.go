package fakes

import (
	"context"
	"time"
)

// RunRealtime moves a fake's virtual clock with the wall clock until ctx ends: every step it
// advances by the wall time elapsed since the last step, and once more when ctx ends, so the two
// clocks keep the distance they had when it was called. It is for benchmarks and real-time runs
// (a CLI or act against the fake); tests call the fake's Advance, which never sleeps.
func RunRealtime(ctx context.Context, step time.Duration, advance func(time.Duration)) {
	tick := time.NewTicker(step)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			advance(time.Since(last))
			return
		case <-tick.C:
			now := time.Now()
			advance(now.Sub(last))
			last = now
		}
	}
}
