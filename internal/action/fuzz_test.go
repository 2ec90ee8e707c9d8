package action

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func fuzzSpec() *Spec {
	return &Spec{
		Name: "fuzz",
		Inputs: []Input{
			{Name: "wait", Kind: Duration},
			{Name: "items", Kind: List},
		},
		Outputs: []Output{{Name: "first"}, {Name: "second"}},
	}
}

// FuzzDurationInput: a duration input either fails naming the input or is a
// duration that is not negative: a bare number is exactly that many seconds,
// anything else what time.ParseDuration reads.
func FuzzDurationInput(f *testing.F) {
	for _, s := range []string{"90s", "5m", "1h30m", "0", "30", "-5", "-5s", "9223372036", "9223372037", "99999999999999999999", "1.5h", " 2m ", "1e3", "+3", "", "ten", "9223372036854775807", "-9999h", "5 minutes", "1e3s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		a := New(fuzzSpec(), Env{Getenv: func(k string) string {
			if k == "INPUT_WAIT" {
				return v
			}
			return ""
		}, Stdout: io.Discard, Stderr: io.Discard})
		in := a.Inputs()
		d := in.Duration("wait")
		if err := in.Err(); err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Input != "wait" {
				t.Fatalf("Duration(%q) failed without naming the input: %v", v, err)
			}
			return
		}
		if d < 0 || d > maxDuration {
			t.Fatalf("Duration(%q) = %s, accepted out of range", v, d)
		}
		tv := strings.TrimSpace(v)
		if n, err := strconv.ParseInt(tv, 10, 64); err == nil {
			if n > math.MaxInt64/int64(time.Second) || d != time.Duration(n)*time.Second {
				t.Fatalf("Duration(%q) = %s, want %d seconds", v, d, n)
			}
		} else if pd, err := time.ParseDuration(tv); tv != "" && (err != nil || pd != d) {
			t.Fatalf("Duration(%q) = %s, time.ParseDuration says %s, %v", v, d, pd, err)
		}
	})
}

// FuzzSplitList: list items are trimmed, never empty, and hold no comma or
// newline; each is a piece of the input, and no piece between commas is lost.
func FuzzSplitList(f *testing.F) {
	for _, s := range []string{"a,b", "web=x@sha256:1\njob=y", " a , ,b\n# comment\n\n c ", "10,50,100", "#x,y", "a\r\nb", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		items := SplitList(v)
		pieces := 0
		for _, line := range strings.Split(v, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				for _, p := range strings.Split(l, ",") {
					if strings.TrimSpace(p) != "" {
						pieces++
					}
				}
			}
		}
		for _, it := range items {
			if it == "" || it != strings.TrimSpace(it) || strings.ContainsAny(it, ",\n") || !strings.Contains(v, it) {
				t.Fatalf("SplitList(%q) has item %q", v, it)
			}
		}
		if len(items) != pieces {
			t.Fatalf("SplitList(%q) = %q: want %d items", v, items, pieces)
		}
		for _, it := range (&Inputs{a: New(fuzzSpec(), Env{Flags: map[string][]string{"items": {v}}})}).Lines("items") {
			if it == "" || it != strings.TrimSpace(it) || strings.Contains(it, "\n") || strings.HasPrefix(it, "#") {
				t.Fatalf("Lines(%q) has item %q", v, it)
			}
		}
	})
}

// runnerOutputs parses a GITHUB_OUTPUT file as the Actions runner does
// (FileCommandManager: NAME=VALUE, or NAME<<DELIMITER then lines up to a
// line that is exactly the delimiter; on Windows CRLF also ends a line).
func runnerOutputs(text string, windows bool) (map[string]string, error) {
	out := map[string]string{}
	readLine := func(i *int) (line string, newline string, ok bool) {
		if *i >= len(text) {
			return "", "", false
		}
		start := *i
		lf := strings.Index(text[start:], "\n")
		if lf < 0 {
			*i = len(text)
			return text[start:], "", true
		}
		lf += start
		if windows {
			if crlf := strings.Index(text[start:], "\r\n"); crlf >= 0 && start+crlf < lf {
				*i = start + crlf + 2
				return text[start : start+crlf], "\r\n", true
			}
		}
		*i = lf + 1
		return text[start:lf], "\n", true
	}
	i := 0
	for i < len(text) {
		line, _, _ := readLine(&i)
		if line == "" {
			continue
		}
		eq, hd := strings.Index(line, "="), strings.Index(line, "<<")
		switch {
		case eq >= 0 && (hd < 0 || eq < hd):
			out[line[:eq]] = line[eq+1:]
		case hd >= 0 && (eq < 0 || hd < eq):
			key, delim := line[:hd], line[hd+2:]
			start, end := i, i
			for {
				l, nl, ok := readLine(&i)
				if !ok {
					return nil, fmt.Errorf("matching delimiter not found %q", delim)
				}
				if l == delim {
					break
				}
				if nl == "" {
					return nil, errors.New("EOF marker missing new line")
				}
				end = i - len(nl)
			}
			if end > start {
				out[key] = text[start:end]
			} else {
				out[key] = ""
			}
		default:
			return nil, fmt.Errorf("invalid format %q", line)
		}
	}
	return out, nil
}

// FuzzOutputs: whatever two outputs hold, the GITHUB_OUTPUT file the runner
// reads has exactly those two outputs (no value injects another), each with
// its value (as UTF-8, as the runner reads the file; on Windows a CR before a
// line end cannot survive).
func FuzzOutputs(f *testing.F) {
	for _, s := range [][2]string{
		{"plain", ""},
		{"multi\nline\n", "second=injected"},
		{"x\nsecond<<EOF\nevil\nEOF", "ghadelimiter_1"},
		{"trailing\r", "\r\n\r\nz"},
		{"gantry_00000000000000000000000000000000", "::set-output name=second::x"},
		{"\xff\xfe", "a<<b=c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, first, second string) {
		path := filepath.Join(t.TempDir(), "output")
		a := New(fuzzSpec(), Env{Getenv: func(k string) string {
			if k == "GITHUB_OUTPUT" {
				return path
			}
			return ""
		}, Stdout: io.Discard, Stderr: io.Discard})
		a.SetOutput("first", first)
		a.SetOutput("second", second)
		if err := a.Finish(); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"first": first, "second": second}
		for _, windows := range []bool{false, true} {
			got, err := runnerOutputs(string(data), windows)
			if err != nil {
				t.Fatalf("runner (windows %v) cannot read the outputs: %v\n%q", windows, err, data)
			}
			if len(got) != 2 {
				t.Fatalf("runner (windows %v) reads outputs %q from %q", windows, got, data)
			}
			for k, v := range want {
				if !utf8.ValidString(v) || windows && strings.Contains(v, "\r") {
					continue
				}
				if got[k] != v {
					t.Fatalf("runner (windows %v) reads %s = %q, want %q", windows, k, got[k], v)
				}
			}
		}
		own, err := ParseOutputs(string(data))
		if err != nil || own["first"] != first || own["second"] != second || len(own) != 2 {
			t.Fatalf("ParseOutputs = %q, %v; want %q", own, err, want)
		}
	})
}
