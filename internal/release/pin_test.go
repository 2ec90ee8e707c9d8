package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"v1.2.3", "v1.2.3", true},
		{"v0.10.0", "v0.10.0", true},
		{"v1.2.3-rc.1", "v1.2.3-rc.1", true},
		{"1.2.3", "", false},
		{"v1.2", "", false},
		{"v01.2.3", "", false},
		{"v1.2.3-", "", false},
		{"v1.2.3 ", "", false},
		{"v1.2.3;rm -rf /", "", false},
	} {
		v, err := ParseVersion(tc.in)
		if (err == nil) != tc.ok || (tc.ok && v.String() != tc.want) {
			t.Errorf("ParseVersion(%q) = %v, %v; want %q ok=%t", tc.in, v, err, tc.want, tc.ok)
		}
	}
}

// TestPreparedTree prepares a release of this tree: R pins every internal uses: to S, differs
// from S only there, carries VERSION, and has the edge image pinned by digest.
func TestPreparedTree(t *testing.T) {
	t.Parallel()
	dir := treeCopy(t)
	if err := CheckPinned(dir, testRepo); err == nil {
		t.Fatal("CheckPinned passes on main's tree, whose internal uses: are @v1: the check cannot fail")
	}
	v, _ := ParseVersion("v1.2.3")
	p, err := Prepare(context.Background(), PrepareOptions{Dir: dir, Repo: testRepo, Version: v, EdgeImage: edgeImage})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPinned(dir, testRepo); err != nil {
		t.Error(err)
	}
	files, err := PinnedFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	all, err := FindAllUses(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, u := range all {
		if u.Internal(testRepo) {
			n++
			if u.Ref() != p.S {
				t.Errorf("%s:%d uses %s, want @%s (S)", u.File, u.Line, u.Value, p.S)
			}
		}
	}
	if n == 0 {
		t.Error("the prepared tree has no internal uses: at all")
	}
	if got := git(t, dir, "rev-parse", "v1.2.3"); got != p.R {
		t.Errorf("tag v1.2.3 → %s, want R %s", got, p.R)
	}
	if got := git(t, dir, "show", p.R+":"+VersionFile); got != "v1.2.3" {
		t.Errorf("VERSION of R: %q, want v1.2.3", got)
	}
	if _, err := (gitDir{dir: dir}).run(context.Background(), "cat-file", "-e", p.Base+":"+VersionFile); err == nil {
		t.Error("M, main's commit, has a VERSION file")
	}
	if got := git(t, dir, "rev-parse", "main"); got != p.Base {
		t.Errorf("main moved to %s, want it at M %s: release commits belong to no branch", got, p.Base)
	}
	for _, f := range []string{EdgeFile, "actions/deploy-compose/action.yml", "actions/deploy-compose/README.md", "actions/rollback/action.yml", "actions/rollback/README.md"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), edgeImage) || strings.Contains(string(data), "gantry-edge:v1\"") || strings.Contains(string(data), "gantry-edge:v1`") {
			t.Errorf("%s: the default edge image is not %s", f, edgeImage)
		}
	}
}

func TestCheckOnlyUsesDiffer(t *testing.T) {
	t.Parallel()
	sha := strings.Repeat("a", 40)
	before := "jobs:\n  a:\n    steps:\n      - uses: gantry-dev/gantry/actions/guard@v1\n      - uses: actions/checkout@" + sha + " # v7.0.1\n      - run: echo hi\n"
	for _, tc := range []struct {
		name, after string
		ok          bool
	}{
		{"pinned", strings.Replace(before, "guard@v1", "guard@"+sha, 1), true},
		{"unchanged", before, true},
		{"ref not a SHA", strings.Replace(before, "guard@v1", "guard@main", 1), false},
		{"action changed", strings.Replace(before, "guard@v1", "verify@"+sha, 1), false},
		{"third-party changed", strings.Replace(before, "checkout@"+sha, "checkout@"+strings.Repeat("b", 40), 1), false},
		{"run changed", strings.Replace(before, "echo hi", "echo pwned", 1), false},
		{"line added", before + "      - run: true\n", false},
	} {
		err := CheckOnlyUsesDiffer("wf.yml", testRepo, []byte(before), []byte(tc.after))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%t", tc.name, err, tc.ok)
		}
	}
}

