package action

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var testSpec = &Spec{
	Name: "test",
	Inputs: []Input{
		{Name: "flag", Kind: Bool, Default: "false"},
		{Name: "timeout", Kind: Duration, Default: "2m"},
		{Name: "count", Kind: Int},
		{Name: "items", Kind: List},
		{Name: "github-token", Secret: true},
		{Name: "name", Required: true},
	},
	Outputs: []Output{{Name: "digest"}, {Name: "images"}},
}

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestBool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    bool
		wantErr bool
	}{
		{"true", true, false}, {"TRUE", true, false}, {"yes", true, false}, {"1", true, false},
		{"false", false, false}, {"No", false, false}, {"0", false, false}, {"", false, false},
		{"maybe", false, true}, {"tru", false, true}, {"2", false, true},
	} {
		a := New(testSpec, Env{Getenv: envOf(map[string]string{"INPUT_FLAG": tc.in})})
		in := a.Inputs()
		got := in.Bool("flag")
		if got != tc.want || (in.Err() != nil) != tc.wantErr {
			t.Errorf("Bool(%q) = %v, err %v; want %v, err %v", tc.in, got, in.Err(), tc.want, tc.wantErr)
		}
		var ie *InputError
		if tc.wantErr && (!errors.As(in.Err(), &ie) || ie.Input != "flag" || !strings.Contains(ie.Error(), "true or false")) {
			t.Errorf("Bool(%q) error %v does not name the input and the valid values", tc.in, in.Err())
		}
	}
}

func TestDurationIntList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		dur     time.Duration
		count   int
		items   []string
		wantErr string
	}{
		{name: "defaults", vars: nil, dur: 2 * time.Minute},
		{name: "seconds", vars: map[string]string{"INPUT_TIMEOUT": "90"}, dur: 90 * time.Second, wantErr: ""},
		{name: "go duration", vars: map[string]string{"INPUT_TIMEOUT": "1h30m", "INPUT_COUNT": "3"}, dur: 90 * time.Minute, count: 3},
		{name: "bad duration", vars: map[string]string{"INPUT_TIMEOUT": "5 minutes"}, wantErr: `input "timeout"`},
		{name: "negative duration", vars: map[string]string{"INPUT_TIMEOUT": "-5s"}, wantErr: `input "timeout": "-5s" is negative`},
		{name: "negative bare number", vars: map[string]string{"INPUT_TIMEOUT": "-5"}, wantErr: `input "timeout": "-5" is negative`},
		{name: "bad int", vars: map[string]string{"INPUT_COUNT": "3.5"}, dur: 2 * time.Minute, wantErr: `input "count"`},
		{name: "list", vars: map[string]string{"INPUT_ITEMS": "a, b\n# comment\n\n c \nd,e"}, dur: 2 * time.Minute, items: []string{"a", "b", "c", "d", "e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := New(testSpec, Env{Getenv: envOf(tc.vars)}).Inputs()
			d, c, items := in.Duration("timeout"), in.Int("count"), in.List("items")
			if tc.wantErr != "" {
				if in.Err() == nil || !strings.Contains(in.Err().Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", in.Err(), tc.wantErr)
				}
				return
			}
			if in.Err() != nil {
				t.Fatal(in.Err())
			}
			if d != tc.dur || c != tc.count || strings.Join(items, "|") != strings.Join(tc.items, "|") {
				t.Errorf("got %v %v %q, want %v %v %q", d, c, items, tc.dur, tc.count, tc.items)
			}
		})
	}
}

func TestInputSources(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"INPUT_GITHUB-TOKEN": "dash", "INPUT_NAME": "env"}
	a := New(testSpec, Env{Getenv: envOf(vars), Flags: map[string][]string{"name": {"flag1", "flag2"}}})
	in := a.Inputs()
	if got := in.String("github-token"); got != "dash" {
		t.Errorf("INPUT_GITHUB-TOKEN not read: %q", got)
	}
	if got := in.Required("name"); got != "flag1\nflag2" {
		t.Errorf("flags should win over env and join as lines: %q", got)
	}
	a = New(testSpec, Env{Getenv: envOf(map[string]string{"INPUT_GITHUB_TOKEN": "underscore"})})
	in = a.Inputs()
	if got := in.String("github-token"); got != "underscore" {
		t.Errorf("INPUT_GITHUB_TOKEN not read: %q", got)
	}
	in.Required("name")
	if err := in.Err(); err == nil || !strings.Contains(err.Error(), `"name": is required`) {
		t.Errorf("missing required input: err = %v", err)
	}
}

