// Package markdown renders the GitHub-flavoured Markdown of job summaries and
// reports: tables, inline code and escaped text, safe for any user or service
// text.
package markdown

import (
	"fmt"
	"strings"
)

var escaper = strings.NewReplacer(
	`\`, `\\`, "|", `\|`, "`", "\\`", "*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`, "\n", " ",
)

// Escape makes user or server text safe inside a table cell or paragraph: it
// is shown as written, never interpreted.
func Escape(s string) string { return escaper.Replace(s) }

// Code renders s as inline code, safe for any content.
func Code(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return fence + pad + strings.ReplaceAll(s, "|", `\|`) + pad + fence
}

// Table renders a table; cells are written as given, so callers escape user
// text with Escape or Code.
func Table(header []string, rows [][]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |\n|", strings.Join(header, " | "))
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	return b.String()
}
