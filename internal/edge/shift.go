package edge

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/verify"
)

// Shift moves a service's traffic to its new version in canary steps, the
// same way on every target with an edge: for each percentage of steps (100 is
// added when they do not end with it) it routes the upstreams weights gives,
// then, below 100, runs gate, whose error ends the shift with the traffic
// where it is (the caller sends it back).
func Shift(ctx context.Context, steps []int, weights func(pct int) []Upstream,
	route func(context.Context, []Upstream) error, gate func(ctx context.Context, pct int) error, logf func(pct int)) error {
	if len(steps) == 0 || steps[len(steps)-1] != 100 {
		steps = append(slices.Clone(steps), 100)
	}
	for _, pct := range steps {
		if err := route(ctx, weights(pct)); err != nil {
			return err
		}
		logf(pct)
		if pct == 100 {
			return nil
		}
		if err := gate(ctx, pct); err != nil {
			return err
		}
	}
	return nil
}

// probeEvery is how often a canary gate sends a request through the edge.
const probeEvery = 100 * time.Millisecond

// Gate sends requests to url through client (which reaches the edge) for
// interval and fails, naming what, when more than maxRate of them failed.
func Gate(ctx context.Context, client *http.Client, clk clock.Clock, url string, interval time.Duration, maxRate float64, what string, logf func(string, ...any)) error {
	res, err := verify.Probe(ctx, client, clk, url, probeEvery, interval)
	if err != nil {
		return err
	}
	logf("%s: %d of %d probe requests failed (%.1f%%)", what, res.Failed, res.Total, res.Rate()*100)
	return res.Check(fmt.Sprintf("%s: through the edge", what), maxRate)
}
