package loadtest_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gantry-dev/gantry/internal/loadtest"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// k6Script sends 50 requests a second for 3 seconds, checking each answer.
const k6Script = `
import http from 'k6/http';
import { check } from 'k6';

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: 50,
      timeUnit: '1s',
      duration: '3s',
      preAllocatedVUs: 5,
      maxVUs: 20,
    },
  },
};

export default function () {
  const res = http.get(__ENV.TARGET);
  check(res, { 'status is 200': (r) => r.status === 200 });
}
`

// TestSummarizeRealK6Run runs k6 of each major version against a server
// that answers every fifth request with a 500 and compares the summary with
// what the server saw.
func TestSummarizeRealK6Run(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6 testenv.K6Build) {
		t.Parallel()
		summarizeRealK6Run(t, k6.Path)
	})
}

func summarizeRealK6Run(t *testing.T, k6 string) {

	var mu sync.Mutex
	var served, failed int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		served++
		fail := served%5 == 0
		if fail {
			failed++
		}
		mu.Unlock()
		if fail {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()

	dir := t.TempDir()
	script := filepath.Join(dir, "script.js")
	if err := os.WriteFile(script, []byte(k6Script), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.json.gz")
	cmd := exec.CommandContext(t.Context(), k6, "run", "--quiet", "--address=", "--out", "json="+out, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true", "TARGET="+srv.URL+"/hello")
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("k6 run: %v\n%s", err, output)
	}
	srv.Close() // every request has been answered
	mu.Lock()
	defer mu.Unlock()

	s, err := loadtest.SummarizeFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if served < 140 || failed == 0 {
		t.Fatalf("the server saw %d requests, %d of them failed; want about 150 with some failures", served, failed)
	}
	reqs := s.Metrics["http_reqs"]
	if reqs == nil || reqs.Type != loadtest.TypeCounter || reqs.Count != int64(served) || reqs.Sum != float64(served) {
		t.Errorf("http_reqs = %+v; want a counter of the %d requests the server saw", reqs, served)
	}
	if got := s.ErrorsByStatus; len(got) != 1 || got["500"] != failed {
		t.Errorf("errors by status = %v; want only 500: %d", got, failed)
	}
	if len(s.Checks) != 1 || s.Checks[0].Name != "status is 200" || s.Checks[0].Passes != int64(served-failed) || s.Checks[0].Fails != int64(failed) {
		t.Errorf("checks = %+v; want status is 200 with %d passes and %d fails", s.Checks, served-failed, failed)
	}
	if f := s.Metrics["http_req_failed"]; f == nil || f.Type != loadtest.TypeRate || f.Count != int64(served) || f.Rate != float64(failed)/float64(served) {
		t.Errorf("http_req_failed = %+v; want a rate of %d/%d", f, failed, served)
	}
	if d := s.Metrics["http_req_duration"]; d == nil || d.Type != loadtest.TypeTrend || d.Count != int64(served) || !(d.Min <= d.P50 && d.P50 <= d.P99 && d.P99 <= d.Max) {
		t.Errorf("http_req_duration = %+v; want a trend of %d ordered samples", d, served)
	}
	// An arrival-rate executor's VUs are active only during iterations, so
	// the vus gauge is often 0 here; vus_max shows the pre-allocated ones.
	if v := s.Metrics["vus_max"]; v == nil || v.Type != loadtest.TypeGauge || v.Value < 5 {
		t.Errorf("vus_max = %+v; want a gauge of at least 5", v)
	}
	var grouped int64
	for _, g := range s.Groups {
		if g.Name != srv.URL+"/hello" || g.Method != "GET" || g.Scenario != "steady" || (g.Status != "200" && g.Status != "500") {
			t.Errorf("unexpected group %+v", g)
		}
		grouped += g.Count
	}
	if len(s.Groups) != 2 || grouped != int64(served) {
		t.Errorf("groups = %+v; want a 200 and a 500 group of %d requests in all", s.Groups, served)
	}

	// The 3 seconds of load straddle 3 or 4 wall-clock seconds; the ones
	// between the first and the last are full.
	var busy []loadtest.SecondStats
	var total int64
	for _, sec := range s.Series {
		if sec.Requests > 0 {
			busy = append(busy, sec)
			total += sec.Requests
		}
	}
	if len(busy) < 3 || len(busy) > 4 || total != int64(served) {
		t.Fatalf("series = %+v; want 3 or 4 seconds with %d requests in all", s.Series, served)
	}
	for _, sec := range busy[1 : len(busy)-1] {
		if sec.Requests < 40 || sec.Requests > 60 || sec.P50 <= 0 || sec.P99 < sec.P50 || sec.VUs > 20 || sec.ErrorRate <= 0 || sec.ErrorRate >= 0.5 {
			t.Errorf("second %+v; want about 50 requests, latencies, at most 20 VUs and an error rate near 0.2", sec)
		}
	}
}
