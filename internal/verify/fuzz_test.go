package verify

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseChecks: any checks text parses or fails without a panic; every
// parsed check names its line, and its text parses again to the same check.
func FuzzParseChecks(f *testing.F) {
	for _, s := range []string{
		"GET /health status=200 json.status=\"ok\" max=500ms",
		"POST /api/orders body='{\"id\": 1}' header='Content-Type: application/json' status=201",
		"exec api -- ./migrate --check",
		"exec worker exit=3 contains='done' -- sh -c 'echo \"done\"'",
		"# comment\n\nGET / contains=\"a b\" json.items.0.id exists\nHEAD /x status=4xx",
		"GET /health json.version absent\nexec db -- \"unterminated",
		"GET /a'b\nget /lower\nexec -x -- y\nexec web --",
		"GET /\x00 contains=\"\\\"\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checks, err := ParseChecks(text)
		lines := strings.Split(text, "\n")
		for _, c := range checks {
			if c.Line < 1 || c.Line > len(lines) {
				t.Fatalf("check %q has line %d of %d", c.Text, c.Line, len(lines))
			}
			if c.Text != strings.TrimSpace(lines[c.Line-1]) {
				t.Fatalf("check text %q is not line %d %q", c.Text, c.Line, lines[c.Line-1])
			}
			if c.IsExec() == (c.Method != "") {
				t.Fatalf("check %q is both or neither exec and HTTP: %+v", c.Text, c)
			}
			if c.IsExec() && len(c.Argv) == 0 || !c.IsExec() && !strings.HasPrefix(c.Path, "/") {
				t.Fatalf("check %q has no command or path: %+v", c.Text, c)
			}
			again, err := ParseCheck(c.Text)
			if err != nil {
				t.Fatalf("check %q parsed from the text but not alone: %v", c.Text, err)
			}
			again.Line = c.Line
			if !reflect.DeepEqual(again, c) {
				t.Fatalf("check %q parses differently alone:\n%+v\n%+v", c.Text, again, c)
			}
		}
		if err != nil && strings.Contains(err.Error(), "\n") && !strings.Contains(err.Error(), "line ") {
			t.Fatalf("error does not name a line: %v", err)
		}
	})
}

// FuzzServedCommit: any health body (and version-field) gives either a commit
// or the reason there is none, never both; found by the default fields, the
// commit is hex of a commit's length.
func FuzzServedCommit(f *testing.F) {
	for _, s := range [][2]string{
		{`{"git_sha":"0123456789abcdef0123456789abcdef01234567","version":"1.2.3"}`, ""},
		{`{"version":"sha-0123456"}`, ""},
		{`{"commit":"ABCDEF0"}`, ""},
		{`{"build":{"sha":"0123456"}}`, "build.sha"},
		{`{"items":[{"sha":"abc"}]}`, "items.0.sha"},
		{`{"git_sha":123456789}`, ""},
		{`{"git_sha":"::error::x\n::add-mask::y"}`, ""},
		{`{"version":{"a":[1,2]}}`, "version"},
		{`not json`, ""},
		{``, ""},
		{`{"a":null}`, "a"},
		{"{\"git_sha\":\"\xff\xfe\"}", ""},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, body []byte, field string) {
		sha, _, why := ServedCommit(body, field)
		if (sha == "") == (why == "") {
			t.Fatalf("ServedCommit(%q, %q) = sha %q, why %q: want exactly one", body, field, sha, why)
		}
		if field == "" && sha != "" && !looksLikeSHA(sha) {
			t.Fatalf("ServedCommit(%q) = %q, not a commit SHA", body, sha)
		}
		if strings.Contains(why, "\n") && !strings.Contains(field, "\n") {
			t.Fatalf("the reason spans lines: %q", why)
		}
		_ = Snippet(body)
	})
}
