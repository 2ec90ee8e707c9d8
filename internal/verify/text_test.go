package verify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// injected is what a hostile service puts in its answers: workflow commands
// on lines of their own, in both syntaxes and with the runner's own escapes.
const injected = "\n::error::pwned\n::add-mask::x\n"

// hostileTexts are service texts that must come out as one harmless line.
var hostileTexts = []string{
	injected,
	"1234567" + injected,
	"v1\r::warning::pwned\r",
	"%0A::error::pwned%0A::add-mask::x",
	"ok ##[error]pwned ##[add-mask]x",
	"::set-output name=served-sha::evil",
	"a\u2028::error::pwned\u2029\u0085::error::x",
	"\u202e::rorre::\x00\x1b[31m",
	":::::",
	"\xff\xfe::error::x",
	strings.Repeat("::error::pwned\n", 1000),
}

// safe reports why s could act as more than text in a log line, an
// annotation or an output, or "" when it cannot.
func safe(s string, max int) string {
	switch {
	case strings.ContainsAny(s, "\r\n\u2028\u2029\u0085\x00"):
		return "a line break or NUL"
	case strings.Contains(s, "::"):
		return `"::"`
	case strings.Contains(s, "##["):
		return `"##["`
	case !utf8.ValidString(s):
		return "invalid UTF-8"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("%d characters, over %d", utf8.RuneCountInString(s), max)
	}
	return ""
}

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"v1.2.3", 128, "v1.2.3"},
		{injected, 128, `\n: :error: :pwned\n: :add-mask: :x\n`},
		{"%0A::error::x", 128, "%0A: :error: :x"},
		{"ok ##[error]x", 128, "ok ## [error]x"},
		{":::", 128, ": : :"},
		{"a\u2028b\u202ec\x1bd\xffe", 128, `a\u2028b\u202ec\x1bd\xffe`},
		{"héllo wörld ✅", 128, "héllo wörld ✅"},
		{strings.Repeat("a", 20), 10, strings.Repeat("a", 9) + "…"},
		{"\n\n\n", 3, `\n…`},
	} {
		if got := Text(tc.in, tc.max); got != tc.want {
			t.Errorf("Text(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
	for _, in := range append(hostileTexts, strings.Repeat("é:", 300)) {
		for _, max := range []int{1, 2, 7, 128, 400} {
			if why := safe(Text(in, max), max); why != "" {
				t.Errorf("Text(%.40q, %d) = %.80q has %s", in, max, Text(in, max), why)
			}
		}
	}
}

// TestWaitHostileBodies: whatever a health endpoint answers, through
// version-field or not, healthy or not, everything Wait returns or logs is
// one harmless line, the served SHA is lower-case hex or empty and the served
// version bounded.
func TestWaitHostileBodies(t *testing.T) {
	t.Parallel()
	type body struct {
		name, field string
		status      int
		body        func(s string) string
	}
	jsonOf := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	bodies := []body{
		{"git_sha", "", 200, func(s string) string { return jsonOf(map[string]string{"git_sha": s, "version": s}) }},
		{"version-field", "build.sha", 200, func(s string) string {
			return jsonOf(map[string]any{"build": map[string]string{"sha": s}, "version": s})
		}},
		{"version-field, a SHA then the injection", "build.sha", 200, func(s string) string {
			return jsonOf(map[string]any{"build": map[string]string{"sha": oldSHA + s}})
		}},
		{"raw body", "", 200, func(s string) string { return s }},
		{"unhealthy", "", 503, func(s string) string { return s }},
	}
	for _, b := range bodies {
		for i, text := range hostileTexts {
			t.Run(fmt.Sprintf("%s/%d", b.name, i), func(t *testing.T) {
				t.Parallel()
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(b.status)
					_, _ = w.Write([]byte(b.body(text)))
				}))
				t.Cleanup(srv.Close)
				var logged []string
				opts := fast(srv.URL, newSHA)
				opts.VersionField, opts.Timeout = b.field, 50e6
				opts.Logf = func(f string, args ...any) { logged = append(logged, fmt.Sprintf(f, args...)) }
				res, err := Wait(t.Context(), opts)
				if err == nil {
					t.Fatalf("Wait succeeded: %+v", res)
				}
				if res.ServedSHA != "" && SHA(res.ServedSHA) != res.ServedSHA {
					t.Errorf("served SHA %q is not lower-case hex", res.ServedSHA)
				}
				check := func(what, s string, max int) {
					if why := safe(s, max); why != "" {
						t.Errorf("%s has %s: %q", what, why, s)
					}
				}
				check("served version", res.ServedVersion, MaxVersionLen)
				check("error", err.Error(), 2000)
				check("last", res.Last, maxDetail)
				for _, c := range res.Changes {
					check("detail", c.Detail, maxDetail)
				}
				for _, l := range logged {
					check("log line", l, 2000)
				}
			})
		}
	}
}

// TestRunChecksHostileAnswers: what a contract check reports of an answer
// is one harmless line too.
func TestRunChecksHostileAnswers(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		_, _ = w.Write([]byte(`{"a":"` + strings.ReplaceAll(injected, "\n", `\n`) + `"}` + injected))
	}))
	t.Cleanup(srv.Close)
	checks := mustParse(t, "GET /x contains=zzz json.a=1")
	for _, r := range RunChecks(t.Context(), nil, srv.URL, checks) {
		if r.OK() {
			t.Fatal("the check passed")
		}
		if why := safe(r.String(), 4000); why != "" {
			t.Errorf("result has %s: %q", why, r.String())
		}
	}
}
