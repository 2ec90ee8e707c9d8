package composefile

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// Var is one variable of an env file.
type Var struct {
	Name, Value string
}

// EnvRules says who reads an env file on the host, and so which rules it
// must pass locally.
type EnvRules int

const (
	// ComposeRules: docker compose reads the project's .env (compose-go's
	// dotenv: quotes, escapes, names of letters, digits, _ . - [ ]).
	ComposeRules EnvRules = iota
	// ShellRules: each line is given to the shell's export (Swarm's
	// docker stack deploy reads its environment), so a name is letters,
	// digits and _ and a value is taken literally.
	ShellRules
)

var shellNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// dotenvNameRE finds the quoted line a dotenv error may carry, which can
// hold a secret value.
var dotenvNameRE = regexp.MustCompile(`in variable name ".*"`)

// ParseEnvFile checks data with the rules of the host's reader and returns
// its variables, and for ShellRules the file as the host must get it (one
// trimmed NAME=value a line). An error names the line, never its value.
func ParseEnvFile(data string, rules EnvRules) ([]Var, string, error) {
	if rules == ShellRules {
		var vars []Var
		var out strings.Builder
		for i, line := range strings.Split(data, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, "", fmt.Errorf("line %d has no =; write NAME=value", i+1)
			}
			if !shellNameRE.MatchString(k) {
				return nil, "", fmt.Errorf("line %d: %q is not a variable name the shell can export (letters, digits and _, not starting with a digit)", i+1, k)
			}
			vars = append(vars, Var{Name: k, Value: v})
			out.WriteString(line + "\n")
		}
		return vars, out.String(), nil
	}
	m, err := dotenv.UnmarshalWithLookup(data, func(string) (string, bool) { return "", false })
	if err != nil {
		msg := dotenvNameRE.ReplaceAllString(err.Error(), "in a variable name")
		return nil, "", fmt.Errorf("docker compose would refuse it: %s (names are letters, digits, _ . -; no spaces)", msg)
	}
	vars := make([]Var, 0, len(m))
	for k, v := range m {
		if k == "" {
			// compose's parser takes "=x" or a lone word as a variable
			// with no name; it can only be a mistake.
			return nil, "", errors.New("a line has no variable name; write NAME=value, one a line")
		}
		vars = append(vars, Var{Name: k, Value: v})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	return vars, data, nil
}
