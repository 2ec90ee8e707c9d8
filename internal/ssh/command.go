package ssh

import (
	"errors"
	"fmt"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Command joins argv into the command line the host's login shell runs,
// every element quoted for a POSIX shell (sh, bash, dash, zsh), so no
// element is ever read as shell syntax. A NUL byte cannot be passed.
func Command(argv []string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("empty command")
	}
	words := make([]string, len(argv))
	for i, arg := range argv {
		q, err := syntax.Quote(arg, syntax.LangPOSIX)
		var qerr *syntax.QuoteError
		switch {
		case err == nil:
		case strings.IndexByte(arg, 0) >= 0:
			return "", fmt.Errorf("argument %d of %s holds a NUL byte, which no command line can carry", i, argv[0])
		case errors.As(err, &qerr):
			// POSIX sh has no escapes for control characters (tab,
			// newline) or invalid UTF-8, but single quotes keep every
			// byte but the quote itself literally.
			q = "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
		default:
			return "", fmt.Errorf("quote argument %d of %s: %w", i, argv[0], err)
		}
		words[i] = q
	}
	return strings.Join(words, " "), nil
}
