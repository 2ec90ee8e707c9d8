package cli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/action"
)

// run is one in-process run of the gantry CLI, as a workflow step would see it.
type run struct {
	code    int
	outputs map[string]string
	summary string
	log     string // stdout + stderr
}

// runCLI runs gantry with args in a fresh GitHub-Actions-like environment:
// vars, plus GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files.
func runCLI(t *testing.T, vars map[string]string, tr http.RoundTripper, args ...string) run {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
		"DOCKER_CONFIG":       filepath.Join(dir, "docker"), // never the developer's own logins
		"HOME":                dir,
	}
	for k, v := range vars {
		env[k] = v
	}
	var out bytes.Buffer
	code := Run(context.Background(), args, action.Env{
		Getenv:    func(k string) string { return env[k] },
		Stdout:    &out,
		Stderr:    &out,
		Transport: tr,
	})
	r := run{code: code, log: out.String()}
	data, _ := os.ReadFile(env["GITHUB_OUTPUT"])
	var err error
	if r.outputs, err = action.ParseOutputs(string(data)); err != nil {
		t.Fatalf("outputs unreadable: %v\n%s", err, data)
	}
	sum, _ := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	r.summary = string(sum)
	return r
}

// workspace makes a directory with files and changes into it for the test.
func workspace(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	return dir
}

// lockObject is the deploy lock object of a Compose project ("container")
// or a stack ("service") as docker inspect prints it, or "" when none exists.
func lockObject(t *testing.T, kind, name string) string {
	t.Helper()
	out, _ := exec.Command("docker", kind, "inspect", "gantry-lock--"+name).Output()
	if s := strings.TrimSpace(string(out)); s != "[]" {
		return s
	}
	return ""
}
