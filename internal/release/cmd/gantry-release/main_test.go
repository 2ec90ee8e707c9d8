package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRunRefuses: bad input fails before anything is touched, saying what is wrong.
func TestRunRefuses(t *testing.T) {
	t.Parallel()
	env := map[string]string{"GITHUB_REPOSITORY": "gantry-dev/gantry"}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no command", nil, env, "want a command"},
		{"bad version", []string{"check", "-version", "1.2"}, env, "is not vMAJOR.MINOR.PATCH"},
		{"no repository", []string{"check", "-version", "v1.2.3"}, map[string]string{}, "GITHUB_REPOSITORY"},
		{"no token", []string{"check", "-version", "v1.2.3"}, env, "no GitHub token"},
		{"unknown command", []string{"ship", "-version", "v1.2.3"}, env, `unknown command "ship"`},
		{"unpinned edge image", []string{"prepare", "-version", "v1.2.3", "-edge-image", "ghcr.io/x/gantry-edge:v1", "-dir", t.TempDir()}, env, "is not name:tag@sha256"},
		{"publish without assets", []string{"publish", "-version", "v1.2.3", "-commit", strings.Repeat("a", 40), "-dist", t.TempDir()}, map[string]string{"GITHUB_REPOSITORY": "gantry-dev/gantry", "GITHUB_TOKEN": "x"}, "has no checksums.txt"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.wantErr)
		}
	}
}
