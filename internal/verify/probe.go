package verify

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gantry-dev/gantry/internal/clock"
)

// ProbeResult is what a probe saw.
type ProbeResult struct {
	Total, Failed int
	Last          string // the last failure: an error or a 5xx status
}

// Rate is the share of failed requests.
func (r ProbeResult) Rate() float64 { return float64(r.Failed) / float64(max(r.Total, 1)) }

// Check fails when more than maxRate of the requests failed, naming what and the last failure.
func (r ProbeResult) Check(what string, maxRate float64) error {
	if r.Rate() > maxRate {
		return fmt.Errorf("%s: %d of %d requests failed (%.1f%%, limit %.1f%%), last: %s", what, r.Failed, r.Total, r.Rate()*100, maxRate*100, r.Last)
	}
	return nil
}

// Probe sends GET url every interval for d on clk and counts the requests that failed (no
// answer, or a 5xx status): the error-rate gate of a canary step.
func Probe(ctx context.Context, client *http.Client, clk clock.Clock, url string, interval, d time.Duration) (ProbeResult, error) {
	if client == nil {
		client = http.DefaultClient
	}
	var r ProbeResult
	for end := clk.Now().Add(d); clk.Now().Before(end); {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return r, err
		}
		resp, err := client.Do(req)
		r.Total++
		switch {
		case err != nil:
			r.Failed++
			r.Last = Text(unwrapURLError(err).Error(), maxDetail)
		case resp.StatusCode >= 500:
			r.Failed++
			r.Last = Text(resp.Status, maxDetail) // the reason phrase is the service's text
		}
		if resp != nil {
			resp.Body.Close()
		}
		if err := clk.Sleep(ctx, interval); err != nil {
			return r, err
		}
	}
	return r, nil
}
