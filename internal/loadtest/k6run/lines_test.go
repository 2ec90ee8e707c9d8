package k6run

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// writes records each Write as one element.
type writes struct{ got []string }

func (w *writes) Write(p []byte) (int, error) {
	w.got = append(w.got, string(p))
	return len(p), nil
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLine+10)
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"whole lines", []string{"a\nb\n"}, []string{"a\n", "b\n"}},
		{"split lines", []string{"ab", "c\nd", "e\n"}, []string{"abc\n", "de\n"}},
		{"unterminated last line", []string{"a\nb"}, []string{"a\n", "b\n"}},
		{"runaway line is cut", []string{long}, []string{long + "\n"}},
		{"empty lines kept", []string{"\n\na\n"}, []string{"\n", "\n", "a\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var w writes
			var kept []string
			lw := &lineWriter{mu: &sync.Mutex{}, w: &w, keep: func(s string) { kept = append(kept, s) }}
			for _, c := range tc.chunks {
				if n, err := lw.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			lw.flush()
			if !slices.Equal(w.got, tc.want) {
				t.Errorf("writes %q; want %q", w.got, tc.want)
			}
			for i, k := range kept {
				if k != strings.TrimSuffix(tc.want[i], "\n") {
					t.Errorf("kept line %d = %q; want %q", i, k, tc.want[i])
				}
			}
		})
	}
}

func TestRingKeepsTheLastLines(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 3, 20, 21, 45} {
		r := newRing(20)
		var want []string
		for i := range n {
			r.add(fmt.Sprint(i))
			want = append(want, fmt.Sprint(i))
		}
		want = want[max(0, len(want)-20):]
		if got := r.last(); !slices.Equal(got, want) {
			t.Errorf("after %d lines: %q; want %q", n, got, want)
		}
	}
}

func TestErrorDetail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{
			"msg and hint",
			[]string{`time="2026-11-30T04:13:03Z" level=error msg="Error: boom\n\tat file:///s.js:1:7(12)\n" hint="script exception"`},
			"Error: boom at file:///s.js:1:7(12) (script exception)",
		},
		{
			"only error lines",
			[]string{`time="t" level=warning msg="slow"`, `time="t" level=error msg="a \"quoted\" thing"`, `time="t" level=info msg="bye"`},
			`a "quoted" thing`,
		},
		{
			"bare value",
			[]string{`level=error msg=plain other=1`},
			"plain",
		},
		{
			"no error lines: the last three",
			[]string{"one", "two", "three", "four"},
			"two; three; four",
		},
		{"nothing", nil, ""},
	}
	for _, tc := range tests {
		if got := errorDetail(tc.lines); got != tc.want {
			t.Errorf("%s: errorDetail = %q; want %q", tc.name, got, tc.want)
		}
	}
	if err := (&ExitError{Code: 107}).Error(); err != "k6 run: script error (k6 exit code 107)" {
		t.Errorf("ExitError without stderr = %q", err)
	}
}
