package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
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

// TestRunRelease drives the three commands as release.yml runs them, against a fake GitHub with
// immutable releases over a bare repository.
func TestRunRelease(t *testing.T) {
	t.Parallel()
	dir, origin := t.TempDir(), filepath.Join(t.TempDir(), "origin.git")
	files := map[string]string{
		"internal/edge/edge.go":        "package edge\n\nconst DefaultImage = \"ghcr.io/acme/gantry-edge:v1\"\n",
		"actions/a/action.yml":         "inputs:\n  edge-image:\n    default: \"ghcr.io/acme/gantry-edge:v1\"\nruns:\n  using: composite\n  steps: []\n",
		".github/workflows/deploy.yml": "on: workflow_call\njobs:\n  d:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/gantry/actions/a@v1\n",
	}
	for f, s := range files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "--quiet", "--initial-branch=main")
	git("add", "--all")
	git("commit", "--quiet", "-m", "M")
	git("init", "--quiet", "--bare", origin)
	git("remote", "add", "origin", origin)
	git("push", "--quiet", "origin", "main")
	gh := githubfake.Start(t, githubfake.Options{Repository: "acme/gantry", GitDir: origin, ImmutableReleases: true})
	if err := gh.InitGitDir(); err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	for _, name := range []string{"gantry_linux_amd64.tar.gz", "checksums.txt"} {
		if err := os.WriteFile(filepath.Join(dist, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outputs := filepath.Join(t.TempDir(), "output")
	env := map[string]string{"GITHUB_REPOSITORY": "acme/gantry", "GITHUB_API_URL": gh.APIURL(), "GITHUB_TOKEN": gh.APIToken(), "GITHUB_OUTPUT": outputs}
	getenv := func(k string) string { return env[k] }
	image := "ghcr.io/acme/gantry-edge:v1.0.0@sha256:" + strings.Repeat("ab", 32)
	var log bytes.Buffer
	for _, args := range [][]string{
		{"check", "-version", "v1.0.0"},
		{"prepare", "-version", "v1.0.0", "-edge-image", image, "-dir", dir},
	} {
		if err := run(context.Background(), args, getenv, &log); err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, log.String())
		}
	}
	out, _ := os.ReadFile(outputs)
	r, s := "", ""
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "commit="); ok {
			r = v
		}
		if v, ok := strings.CutPrefix(l, "pinned-to="); ok {
			s = v
		}
	}
	if err := run(context.Background(), []string{"publish", "-version", "v1.0.0", "-commit", r, "-dist", dist, "-dir", dir}, getenv, &log); err != nil {
		t.Fatalf("publish: %v\n%s", err, log.String())
	}
	if got := git("show", r+":.github/workflows/deploy.yml"); !strings.Contains(got, "acme/gantry/actions/a@"+s) {
		t.Errorf("R's deploy.yml does not use actions/a at S %s:\n%s", s, got)
	}
	if got := git("show", s+":actions/a/action.yml"); !strings.Contains(got, image) {
		t.Errorf("S's actions/a/action.yml does not default to %s:\n%s", image, got)
	}
	rels := gh.Releases("acme/gantry")
	if len(rels) != 1 || rels[0].GetDraft() || !rels[0].GetImmutable() || len(rels[0].Assets) != 2 {
		t.Fatalf("releases after publish: %+v, want one published immutable release with 2 assets", rels)
	}
	if err := run(context.Background(), []string{"check", "-version", "v1.0.0"}, getenv, &log); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Errorf("check of a published version: %v, want it refused", err)
	}
}
