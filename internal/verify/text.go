package verify

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of what a service's answers may put in gantry's outputs and messages.
const (
	// MaxVersionLen bounds the served version, in characters.
	MaxVersionLen = 128
	// maxDetail bounds one line describing an answer, in characters.
	maxDetail = 400
)

// Text makes text a service sent safe to show in a log line, an annotation,
// a summary or an output: one line of printable UTF-8 (control, line-breaking
// and invisible characters become \n, \x.. or \u.... escapes), with the
// workflow-command markers "::" and "##[" broken up ("::" becomes ": :"), at
// most max characters (the last one "…" when it was cut).
func Text(s string, max int) string {
	if len(s) > 8*max {
		s = s[:8*max] // enough for max escaped characters
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r != ' ' && !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' || r == '\u0085':
			fmt.Fprintf(&b, `\u%04x`, r)
		case r == ':' && strings.HasSuffix(b.String(), ":"):
			b.WriteString(" :") // "::" starts a workflow command at the start of a line
		case r == '[' && strings.HasSuffix(b.String(), "##"):
			b.WriteString(" [") // "##[" starts one anywhere in a line
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if utf8.RuneCountInString(out) > max {
		rs := []rune(out)
		out = string(rs[:max-1]) + "…"
	}
	return out
}

// SHA returns s in lower case when it is a well-formed commit SHA (7 to 40,
// or 64, hex characters), else "": the only form a served commit leaves
// verify in.
func SHA(s string) string {
	if !looksLikeSHA(s) || len(s) > 40 && len(s) != 64 {
		return ""
	}
	return strings.ToLower(s)
}
