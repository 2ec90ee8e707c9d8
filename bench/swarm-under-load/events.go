package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// watchEvents starts recording the container events of every service of
// stack (web, or web-blue, web-green and gantry-edge), to place task
// starts, health and stops on a deploy's timeline.
func (b *bench) watchEvents(ctx context.Context, stack string) (*benchenv.Events, error) {
	return benchenv.WatchEvents(ctx, b.env, "com.docker.stack.namespace="+stack)
}

// edgeLog reads, from the log of the stack's edge container, the
// configuration changes since since, to place failed requests next to them.
func (b *bench) edgeLog(ctx context.Context, stack string, since time.Time) ([]benchenv.EdgeEntry, error) {
	id, err := b.exec(ctx, nil, "docker", "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name="+stack+"_gantry-edge")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(id)
	if len(ids) == 0 {
		return nil, fmt.Errorf("no running edge container in stack %s", stack)
	}
	return benchenv.EdgeLog(ctx, b.env, ids[0], since)
}
