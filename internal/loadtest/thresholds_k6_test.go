package loadtest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// runK6 runs k6 with args in dir and returns its exit code and output; an
// error other than a non-zero exit fails the test.
func runK6(t *testing.T, k6, dir string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), k6, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "K6_NO_USAGE_REPORT=true")...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("k6 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestValidateThresholdsAgreesWithK6 asks k6 of each major version whether
// each threshold of validationCases is valid: k6 exits with 104 for an
// invalid one before running anything.
func TestValidateThresholdsAgreesWithK6(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6 testenv.K6Build) {
		t.Parallel()
		validateThresholdsWithK6(t, k6)
	})
}

func validateThresholdsWithK6(t *testing.T, k6 testenv.K6Build) {
	dir := t.TempDir()
	script := `export const options = { iterations: 1, thresholds: JSON.parse(__ENV.TH) };
export default function () {}
`
	if err := os.WriteFile(filepath.Join(dir, "script.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range validationCases {
		t.Run(tt.metric+" "+tt.expr, func(t *testing.T) {
			t.Parallel()
			th, err := json.Marshal(map[string][]string{tt.metric: {tt.expr}})
			if err != nil {
				t.Fatal(err)
			}
			code, out := runK6(t, k6.Path, dir, []string{"TH=" + string(th)},
				"run", "--quiet", "--summary-mode=disabled", "--address=", "script.js")
			if code != 0 && code != 99 && code != 104 {
				t.Fatalf("k6 exited with %d; want 0, 99 or 104\n%s", code, out)
			}
			want := tt.k6Valid || k6.Major == 1 && k6V1Accepts[tt.expr]
			if k6Valid := code != 104; k6Valid != want {
				t.Errorf("k6 %s says valid = %v; the test table says %v\n%s", k6.Version, k6Valid, want, out)
			}
		})
	}
}

// agreementScript sends 60 requests a second for 4 seconds, in turn three
// to /fast, two to /flaky (every fourth answers 500) and one to /slow (120
// ms), with thresholds of which some pass and some fail.
const agreementScript = `
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const calls = new Counter('my_calls');
const never = new Rate('my_never');

export const options = {
  scenarios: {
    load: { executor: 'constant-arrival-rate', rate: 60, timeUnit: '1s', duration: '4s', preAllocatedVUs: 20, maxVUs: 60 },
  },
  thresholds: {
    http_req_duration: ['p(95)<500', 'p(50)<50', 'p(90)<50', 'avg<10', 'max<100', 'min>=0', 'med<100',
      { threshold: 'p(99.9)<=1000', abortOnFail: true, delayAbortEval: '10s' }],
    'http_req_duration{name:slow}': ['p(95)>100', 'avg<110'],
    'http_req_duration{status:500}': ['max<100'],
    'http_req_duration{name:nothing}': ['p(95)<1'],
    http_req_failed: ['rate<0.01', { threshold: 'rate<0.5', abortOnFail: false }],
    'http_req_failed{name:fast}': ['rate==0'],
    http_reqs: ['count>100', 'count>100000', 'rate>1'],
    checks: ['rate>0.99', 'rate>0.5'],
    'checks{check:status is 200}': ['rate>0.8'],
    vus_max: ['value>=20'],
    my_calls: ['count>100'],
    my_never: ['rate<0.1'],
  },
};

const names = ['fast', 'fast', 'fast', 'flaky', 'flaky', 'slow'];

export default function () {
  const name = names[exec.scenario.iterationInTest % names.length];
  const res = http.get(__ENV.TARGET + '/' + name, { tags: { name: name } });
  check(res, { 'status is 200': (r) => r.status === 200 });
  calls.add(1);
}
`

// TestThresholdsAgreeWithK6 runs real k6 of each major version with
// thresholds and checks that every threshold passes or fails in the summary
// as in k6's verdict, and that the observed values agree.
func TestThresholdsAgreeWithK6(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6 testenv.K6Build) {
		t.Parallel()
		thresholdsAgreeWithK6(t, k6.Path)
	})
}

