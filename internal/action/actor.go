package action

import (
	"os"
	"os/user"
	"strings"
)

// Actor names who runs the command, never empty: the run's actor
// (GITHUB_ACTOR), else the OS user, else the host name.
func (a *Action) Actor() string { return actor(a.Getenv, user.Current, os.Hostname) }

// actor is Actor with its sources passed in, for tests.
func actor(getenv func(string) string, current func() (*user.User, error), hostname func() (string, error)) string {
	if s := strings.TrimSpace(getenv("GITHUB_ACTOR")); s != "" {
		return s
	}
	if u, err := current(); err == nil && u != nil && strings.TrimSpace(u.Username) != "" {
		return strings.TrimSpace(u.Username)
	}
	for _, k := range []string{"USER", "USERNAME"} {
		if s := strings.TrimSpace(getenv(k)); s != "" {
			return s
		}
	}
	if h, err := hostname(); err == nil && strings.TrimSpace(h) != "" {
		return strings.TrimSpace(h)
	}
	return "unknown"
}
