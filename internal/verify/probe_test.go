package verify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/clock"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		failEvery int64 // every nth request answers 503; 0 never
		maxRate   float64
		wantFail  bool
	}{
		{"all good", 0, 0.01, false},
		{"one in four fails", 4, 0.01, true},
		{"one in four within a 30% limit", 4, 0.30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if i := n.Add(1); tc.failEvery > 0 && i%tc.failEvery == 0 {
					http.Error(w, "down", http.StatusServiceUnavailable)
				}
			}))
			defer srv.Close()
			now := time.Unix(0, 0)
			clk := clock.Virtual{NowFunc: func() time.Time { return now }, Advance: func(d time.Duration) { now = now.Add(d) }}
			res, err := Probe(context.Background(), srv.Client(), clk, srv.URL, 100*time.Millisecond, 4*time.Second)
			if err != nil || res.Total != 40 {
				t.Fatalf("Probe = %+v, %v; want 40 requests in 4 s at 100 ms", res, err)
			}
			err = res.Check("canary at 10%", tc.maxRate)
			if (err != nil) != tc.wantFail {
				t.Errorf("Check = %v, want failure %v (%d of %d failed)", err, tc.wantFail, res.Failed, res.Total)
			}
			if err != nil && !strings.Contains(err.Error(), "10 of 40 requests failed (25.0%, limit 1.0%), last: 503 Service Unavailable") {
				t.Errorf("message: %v", err)
			}
		})
	}
}
