package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// watchEvents starts recording the container events of project, to place
// container starts and exits on a deploy's timeline.
func (b *bench) watchEvents(ctx context.Context, project string) (*benchenv.Events, error) {
	return benchenv.WatchEvents(ctx, b.env, "com.docker.compose.project="+project)
}

// edgeLog reads from the log of project's edge container the configuration
// changes since since, so that failed requests can be placed next to them.
func (b *bench) edgeLog(ctx context.Context, project string, since time.Time) ([]benchenv.EdgeEntry, error) {
	id, err := b.exec(ctx, nil, "docker", "ps", "-q", "--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service=gantry-edge")
	if err != nil {
		return nil, err
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, fmt.Errorf("no edge container in %s", project)
	}
	return benchenv.EdgeLog(ctx, b.env, id, since)
}