func thresholdsAgreeWithK6(t *testing.T, k6 string) {
	var flaky atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select { // the latency under test: an answer 120 ms late, or none if k6 gave up
			case <-time.After(120 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		case "/flaky":
			if flaky.Add(1)%4 == 0 {
				http.Error(w, "injected failure", http.StatusInternalServerError)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "script.js"), []byte(agreementScript), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runK6(t, k6, dir, nil, "inspect", "script.js")
	if code != 0 {
		t.Fatalf("k6 inspect exited with %d\n%s", code, out)
	}
	th, err := loadtest.ThresholdsFromInspect([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := th["http_req_duration"]; len(got) != 8 || got[7] != "p(99.9)<=1000" {
		t.Fatalf("thresholds of http_req_duration from k6 inspect = %q; want 8 ending with the object form's p(99.9)<=1000", got)
	}

	code, out = runK6(t, k6, dir, []string{"TARGET=" + srv.URL},
		"run", "--quiet", "--address=", "--out", "json=out.json.gz", "--summary-export=export.json",
		"--summary-trend-stats=avg,min,med,max,p(50),p(90),p(95),p(99.9)", "script.js")
	if code != 99 {
		t.Fatalf("k6 run exited with %d; want 99, as some thresholds fail\n%s", code, out)
	}
	s, err := loadtest.SummarizeFileWith(filepath.Join(dir, "out.json.gz"), loadtest.Options{Thresholds: th})
	if err != nil {
		t.Fatal(err)
	}

	allOK := true
	for _, r := range s.Thresholds {
		allOK = allOK && r.OK
	}
	if k6OK := code == 0; allOK != k6OK {
		t.Errorf("k6 exited with %d, but every threshold passed = %v in the summary", code, allOK)
	}

	// In the summary export, a threshold's boolean is true when it FAILED.
	var export struct {
		Metrics map[string]map[string]json.RawMessage `json:"metrics"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "export.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &export); err != nil {
		t.Fatal(err)
	}
	k6Failed := map[[2]string]bool{}
	for metric, fields := range export.Metrics {
		var failed map[string]bool
		if raw, ok := fields["thresholds"]; ok {
			if err := json.Unmarshal(raw, &failed); err != nil {
				t.Fatalf("thresholds of %s in the summary export: %v", metric, err)
			}
		}
		for expr, f := range failed {
			k6Failed[[2]string{metric, expr}] = f
		}
	}
	if len(s.Thresholds) != len(k6Failed) {
		t.Errorf("the summary has %d thresholds; k6's export %d", len(s.Thresholds), len(k6Failed))
	}
	passed, failed := 0, 0
	for _, r := range s.Thresholds {
		f, ok := k6Failed[[2]string{r.Metric, r.Expression}]
		switch {
		case !ok:
			t.Errorf("%s %s is not in k6's export", r.Metric, r.Expression)
		case r.OK == f:
			t.Errorf("%s %s: ok = %v (value %v); k6 says failed = %v", r.Metric, r.Expression, r.OK, r.Value, f)
		case r.OK:
			passed++
		default:
			failed++
		}
	}
	if passed < 5 || failed < 5 {
		t.Errorf("%d thresholds passed and %d failed; the run should give several of each", passed, failed)
	}

	// The observed values: trends' statistics within 1%, rates and counts
	// exactly; a counter's rate differs by k6's duration.
	number := func(metric, key string) (float64, bool) {
		var v float64
		raw, ok := export.Metrics[metric][key]
		return v, ok && json.Unmarshal(raw, &v) == nil
	}
	for _, r := range s.Thresholds {
		method, _, _ := strings.Cut(strings.TrimSpace(r.Expression), "<")
		method, _, _ = strings.Cut(method, ">")
		method, _, _ = strings.Cut(method, "=")
		key, tolerance := method, 0.01
		var typ string
		if m := s.Metrics[r.Metric]; m != nil {
			typ = m.Type
		}
		switch {
		case method == "count" || r.Metric == "vus_max":
			tolerance = 0
		case method == "rate" && typ == loadtest.TypeRate:
			key, tolerance = "value", 0
		case method == "rate":
			tolerance = 0.05
		}
		want, ok := number(r.Metric, key)
		if !ok {
			if r.Samples != 0 {
				t.Errorf("%s %s: no %s in k6's export", r.Metric, r.Expression, key)
			}
			continue
		}
		t.Logf("%s %s: %s = %v; k6 %v", r.Metric, r.Expression, key, r.Value, want)
		if diff := math.Abs(r.Value - want); diff > tolerance*math.Abs(want) {
			t.Errorf("%s %s: value %v; k6 reports %s = %v (%.3f%% off)", r.Metric, r.Expression, r.Value, key, want, 100*diff/math.Abs(want))
		}
	}
	v := loadtest.Judge(s, nil, loadtest.FailOn{Thresholds: true})
	md := loadtest.Markdown(s, nil, loadtest.MarkdownOptions{FailOn: loadtest.FailOn{Thresholds: true}})
	if want := fmt.Sprintf("**❌ Load test failed:** %d of %d thresholds failed", failed, passed+failed); v.Passed || !strings.HasPrefix(md, want) {
		t.Errorf("the Markdown summary starts\n%.200s\nwant\n%s", md, want)
	}
	if !reflect.DeepEqual(s.Metrics["http_req_duration{name:nothing}"], &loadtest.MetricStats{Type: loadtest.TypeTrend}) {
		t.Errorf("http_req_duration{name:nothing} = %+v; want an empty trend", s.Metrics["http_req_duration{name:nothing}"])
	}
}
