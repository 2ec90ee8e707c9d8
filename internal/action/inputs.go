package action

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// InputError reports an input whose value is missing or malformed.
type InputError struct {
	Input string
	Msg   string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("input %q: %s", e.Input, e.Msg)
}

// Inputs reads typed inputs and collects every validation error, so that a
// command can validate everything before it makes any network call.
type Inputs struct {
	a    *Action
	errs []error
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

// Fail records a validation error for input name.
func (in *Inputs) Fail(name, format string, args ...any) {
	in.errs = append(in.errs, &InputError{Input: name, Msg: fmt.Sprintf(format, args...)})
}

// Err returns the first validation error, or nil. The first one is the one a
// user fixes first; the others are logged by Action.Fail.
func (in *Inputs) Err() error {
	if len(in.errs) == 0 {
		return nil
	}
	return in.errs[0]
}

// Errs returns every validation error recorded so far.
func (in *Inputs) Errs() []error { return in.errs }

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

// Duration parses a Go duration such as 90s, 5m or 1h30m; a bare number is
// taken as seconds because that is what most workflow authors mean.
func (in *Inputs) Duration(name string) time.Duration {
	v := in.raw(name)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > int64(math.MaxInt64/time.Second) {
			in.Fail(name, "%q is not a duration; use a value such as 90s, 5m or 1h", v)
			return 0
		}
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		in.Fail(name, "%q is not a duration; use a value such as 90s, 5m or 1h", v)
		return 0
	}
	return d
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
