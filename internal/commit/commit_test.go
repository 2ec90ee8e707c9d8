package commit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"abcdef0", "abcdef0", true},
		{"ABCDEF0123", "abcdef0123", true},
		{"0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567", true},
		{"abc123", "", false},            // too short
		{"xyz1234", "", false},           // not hex
		{"", "", false},                  // empty
		{"abcdef0; rm -rf /", "", false}, // injection
		{"0123456789abcdef0123456789abcdef012345678", "", false}, // 41
	} {
		got, err := Validate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Validate(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestTagAndMatches(t *testing.T) {
	t.Parallel()
	if got := Tag("ABCDEF0123456"); got != "sha-abcdef0" {
		t.Errorf("Tag = %q", got)
	}
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"abcdef0", "abcdef0123456789", true},
		{"ABCDEF01", "abcdef0", true},
		{"abcdef1", "abcdef0123", false},
		{"abc", "abcdef0", false},
	} {
		if got := Matches(tc.a, tc.b); got != tc.want {
			t.Errorf("Matches(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestFromEnvPullRequestUsesHead(t *testing.T) {
	t.Parallel()
	ev := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(ev, []byte(`{"pull_request":{"head":{"sha":"1111111111111111111111111111111111111111"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GITHUB_SHA": "2222222", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": ev}
	if got := FromEnv(func(k string) string { return env[k] }); got != "1111111111111111111111111111111111111111" {
		t.Errorf("pull_request: got %q, want the head SHA", got)
	}
	env["GITHUB_EVENT_NAME"] = "push"
	if got := FromEnv(func(k string) string { return env[k] }); got != "2222222" {
		t.Errorf("push: got %q", got)
	}
}

func TestShort(t *testing.T) {
	for in, want := range map[string]string{
		"":         "",
		"abc":      "abc",
		"abcdef1":  "abcdef1",
		"abcdef12": "abcdef1",
		"0123456789abcdef0123456789abcdef01234567": "0123456",
	} {
		if got := Short(in); got != want {
			t.Errorf("Short(%q) = %q, want %q", in, got, want)
		}
	}
}
