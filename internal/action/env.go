package action

import (
	"fmt"
	"regexp"
	"strings"
)

// EnvVar is one NAME=value line of an environment input.
type EnvVar struct {
	Name, Value string
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvName reports whether name is a portable environment variable name:
// letters, digits and _, not starting with a digit.
func ValidEnvName(name string) bool { return envNameRE.MatchString(name) }

// ParseEnvLine parses one NAME=value line: the name ends at the first =, and
// the value is the rest of the line, commas and = included. An error never
// quotes the value, which may be a secret.
func ParseEnvLine(line string) (EnvVar, error) {
	k, v, ok := strings.Cut(line, "=")
	k = strings.TrimSpace(k)
	if !ok {
		return EnvVar{}, fmt.Errorf("has no =")
	}
	if !ValidEnvName(k) {
		return EnvVar{}, fmt.Errorf("names %q, not a variable name (letters, digits and _, not starting with a digit)", trimForError(k))
	}
	return EnvVar{Name: k, Value: v}, nil
}

// Env reads an environment input: NAME=value one a line, never split on
// commas (a value such as host=db,port=5432 stays whole); blank lines and
// # comments are skipped. Each bad line is an error naming the input.
func (in *Inputs) Env(name string) []EnvVar {
	var out []EnvVar
	for i, line := range strings.Split(in.raw(name), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := ParseEnvLine(line)
		if err != nil {
			in.Fail(name, "line %d %v; write NAME=value one a line (a value may hold commas and =)", i+1, err)
			continue
		}
		out = append(out, e)
	}
	return out
}

// trimForError keeps an input fragment quoted in an error short.
func trimForError(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
