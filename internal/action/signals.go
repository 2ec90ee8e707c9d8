package action

import (
	"context"
	"os/signal"
	"syscall"
)

// notifyContext cancels ctx on SIGINT or SIGTERM, which is how a cancelled
// workflow run stops a step.
func notifyContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}
