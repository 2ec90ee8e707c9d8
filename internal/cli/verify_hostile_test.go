package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileBodies are texts a compromised or careless service puts in its
// health answers to command the runner or the job summary.
var hostileBodies = []string{
	"\n::error::pwned\n::add-mask::x\n",
	"%0A::error::pwned%0A::add-mask::x",
	"\r::warning::pwned\r\n::set-output name=result::verified",
	"ok ##[error]pwned ##[add-mask]x",
	"\u2028::error::pwned\u2029::add-mask::x\u0085",
	"\n| pwned | table |\n<img src=x onerror=alert(1)> [click](https://evil.example) ![i](https://evil.example/i.png)",
}

// gantryCommand matches the workflow commands gantry itself issues in a verify run.
var gantryCommand = regexp.MustCompile(`^::(error title=verify|warning|group|endgroup)::`)

// TestVerifyHostileHealthBodies: whatever a health endpoint answers, the
// only workflow commands in the step's log are gantry's own, each on one
// line; the outputs, read as the runner reads GITHUB_OUTPUT, hold a hex SHA
// or nothing and a bounded one-line version; the summary has no raw line,
// tag, link or table row of the service's.
func TestVerifyHostileHealthBodies(t *testing.T) {
	t.Parallel()
	jsonOf := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	for _, mode := range []struct {
		name   string
		status int
		body   func(h string) string
		args   []string
		result string
	}{
		{"version-field", 200, func(h string) string {
			return jsonOf(map[string]any{"build": map[string]string{"sha": h}, "version": h})
		}, []string{"--version-field", "build.sha"}, "unhealthy"},
		{"git_sha", 200, func(h string) string { return jsonOf(map[string]string{"git_sha": h, "version": h}) }, nil, "unhealthy"},
		{"version-field, a SHA then the text", 200, func(h string) string {
			return jsonOf(map[string]any{"build": map[string]string{"sha": previousSHA + h}})
		}, []string{"--version-field", "build.sha"}, "unhealthy"},
		{"raw 503", 503, func(h string) string { return h }, nil, "unhealthy"},
		{"verified, text in the version and a failed check", 200, func(h string) string {
			return jsonOf(map[string]string{"git_sha": deployedSHA, "version": h, "note": h}) + h
		}, []string{"--checks", "GET /health contains=zzz json.note=1", "--allow-failure=true"}, "verified-with-warnings"},
	} {
		for i, h := range hostileBodies {
			t.Run(fmt.Sprintf("%s/%d", mode.name, i), func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(mode.status)
					_, _ = w.Write([]byte(mode.body(h)))
				}))
				t.Cleanup(srv.Close)
				vars := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SHA": deployedSHA}
				timeout := "150ms" // the failing modes time out
				if mode.result != "unhealthy" {
					timeout = "10s"
				}
				args := append([]string{"verify", "--url", srv.URL, "--interval", "2ms", "--timeout", timeout}, mode.args...)
				r := runCLI(t, vars, nil, args...)
				if r.outputs["result"] != mode.result {
					t.Fatalf("result %q, want %q\n%s", r.outputs["result"], mode.result, r.log)
				}
				commands := 0
				for _, line := range strings.Split(r.log, "\n") {
					line = strings.TrimLeft(line, " \t") // the runner trims, too
					if strings.HasPrefix(line, "::") {
						commands++
						if !gantryCommand.MatchString(line) {
							t.Errorf("the service's text became a workflow command: %q", line)
						}
					}
					if strings.Contains(line, "##[") {
						t.Errorf("the service's text became a workflow command: %q", line)
					}
					if strings.ContainsAny(line, "\r\u2028\u2029\u0085") {
						t.Errorf("a log line holds a line break: %q", line)
					}
				}
				if commands == 0 {
					t.Errorf("no error or warning annotation:\n%s", r.log)
				}
				if s := r.outputs["served-sha"]; s != "" && !regexp.MustCompile(`^[0-9a-f]{7,40}$`).MatchString(s) {
					t.Errorf("served-sha %q is not lower-case hex", s)
				}
				v := r.outputs["served-version"]
				if strings.ContainsAny(v, "\r\n\u2028\u2029\u0085") || strings.Contains(v, "::") || strings.Contains(v, "##[") || utf8.RuneCountInString(v) > 128 {
					t.Errorf("served-version %q is not one bounded harmless line", v)
				}
				// Markdown the service wrote, unescaped: a line of its own, a
				// table row, an HTML tag, a link or image with hidden text.
				if m := regexp.MustCompile(`\n(::|\| pwned)|<img|[^\\]\]\(https://evil|##\[`).FindString(r.summary); m != "" {
					t.Errorf("summary holds %q of the service's:\n%s", m, r.summary)
				}
			})
		}
	}
}
