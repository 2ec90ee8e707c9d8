// Package input is the one error type for a bad input, shared by the Actions
// runtime and the domain packages that validate their options: it names the
// input and says what would be valid, and Errors carries every one found.
package input

import (
	"errors"
	"fmt"
	"strings"
)

// Error reports an input whose value is missing or malformed.
type Error struct {
	Input string // the action input (CLI flag) name, such as "rate"
	Msg   string // what is wrong and what would be valid
}

func (e *Error) Error() string { return fmt.Sprintf("input %q: %s", e.Input, e.Msg) }

// Errorf returns an *Error for input with a formatted message.
func Errorf(name, format string, args ...any) *Error {
	return &Error{Input: name, Msg: fmt.Sprintf(format, args...)}
}

// Errors is every input error of one command, in the order found; errors.As
// finds each of them.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns each error, for errors.As and errors.Is.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Join returns nil for no errors, the error itself for one, and Errors for
// more.
func Join(es ...*Error) error {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return es[0]
	}
	return Errors(es)
}

// All returns every input error err carries: the members of an Errors, or
// the one *Error it wraps; nil when it carries none.
func All(err error) []*Error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}
