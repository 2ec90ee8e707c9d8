package ssh

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// FuzzCommand: the command line Command quotes is, for a POSIX shell,
// exactly argv: mvdan.cc/sh parses it to one simple command whose words
// expand to argv, and /bin/sh running printf over it prints argv back byte
// for byte. Only a NUL byte is refused.
func FuzzCommand(f *testing.F) {
	for _, s := range [][2]string{
		{"plain", "two words"},
		{"it's", `"double" $HOME $(id) ` + "`id`"},
		{"tab\there", "new\nline"},
		{"", "*?[a]{b,c}~"},
		{"; rm -rf /", "a|b&c>d<e"},
		{"\xff\xfe invalid utf-8", "\\\\ back\\slash"},
		{"-n", "--"},
		{"'", "''\\''"},
		{"nul\x00byte", "x"},
	} {
		f.Add(s[0], s[1])
	}
	sh, shErr := exec.LookPath("sh")
	f.Fuzz(func(t *testing.T, a, b string) {
		argv := []string{"printf", `%s\000`, a, b}
		cmd, err := Command(argv)
		hasNUL := strings.ContainsRune(a+b, 0)
		if hasNUL != (err != nil) {
			t.Fatalf("Command(%q) = %q, %v; want an error exactly when an argument holds a NUL", argv, cmd, err)
		}
		if err != nil {
			return
		}
		if utf8.ValidString(cmd) {
			file, perr := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(cmd), "")
			if perr != nil {
				t.Fatalf("Command(%q) = %q, which does not parse: %v", argv, cmd, perr)
			}
			if len(file.Stmts) != 1 {
				t.Fatalf("Command(%q) = %q is %d statements", argv, cmd, len(file.Stmts))
			}
			call, ok := file.Stmts[0].Cmd.(*syntax.CallExpr)
			if !ok || len(call.Assigns) != 0 || len(file.Stmts[0].Redirs) != 0 || file.Stmts[0].Background {
				t.Fatalf("Command(%q) = %q is not one plain command", argv, cmd)
			}
			if len(call.Args) != len(argv) {
				t.Fatalf("Command(%q) = %q has %d words", argv, cmd, len(call.Args))
			}
			for i, w := range call.Args {
				for _, p := range w.Parts {
					switch p := p.(type) {
					case *syntax.Lit, *syntax.SglQuoted:
					case *syntax.DblQuoted:
						for _, q := range p.Parts {
							if _, ok := q.(*syntax.Lit); !ok {
								t.Fatalf("Command(%q) = %q: word %d has a %T in double quotes, which a shell expands", argv, cmd, i, q)
							}
						}
					default:
						t.Fatalf("Command(%q) = %q: word %d has a %T, which a shell expands", argv, cmd, i, p)
					}
				}
				got, err := expand.Fields(&expand.Config{}, w)
				if err != nil || len(got) != 1 || got[0] != argv[i] {
					t.Fatalf("Command(%q) = %q: word %d reads %q (%v), want %q", argv, cmd, i, got, err, argv[i])
				}
			}
		}
		if shErr != nil {
			return
		}
		out, err := exec.Command(sh, "-c", cmd).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", cmd, err)
		}
		if want := []byte(a + "\x00" + b + "\x00"); !bytes.Equal(out, want) {
			t.Fatalf("sh -c %q prints %q, want %q", cmd, out, want)
		}
	})
}
