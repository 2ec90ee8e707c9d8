package release

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/githubapi"
)

const (
	testRepo  = "gantry-dev/gantry"
	edgeImage = "ghcr.io/gantry-dev/gantry-edge:v1.2.3@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := (gitDir{dir: dir}).run(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// repoRoot is this repository's checkout.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// treeCopy copies the files git tracks in this checkout (as they are in the work tree) into a
// new git repository with one commit, main's M, and returns its directory.
func treeCopy(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	dst := t.TempDir()
	for _, f := range strings.Split(git(t, root, "ls-files", "-z"), "\x00") {
		if f == "" || f == VersionFile {
			continue
		}
		src := filepath.Join(root, f)
		st, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if st.Mode()&os.ModeSymlink != 0 {
			link, _ := os.Readlink(src)
			if err := os.Symlink(link, to); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	git(t, dst, "init", "--quiet", "--initial-branch=main")
	git(t, dst, "add", "--all")
	git(t, dst, "commit", "--quiet", "-m", "M")
	return dst
}

// world is a prepared checkout, its origin (a bare repository) and a fake GitHub with
// immutable releases over that origin.
type world struct {
	dir, origin string
	gh          *githubfake.Server
	client      *github.Client
	assets      []string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{dir: treeCopy(t), origin: filepath.Join(t.TempDir(), "origin.git")}
	git(t, w.dir, "init", "--quiet", "--bare", w.origin)
	git(t, w.dir, "remote", "add", "origin", w.origin)
	git(t, w.dir, "push", "--quiet", "origin", "main")
	w.gh = githubfake.Start(t, githubfake.Options{Repository: testRepo, GitDir: w.origin, ImmutableReleases: true})
	if err := w.gh.InitGitDir(); err != nil {
		t.Fatal(err)
	}
	c, err := githubapi.NewClient(w.gh.APIURL(), w.gh.APIToken(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	dist := t.TempDir()
	for _, name := range []string{"gantry_linux_amd64.tar.gz", "gantry_windows_amd64.zip", "checksums.txt"} {
		if err := os.WriteFile(filepath.Join(dist, name), []byte("content of "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if w.assets, err = Assets(dist); err != nil {
		t.Fatal(err)
	}
	return w
}

// release prepares and publishes version in w, with steps (nil: the default order).
func (w *world) release(t *testing.T, version string, steps []Step) (Prepared, Published, error) {
	t.Helper()
	v, err := ParseVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	// Each release starts from main's commit, as the workflow's checkout does.
	git(t, w.dir, "checkout", "--quiet", "main")
	p, err := Prepare(context.Background(), PrepareOptions{Dir: w.dir, Repo: testRepo, Version: v, EdgeImage: edgeImage})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Publish(context.Background(), PublishOptions{Client: w.client, Owner: "gantry-dev", Repo: "gantry", Version: v,
		Commit: p.R, Assets: w.assets, GitDir: w.dir, Remote: "origin", Steps: steps})
	return p, out, err
}

func (w *world) tag(t *testing.T, tag string) string {
	t.Helper()
	out, err := exec.Command("git", "--git-dir="+w.origin, "rev-parse", "--verify", "--quiet", "refs/tags/"+tag+"^{commit}").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func TestPublishImmutable(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not on PATH; install git")
	}
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()

	p, out, err := w.release(t, "v1.2.3", nil)
	if err != nil {
		t.Fatalf("release v1.2.3: %v", err)
	}
	rel := out.Release
	if rel.GetDraft() || !rel.GetImmutable() {
		t.Errorf("release v1.2.3: draft %t immutable %t, want a published immutable release", rel.GetDraft(), rel.GetImmutable())
	}
	var names []string
	for _, a := range rel.Assets {
		names = append(names, a.GetName())
	}
	slices.Sort(names)
	if want := []string{"checksums.txt", "gantry_linux_amd64.tar.gz", "gantry_windows_amd64.zip"}; !slices.Equal(names, want) {
		t.Errorf("assets of v1.2.3: %v, want %v", names, want)
	}
	for _, tag := range []string{"v1.2.3", "v1", "v1.2"} {
		if got := w.tag(t, tag); got != p.R {
			t.Errorf("tag %s → %q, want the release commit %s", tag, got, p.R)
		}
	}
	if !slices.Equal(out.Moved, []string{"v1", "v1.2"}) {
		t.Errorf("moved %v, want [v1 v1.2]", out.Moved)
	}

	// The published release is frozen: no upload, no asset delete, its tag does not move.
	f, err := os.Open(w.assets[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = w.client.Repositories.UploadReleaseAssetFromRelease(ctx, rel, &github.UploadOptions{Name: "late.txt"}, f, st.Size())
	if !strings.Contains(errString(err), githubfake.MessageImmutableUpload) {
		t.Errorf("upload to the published release: %v, want %q", err, githubfake.MessageImmutableUpload)
	}
	if _, err := w.client.Repositories.DeleteReleaseAsset(ctx, "gantry-dev", "gantry", rel.Assets[0].GetID()); !strings.Contains(errString(err), githubfake.MessageImmutableDelete) {
		t.Errorf("delete an asset of the published release: %v, want %q", err, githubfake.MessageImmutableDelete)
	}
	if _, _, err := w.client.Git.UpdateRef(ctx, "gantry-dev", "gantry", "tags/v1.2.3", github.UpdateRef{SHA: p.Base, Force: github.Ptr(true)}); !strings.Contains(errString(err), githubfake.MessageProtectedRef) {
		t.Errorf("move tag v1.2.3 through the API: %v, want %q", err, githubfake.MessageProtectedRef)
	}
	if _, err := (gitDir{dir: w.dir}).run(ctx, "push", "--force", "origin", p.Base+":refs/tags/v1.2.3"); !strings.Contains(errString(err), githubfake.MessageProtectedRef) {
		t.Errorf("push tag v1.2.3 elsewhere: %v, want %q", err, githubfake.MessageProtectedRef)
	}

	// The same version again is refused before anything is touched.
	calls := len(w.gh.Calls())
	_, _, err = w.release(t, "v1.2.3", nil)
	if !errors.Is(err, ErrPublished) || !strings.Contains(err.Error(), "cut a new version, for example v1.2.4") {
		t.Errorf("release v1.2.3 again: %v, want ErrPublished saying to cut v1.2.4", err)
	}
	for _, c := range w.gh.Calls()[calls:] {
		if c.Method != "GET" {
			t.Errorf("release v1.2.3 again made %s %s", c.Method, c.Path)
		}
	}

	// An older patch release moves its minor's tag only; a newer one moves both.
	p119, out, err := w.release(t, "v1.1.9", nil)
	if err != nil {
		t.Fatalf("release v1.1.9: %v", err)
	}
	if !slices.Equal(out.Moved, []string{"v1.1"}) || w.tag(t, "v1") != p.R || w.tag(t, "v1.1") != p119.R {
		t.Errorf("after v1.1.9: moved %v, v1 → %s, v1.1 → %s; want v1 at %s and v1.1 at %s", out.Moved, w.tag(t, "v1"), w.tag(t, "v1.1"), p.R, p119.R)
	}
	p130, out, err := w.release(t, "v1.3.0-rc.1", nil)
	if err != nil || len(out.Moved) != 0 || !out.Release.GetPrerelease() || w.tag(t, "v1") != p.R {
		t.Errorf("pre-release v1.3.0-rc.1: %v, moved %v, prerelease %t, v1 → %s; want no tag moved (R %s)", err, out.Moved, out.Release.GetPrerelease(), w.tag(t, "v1"), p130.R)
	}
	p124, out, err := w.release(t, "v1.2.4", nil)
	if err != nil || !slices.Equal(out.Moved, []string{"v1", "v1.2"}) || w.tag(t, "v1") != p124.R {
		t.Errorf("release v1.2.4: %v, moved %v, v1 → %s; want v1 and v1.2 at %s", err, out.Moved, w.tag(t, "v1"), p124.R)
	}
}

// TestPublishOrder is the mutation test of the publishing order: publishing before the upload
// leaves a release nothing can be added to, and the fake refuses the upload as GitHub does.
func TestPublishOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		steps   []Step
		wantErr string
	}{
		{"draft, upload, publish", DefaultSteps, ""},
		{"publish before upload", []Step{StepDraft, StepPublish, StepUpload}, githubfake.MessageImmutableUpload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			_, _, err := w.release(t, "v2.0.0", tc.steps)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("release: %v", err)
			}
			if tc.wantErr != "" && !strings.Contains(errString(err), tc.wantErr) {
				t.Fatalf("release: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// TestPublishAfterFailedRun: a run that failed in the upload leaves the pushed tag and a draft
// behind; the next run for the same version replaces them.
func TestPublishAfterFailedRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.gh.Inject(githubfake.ServerError(githubfake.OpUploadReleaseAsset, 502, 1))
	if _, _, err := w.release(t, "v3.0.0", nil); err == nil || !strings.Contains(err.Error(), "upload") {
		t.Fatalf("release with a failing upload: %v, want an upload error", err)
	}
	if w.tag(t, "v3.0.0") == "" || len(w.gh.Releases(testRepo)) != 1 {
		t.Fatalf("the failed run left tag %q and %d releases, want the tag and a draft", w.tag(t, "v3.0.0"), len(w.gh.Releases(testRepo)))
	}
	p, out, err := w.release(t, "v3.0.0", nil)
	if err != nil {
		t.Fatalf("release v3.0.0 after a failed run: %v", err)
	}
	rels := w.gh.Releases(testRepo)
	if len(rels) != 1 || rels[0].GetDraft() || len(rels[0].Assets) != len(w.assets) || w.tag(t, "v3.0.0") != p.R {
		t.Errorf("after the re-run: %d releases (draft %t, %d assets), tag → %s; want one published release with %d assets at %s",
			len(rels), out.Release.GetDraft(), len(rels[0].Assets), w.tag(t, "v3.0.0"), len(w.assets), p.R)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Error()
	}
	return err.Error()
}
