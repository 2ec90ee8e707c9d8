package action

import (
	"errors"
	"os/user"
	"testing"
)

func TestActor(t *testing.T) {
	t.Parallel()
	noUser := func() (*user.User, error) { return nil, errors.New("user: unknown userid 1234") }
	blankUser := func() (*user.User, error) { return &user.User{Uid: "1234"}, nil }
	osUser := func() (*user.User, error) { return &user.User{Username: "dana"}, nil }
	host := func() (string, error) { return "build-7", nil }
	noHost := func() (string, error) { return "", errors.New("no host name") }
	for _, tc := range []struct {
		name     string
		env      map[string]string
		current  func() (*user.User, error)
		hostname func() (string, error)
		want     string
	}{
		{"run's actor first", map[string]string{"GITHUB_ACTOR": "octocat", "USER": "root"}, osUser, host, "octocat"},
		{"OS user", map[string]string{"USER": "root"}, osUser, host, "dana"},
		{"USER when the OS has no name for the uid", map[string]string{"USER": "erin"}, noUser, host, "erin"},
		{"USERNAME on Windows", map[string]string{"USERNAME": "frank"}, blankUser, host, "frank"},
		{"host name when nothing names a user", map[string]string{"GITHUB_ACTOR": "  "}, noUser, host, "build-7"},
		{"never empty", nil, noUser, noHost, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := actor(func(k string) string { return tc.env[k] }, tc.current, tc.hostname)
			if got != tc.want {
				t.Errorf("actor = %q, want %q", got, tc.want)
			}
		})
	}
}
