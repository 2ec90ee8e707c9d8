package acceptance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/actionyml"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// actInstall is how act is installed.
const actInstall = "scripts/tools.sh (go install github.com/nektos/act@v0.2.89)"

// repoCopy copies the gantry checkout (tracked and untracked, not ignored
// files) into a new git repository with workflow as its only workflow, as a
// consumer's repository holding the actions would be.
func repoCopy(t *testing.T, workflow string) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" || strings.HasPrefix(f, ".github/workflows/") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(root, f))
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dst, ".github", "workflows"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, ".github", "workflows", "test.yml"), []byte(workflow), 0o644); err != nil {
		t.Fatal(err)
	}
	// act workaround: host mode without .actrc asks which image to use and
	// dies without a terminal.
	if err := os.WriteFile(filepath.Join(dst, ".actrc"), []byte("-P ubuntu-latest=-self-hosted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "consumer"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dst
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dst
}

// runAct runs the repository's workflow on a push event and returns what
// act reported; extra are more act arguments.
func runAct(t *testing.T, repo string, extra ...string) *actRun {
	t.Helper()
	// act workaround: act fetches every `uses:` of a composite action, even a
	// skipped one; setup-go (used only when a runner lacks Go) is replaced by
	// a no-op action so that no network is needed.
	stub := t.TempDir()
	if err := os.WriteFile(filepath.Join(stub, "action.yml"), []byte("name: stub\nruns:\n  using: composite\n  steps:\n    - run: 'true'\n      shell: bash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setupGo := strings.Fields(actionyml.SetupGo)[0]
	return execAct(t, repo, append([]string{"push", "--local-repository", setupGo + "=" + stub}, extra...)...)
}
