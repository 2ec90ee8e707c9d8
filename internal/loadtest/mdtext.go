package loadtest

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/gantry-dev/gantry/internal/markdown"
)

// maxTextRunes bounds one name, URL or expression in the Markdown summary.
const maxTextRunes = 80

// code shows user text (a URL, check name, tag or expression) in a table
// cell as inline code: one line, shortened, never interpreted, and no
// @mention or link.
func code(s string) string {
	s = clip(clean(s), maxTextRunes)
	if strings.TrimSpace(s) == "" {
		return "_(empty)_"
	}
	return markdown.Code(s)
}

// prose escapes user text for Markdown outside code, shortened: shown as
// written, with no formatting, link or @mention.
func prose(s string) string {
	return strings.ReplaceAll(markdown.Escape(clip(clean(s), maxTextRunes)), "@", "@\u200b")
}

// clean makes s one line of valid UTF-8: control characters become spaces
// and bidirectional controls, which can reorder what a reader sees, go.
func clean(s string) string {
	// Keep the start and the end of a very long text; clip cuts it further.
	const keep = 32 * maxTextRunes
	if len(s) > 2*keep {
		s = s[:keep] + s[len(s)-keep:]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case unicode.Is(unicode.Bidi_Control, r):
			return -1
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// clip shortens s to max runes with an ellipsis: a URL keeps its start and
// its end, other text its start.
func clip(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	if strings.Contains(s, "://") {
		head := max * 2 / 3
		return string(r[:head]) + "…" + string(r[len(r)-(max-head-1):])
	}
	return string(r[:max-1]) + "…"
}
func formatMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func formatSeconds(sec float64) string {
	if sec < 60 {
		return fmt.Sprintf("%.1f s", sec)
	}
	return fmt.Sprintf("%dm%02ds", int(sec)/60, int(sec)%60)
}

func formatPercent(frac float64) string { return fmt.Sprintf("%.2f%%", frac*100) }

func formatRPS(v float64) string { return fmt.Sprintf("%.1f/s", v) }