func TestCheckOneLevel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		inner string
		ok    bool
	}{
		{"composite uses only third-party actions", "      - uses: actions/setup-go@" + strings.Repeat("a", 40) + " # v7.0.0\n", true},
		{"composite uses another gantry action", "      - uses: gantry-dev/gantry/actions/b@v1\n", false},
		{"composite uses the root action", "      - uses: Gantry-Dev/Gantry@v1\n", false},
	} {
		dir := t.TempDir()
		write := func(f, s string) {
			p := filepath.Join(dir, filepath.FromSlash(f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(".github/workflows/deploy.yml", "on: workflow_call\njobs:\n  d:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: gantry-dev/gantry/actions/a@v1\n")
		write("actions/a/action.yml", "runs:\n  using: composite\n  steps:\n"+tc.inner)
		write("actions/b/action.yml", "runs:\n  using: composite\n  steps: []\n")
		write("action.yml", "runs:\n  using: composite\n  steps: []\n")
		err := CheckOneLevel(dir, testRepo)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%t", tc.name, err, tc.ok)
		}
	}
}

func TestPinEdgeImageRefuses(t *testing.T) {
	t.Parallel()
	for _, img := range []string{"ghcr.io/gantry-dev/gantry-edge:v1", "ghcr.io/gantry-dev/gantry-edge@sha256:" + strings.Repeat("0", 64), "ghcr.io/x/gantry-edge:v1@sha256:abc", ""} {
		if _, err := PinEdgeImage(t.TempDir(), img); err == nil {
			t.Errorf("PinEdgeImage(%q) succeeded, want it refused", img)
		}
	}
}

// TestReleaseTree checks, in a release commit (one with VERSION; release.yml runs it on R), that
// VERSION is a version and every internal uses: is pinned by SHA.
func TestReleaseTree(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, VersionFile))
	if os.IsNotExist(err) {
		t.Skip("not a release commit (no VERSION file): TestPreparedTree covers the release step")
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseVersion(strings.TrimSuffix(string(data), "\n")); err != nil || strings.Count(string(data), "\n") != 1 {
		t.Errorf("VERSION is %q, want one line vX.Y.Z: %v", data, err)
	}
	repo := os.Getenv("GITHUB_REPOSITORY")
	if repo == "" {
		repo = testRepo
	}
	if err := CheckPinned(root, repo); err != nil {
		t.Error(err)
	}
}

func TestPinInternalUses(t *testing.T) {
	t.Parallel()
	sha := strings.Repeat("c", 40)
	third := "actions/checkout@" + strings.Repeat("a", 40) + " # v7.0.1"
	for _, tc := range []struct{ name, in, want string }{
		{"step", "      - uses: gantry-dev/gantry/actions/guard@v1\n", "      - uses: gantry-dev/gantry/actions/guard@" + sha + "\n"},
		{"job, quoted, comment", "    uses: 'gantry-dev/gantry/.github/workflows/deploy.yml@v1' # reusable\n", "    uses: 'gantry-dev/gantry/.github/workflows/deploy.yml@" + sha + "' # reusable\n"},
		{"root action, other case, CRLF", "      - uses: Gantry-Dev/Gantry@main\r\n", "      - uses: Gantry-Dev/Gantry@" + sha + "\r\n"},
		{"third party untouched", "      - uses: " + third + "\n", "      - uses: " + third + "\n"},
		{"similar name untouched", "      - uses: gantry-dev/gantry-extra/x@v1\n", "      - uses: gantry-dev/gantry-extra/x@v1\n"},
		{"comment untouched", "#       uses: gantry-dev/gantry/.github/workflows/deploy.yml@v1\n", "#       uses: gantry-dev/gantry/.github/workflows/deploy.yml@v1\n"},
		{"run text untouched", "        run: echo uses: gantry-dev/gantry/actions/guard@v1\n", "        run: echo uses: gantry-dev/gantry/actions/guard@v1\n"},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, ".github", "workflows", "w.yml")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(tc.in), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := PinInternalUses(dir, testRepo, sha); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := PinInternalUses(t.TempDir(), testRepo, "v1"); err == nil {
		t.Error("PinInternalUses accepted the ref v1 as a SHA")
	}
}
