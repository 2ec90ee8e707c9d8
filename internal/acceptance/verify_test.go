package acceptance

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const verifyWorkflow = `name: consumer
on: push
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: verify
        continue-on-error: true
        uses: ./actions/verify
        with:
          url: URL
          sha: 1234567890abcdef1234567890abcdef12345678
          version-field: build.sha
          interval: 50ms
          timeout: 2s
      - env:
          RESULT: ${{ steps.verify.outputs.result }}
          SERVED_VERSION: ${{ steps.verify.outputs.served-version }}
        run: echo "result=$RESULT version=$SERVED_VERSION marker-x-marker"
`

// TestVerifyActionHostileBodyUnderAct runs actions/verify against a health
// endpoint whose answer holds workflow commands on lines of their own: the
// runner (act) sees no annotation but gantry's and masks nothing, and the
// next step reads the outputs as one harmless line.
func TestVerifyActionHostileBodyUnderAct(t *testing.T) {
	const hostile = "\n::error::pwned\n::add-mask::x\n%0A::error::pwned2"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"build": map[string]string{"sha": hostile}, "version": hostile})
	}))
	t.Cleanup(srv.Close)
	r := runAct(t, repoCopy(t, strings.ReplaceAll(verifyWorkflow, "URL", srv.URL)))
	if r.Step("/check", "verify") != "failure" {
		t.Fatalf("step verify: %q, want failure\n%s", r.Step("/check", "verify"), r)
	}
	if len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], "verify: ") {
		t.Errorf("annotations %q, want gantry's one, titled verify\n%s", r.Errors, r)
	}
	if !strings.Contains(r.Log, "result=unhealthy version=") || !strings.Contains(r.Log, "marker-x-marker") {
		t.Errorf("the next step did not print its line unmasked:\n%s", r)
	}
	if v := r.Output("/check", "verify", "served-version"); strings.Contains(v, "::") || strings.Contains(v, "\n") {
		t.Errorf("served-version %q", v)
	}
}