func TestOutputsCannotInject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "output")
	a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_OUTPUT": out, "GITHUB_ACTIONS": "true"})})
	evil := "x\ndigest=sha256:evil\nghadelimiter_123\nimages<<EOF\nowned\nEOF"
	a.SetOutput("images", evil)
	a.SetOutput("digest", "sha256:good")
	if err := a.Finish(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseOutputs(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if got["digest"] != "sha256:good" || got["images"] != evil || len(got) != 2 {
		t.Errorf("outputs = %q", got)
	}
}

func TestLocalOutputsAndSummary(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	a := New(testSpec, Env{Getenv: envOf(nil), Stdout: &stdout, Stderr: &stderr})
	a.SetOutput("digest", "sha256:abc")
	a.Summary().WriteString("# hello\n")
	if err := a.Finish(); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "digest=sha256:abc\n" {
		t.Errorf("stdout = %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "# hello") {
		t.Errorf("summary not on stderr: %q", stderr.String())
	}
}

func TestSummaryTruncated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "summary")
	a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_STEP_SUMMARY": path})})
	a.Summary().WriteString(strings.Repeat("x", 2<<20))
	if err := a.Finish(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() >= 1<<20 {
		t.Errorf("summary is %d bytes, over GitHub's 1 MiB limit", st.Size())
	}
}

func TestSecretsMaskedAndRedacted(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	secret := "ghp_secretvalue123"
	a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_ACTIONS": "true", "INPUT_GITHUB-TOKEN": secret}), Stdout: &stdout})
	if a.Inputs().String("github-token") != secret {
		t.Fatal("secret input not returned")
	}
	a.Infof("token is %s", secret)
	a.Warnf("again %s", secret)
	a.Summary().WriteString("summary " + secret)
	a.SetOutput("digest", "d")
	out := stdout.String()
	if !strings.HasPrefix(out, "::add-mask::"+secret+"\n") {
		t.Errorf("no ::add-mask:: before first use: %q", out)
	}
	if strings.Count(out, secret) != 1 {
		t.Errorf("secret leaked into logs: %q", out)
	}
	if strings.Contains(a.Redact(a.Summary().String()), secret) {
		t.Error("secret not redacted from summary")
	}
}

func TestRunFailAnnotatesInput(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_ACTIONS": "true"}), Stdout: &stdout})
	code := a.Run(context.Background(), func(ctx context.Context) error {
		in := a.Inputs()
		in.Bool("flag")
		in.Fail("count", "%q is not\na whole number", "x")
		return in.Err()
	})
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(stdout.String(), "::error title=count::test: input \"count\": \"x\" is not a whole number\n") {
		t.Errorf("annotation missing or not one line: %q", stdout.String())
	}
}

func TestRunFailAnnotatesEveryInput(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	summary := filepath.Join(t.TempDir(), "summary.md")
	a := New(testSpec, Env{Getenv: envOf(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summary, "INPUT_TIMEOUT": "-5", "INPUT_COUNT": "3.5"}), Stdout: &stdout})
	code := a.Run(context.Background(), func(ctx context.Context) error {
		in := a.Inputs()
		in.Duration("timeout")
		in.Int("count")
		in.Required("name")
		return fmt.Errorf("checking inputs: %w", in.Err())
	})
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	var titles []string
	for line := range strings.Lines(stdout.String()) {
		if rest, ok := strings.CutPrefix(line, "::error title="); ok {
			titles = append(titles, rest[:strings.Index(rest, "::")])
		}
	}
	if want := []string{"timeout", "count", "name"}; !slices.Equal(titles, want) {
		t.Errorf("annotations titled %q, want one per input %q:\n%s", titles, want, stdout.String())
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 inputs are not valid", `input "timeout"`, `input "count"`, `input "name"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("summary lacks %q:\n%s", want, b)
		}
	}
}

func TestMarkdownEscaping(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"a|b":                 `a\|b`,
		"<script>":            "&lt;script&gt;",
		"x\ny":                "x y",
		"[link](http://evil)": `\[link\](http://evil)`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Code("a`b"); got != "``a`b``" {
		t.Errorf("Code = %q", got)
	}
}

func TestFailKeepsFirstErrorOfAnInput(t *testing.T) {
	t.Parallel()
	in := New(testSpec, Env{Getenv: envOf(map[string]string{"INPUT_TIMEOUT": "-5"})}).Inputs()
	if d := in.Duration("timeout"); d != 0 {
		t.Errorf("Duration = %v after an error, want 0", d)
	}
	in.Fail("timeout", "must be positive") // a later check that follows from the first error
	in.Fail("count", "is bad")
	if errs := in.Errs(); len(errs) != 2 || !strings.Contains(errs[0].Error(), "is negative") || !strings.Contains(errs[1].Error(), `"count"`) {
		t.Errorf("errors = %v; want the first of timeout, then count", errs)
	}
}
