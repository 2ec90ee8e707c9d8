package action

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/input"
)

// InputError reports an input whose value is missing or malformed; it is
// input.Error, the one type the domain packages return too.
type InputError = input.Error

// Inputs reads typed inputs and collects every validation error, so that a
// command can validate everything before it makes any network call.
type Inputs struct {
	a    *Action
	errs []*input.Error
}

// raw returns the trimmed value of an input: a CLI flag first, then the
// INPUT_ environment variable (both the NAME-WITH-DASHES form GitHub uses and
// the NAME_WITH_UNDERSCORES form a workflow can set through env:), then the
// declared default.
func (in *Inputs) raw(name string) string {
	spec := in.a.spec.mustInput(name)
	v, ok := in.a.env.Flags[name]
	val := strings.TrimSpace(strings.Join(v, "\n"))
	if !ok {
		up := strings.ToUpper(strings.ReplaceAll(name, " ", "_"))
		val = strings.TrimSpace(in.a.env.getenv("INPUT_" + up))
		if val == "" {
			val = strings.TrimSpace(in.a.env.getenv("INPUT_" + strings.ReplaceAll(up, "-", "_")))
		}
	}
	if val == "" {
		val = spec.Default
	}
	if spec.Secret && val != "" {
		in.a.Mask(val)
	}
	return val
}

// Fail records a validation error for input name; only the first error of
// an input is kept, since a later check of the same input follows from it.
func (in *Inputs) Fail(name, format string, args ...any) {
	for _, e := range in.errs {
		if e.Input == name {
			return
		}
	}
	in.errs = append(in.errs, input.Errorf(name, format, args...))
}

// FailWith records err's input errors (see input.All), or, when it carries
// none, err itself as an error of input name.
func (in *Inputs) FailWith(name string, err error) {
	es := input.All(err)
	if len(es) == 0 {
		in.Fail(name, "%v", err)
		return
	}
	for _, e := range es {
		in.Fail(e.Input, "%s", e.Msg)
	}
}

// Err returns every validation error recorded so far (input.Join: nil, one
// *InputError, or input.Errors); Action.Fail reports each on its own.
func (in *Inputs) Err() error { return input.Join(in.errs...) }

// String returns the input's value or its default.
func (in *Inputs) String(name string) string { return in.raw(name) }

// Required returns the input's value and records an error when it is empty.
func (in *Inputs) Required(name string) string {
	v := in.raw(name)
	if v == "" {
		in.Fail(name, "is required")
	}
	return v
}

// Bool parses true/false/yes/no/1/0 (any case); anything else is an error.
func (in *Inputs) Bool(name string) bool {
	v := in.raw(name)
	b, err := ParseBool(v)
	if err != nil {
		in.Fail(name, "%q is not a boolean; use true or false", v)
	}
	return b
}

// ParseBool parses the boolean spellings a workflow author uses.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "no", "0", "off":
		return false, nil
	case "true", "yes", "1", "on":
		return true, nil
	}
	return false, errors.New("not a boolean")
}

// Int parses a decimal integer.
func (in *Inputs) Int(name string) int {
	v := in.raw(name)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		in.Fail(name, "%q is not a whole number", v)
	}
	return n
}

// Duration parses the input with ParseDuration; anything else is an error
// naming the input.
func (in *Inputs) Duration(name string) time.Duration {
	v := in.raw(name)
	d, err := ParseDuration(v)
	if err != nil {
		in.Fail(name, "%q %v; use a value such as 90s, 5m or 1h (a bare number is seconds)", v, err)
		return 0
	}
	return d
}

// maxDuration bounds every duration input: a week is far beyond any deploy
// step, and well inside time.Duration's range.
const maxDuration = 7 * 24 * time.Hour

// ParseDuration parses a duration input: a Go duration such as 90s, 5m or
// 1h30m, or a bare whole number of seconds; empty is 0. Negative values,
// values over a week and anything else are errors.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	var d time.Duration
	if isDigits(strings.TrimPrefix(v, "-")) {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err == nil && n < 0, strings.HasPrefix(v, "-"):
			return 0, errors.New("is negative")
		case err != nil || n > int64(maxDuration/time.Second):
			return 0, errors.New("is longer than a week")
		}
		d = time.Duration(n) * time.Second
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			if strings.HasPrefix(v, "-") {
				return 0, errors.New("is negative")
			}
			if strings.Contains(err.Error(), "invalid duration") && isDurationShaped(v) {
				return 0, errors.New("is longer than a week")
			}
			return 0, errors.New("is not a duration")
		}
	}
	if d < 0 {
		return 0, errors.New("is negative")
	}
	if d > maxDuration {
		return 0, errors.New("is longer than a week")
	}
	return d, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// isDurationShaped reports whether v looks like a Go duration, so that an
// overflow is told apart from garbage.
func isDurationShaped(v string) bool {
	v = strings.TrimPrefix(v, "+")
	return v != "" && v[0] >= '0' && v[0] <= '9' && strings.IndexFunc(v, func(r rune) bool {
		return !strings.ContainsRune("0123456789.nsuµmh", r)
	}) < 0
}

// List splits a multi-line or comma-separated value into items, dropping
// blank lines and lines starting with #.
func (in *Inputs) List(name string) []string { return SplitList(in.raw(name)) }

// Lines splits a multi-line value into items without splitting on commas, for
// items that may contain commas themselves.
func (in *Inputs) Lines(name string) []string {
	var out []string
	for _, line := range strings.Split(in.raw(name), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// SplitList splits v on newlines and commas, trimming items and dropping
// blanks and # comments.
func SplitList(v string) []string {
	var out []string
	for _, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, item := range strings.Split(line, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// Errs returns every validation error recorded so far.
func (in *Inputs) Errs() []error {
	out := make([]error, len(in.errs))
	for i, e := range in.errs {
		out[i] = e
	}
	return out
}
