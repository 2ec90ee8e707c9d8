package acceptance

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/testenv"
)

const loadtestWorkflow = `name: load
on: push
jobs:
  load:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "@K6DIR@" >> "$GITHUB_PATH"
      - id: load
        uses: ./actions/loadtest
        with:
          url: @URL@
          rate: "20"
          duration: 2s
          thresholds: http_req_failed:rate<0.01
      - if: always()
        run: echo "verdict=${{ steps.load.outputs.verdict }} p95=${{ steps.load.outputs.p95 }} rps=${{ steps.load.outputs.rps }} report=${{ steps.load.outputs.report-path }}"
`

// TestLoadtestActionUnderAct runs actions/loadtest as a consumer's workflow
// would against a local server: k6 from PATH, the outputs in the next step,
// the job summary, and the result files handed to the artifact upload.
func TestLoadtestActionUnderAct(t *testing.T) {
	k6Dir := testenv.K6Of(t, testenv.K6Majors[0]).PathDir(t)
	for _, tc := range []struct {
		name    string
		status  int
		ok      bool
		verdict string
		summary string
	}{
		{"passing", http.StatusOK, true, "pass", "**✅ Load test passed: all 1 threshold passed"},
		{"failing threshold", http.StatusInternalServerError, false, "fail", "**❌ Load test failed:** 1 of 1 threshold failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
			defer srv.Close()
			// act workaround: act clones every action a workflow uses, and this
			// machine reaches no GitHub; actions/upload-artifact is replaced by a
			// local action that copies what it is given, so the test sees exactly
			// the files the real upload would get.
			uploaded := t.TempDir()
			wf := strings.NewReplacer("@K6DIR@", k6Dir, "@URL@", srv.URL+"/").Replace(loadtestWorkflow)
			r := runAct(t, repoCopy(t, wf), "--local-repository", uploadArtifactRef+"="+uploadStandIn(t, uploaded))
			if r.OK() != tc.ok {
				t.Fatalf("job succeeded=%v, want %v:\n%s", r.OK(), tc.ok, r)
			}
			if got := r.Output("load/load", "load", "verdict"); got != tc.verdict {
				t.Errorf("output verdict of step load: %q, want %q", got, tc.verdict)
			}
			expectRun(t, tc.name, r, []string{"verdict=" + tc.verdict}, tc.summary)
			for _, f := range []string{"summary.json", "report.html", "raw.json.gz"} {
				if st, err := os.Stat(filepath.Join(uploaded, "loadtest-report", f)); err != nil || st.Size() == 0 {
					t.Errorf("artifact loadtest-report lacks %s: %v", f, err)
				}
			}
		})
	}
}
