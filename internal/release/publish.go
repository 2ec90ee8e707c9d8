package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-github/v84/github"
)

// PublishOptions says which prepared release to publish where.
type PublishOptions struct {
	Client  *github.Client
	Owner   string
	Repo    string
	Version Version
	Commit  string   // R, the commit tagged Version
	Assets  []string // files to attach: the archives and checksums.txt
	GitDir  string   // the checkout holding Commit
	Remote  string   // the git remote of the repository ("origin")
	Log     io.Writer
	// Steps, when set, replaces the order of the publishing steps (tests prove the order matters).
	Steps []Step
}

// Step is one step of publishing a release.
type Step string

// The publishing steps, in the only order immutable releases allow: every asset is uploaded to
// the draft before it is published, as nothing can be added to a published release.
const (
	StepDraft   Step = "draft"
	StepUpload  Step = "upload"
	StepPublish Step = "publish"
)

// DefaultSteps is the order Publish takes.
var DefaultSteps = []Step{StepDraft, StepUpload, StepPublish}

// ErrPublished is a release that already exists and is published: immutable, it cannot be redone.
var ErrPublished = errors.New("already published")

// Published is what Publish did.
type Published struct {
	Release *github.RepositoryRelease
	Moved   []string // the moving tags (v1, v1.2) now at Commit
}

// CheckNew fails when version's release is already published: with immutable releases its tag
// and assets are frozen and its tag name cannot be reused, so a new version must be cut. A draft
// (an earlier run that failed) does not count.
func CheckNew(ctx context.Context, c *github.Client, owner, repo string, v Version) error {
	rel, resp, err := c.Repositories.GetReleaseByTag(ctx, owner, repo, v.String())
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up release %s of %s/%s: %w", v, owner, repo, err)
	}
	if !rel.GetDraft() {
		return fmt.Errorf("release %s of %s/%s is %w (%s) and releases are immutable: cut a new version, for example v%d.%d.%d",
			v, owner, repo, ErrPublished, rel.GetHTMLURL(), v.Major, v.Minor, v.Patch+1)
	}
	return nil
}

// Publish pushes the release tag, creates the release as a draft, uploads every asset to it,
// publishes it, then moves vMAJOR and vMAJOR.MINOR (plain git tags, no release objects) to the
// release commit when it is the newest non-prerelease of that major or minor.
func Publish(ctx context.Context, o PublishOptions) (Published, error) {
	var out Published
	v := o.Version.String()
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	if !fullSHA.MatchString(o.Commit) {
		return out, fmt.Errorf("publish %s: commit %q is not a full SHA", v, o.Commit)
	}
	if len(o.Assets) == 0 {
		return out, fmt.Errorf("publish %s: no assets; build them first (goreleaser release --skip=publish)", v)
	}
	for _, a := range o.Assets {
		if st, err := os.Stat(a); err != nil || st.IsDir() {
			return out, fmt.Errorf("publish %s: asset %s is not a file: %v", v, a, err)
		}
	}
	if err := CheckNew(ctx, o.Client, o.Owner, o.Repo, o.Version); err != nil {
		return out, err
	}
	if err := deleteDrafts(ctx, o, logf); err != nil {
		return out, err
	}
	remote := o.Remote
	if remote == "" {
		remote = "origin"
	}
	// A tag left by an earlier failed run (no published release) is moved; a published release's
	// tag is refused by GitHub, and CheckNew refused that case already.
	if _, err := (gitDir{dir: o.GitDir}).run(ctx, "push", "--force", remote, o.Commit+":refs/tags/"+v); err != nil {
		return out, fmt.Errorf("publish %s: push the tag: %w", v, err)
	}
	logf("pushed tag %s → %s", v, o.Commit)

	var rel *github.RepositoryRelease
	steps := o.Steps
	if steps == nil {
		steps = DefaultSteps
	}
	for _, step := range steps {
		var err error
		switch step {
		case StepDraft:
			rel, _, err = o.Client.Repositories.CreateRelease(ctx, o.Owner, o.Repo, &github.RepositoryRelease{
				TagName: github.Ptr(v), TargetCommitish: github.Ptr(o.Commit), Name: github.Ptr(v),
				Draft: github.Ptr(true), Prerelease: github.Ptr(o.Version.Pre != ""), GenerateReleaseNotes: github.Ptr(true),
			})
			if err == nil {
				logf("created draft release %s (id %d)", v, rel.GetID())
			}
		case StepUpload:
			err = upload(ctx, o, rel, logf)
		case StepPublish:
			latest, lerr := isLatest(ctx, o)
			if lerr != nil {
				return out, lerr
			}
			rel, _, err = o.Client.Repositories.EditRelease(ctx, o.Owner, o.Repo, rel.GetID(), &github.RepositoryRelease{
				Draft: github.Ptr(false), MakeLatest: github.Ptr(fmt.Sprint(latest)),
			})
			if err == nil {
				logf("published release %s (immutable: %t): %s", v, rel.GetImmutable(), rel.GetHTMLURL())
			}
		default:
			err = fmt.Errorf("unknown step %q", step)
		}
		if err != nil {
			return out, fmt.Errorf("publish %s: %s: %w", v, step, err)
		}
	}
	out.Release = rel
	moved, err := moveTags(ctx, o, logf)
	out.Moved = moved
	if err != nil {
		return out, fmt.Errorf("publish %s: the release is out, but moving its tags failed: %w; move them by hand: git push --force origin %s:refs/tags/<tag>", v, err, o.Commit)
	}
	return out, nil
}

// deleteDrafts removes drafts of this version an earlier, failed run left.
func deleteDrafts(ctx context.Context, o PublishOptions, logf func(string, ...any)) error {
	all, err := listReleases(ctx, o)
	if err != nil {
		return err
	}
	for _, r := range all {
		if r.GetDraft() && r.GetTagName() == o.Version.String() {
			if _, err := o.Client.Repositories.DeleteRelease(ctx, o.Owner, o.Repo, r.GetID()); err != nil {
				return fmt.Errorf("delete the draft of %s an earlier run left: %w", o.Version, err)
			}
			logf("deleted the draft release %s (id %d) an earlier run left", o.Version, r.GetID())
		}
	}
	return nil
}

func upload(ctx context.Context, o PublishOptions, rel *github.RepositoryRelease, logf func(string, ...any)) error {
	if rel == nil {
		return errors.New("no release to upload to: create the draft first")
	}
	for _, path := range o.Assets {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		name := filepath.Base(path)
		_, _, err = o.Client.Repositories.UploadReleaseAssetFromRelease(ctx, rel, &github.UploadOptions{Name: name}, f, st.Size())
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", name, err)
		}
		logf("uploaded %s (%d bytes)", name, st.Size())
	}
	assets, _, err := o.Client.Repositories.ListReleaseAssets(ctx, o.Owner, o.Repo, rel.GetID(), &github.ListOptions{PerPage: 100})
	if err != nil {
		return fmt.Errorf("list the uploaded assets: %w", err)
	}
	var got, want []string
	for _, a := range assets {
		got = append(got, a.GetName())
	}
	for _, p := range o.Assets {
		want = append(want, filepath.Base(p))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("the draft has assets %v, want %v", got, want)
	}
	return nil
}

func listReleases(ctx context.Context, o PublishOptions) ([]*github.RepositoryRelease, error) {
	var all []*github.RepositoryRelease
	opts := &github.ListOptions{PerPage: 100}
	for {
		page, resp, err := o.Client.Repositories.ListReleases(ctx, o.Owner, o.Repo, opts)
		if err != nil {
			return nil, fmt.Errorf("list the releases of %s/%s: %w", o.Owner, o.Repo, err)
		}
		all = append(all, page...)
		if resp.NextPage == 0 {
			return all, nil
		}
		opts.Page = resp.NextPage
	}
}

// newest reports, among the published non-prerelease releases plus o.Version, whether o.Version
// is the newest overall, of its major and of its minor.
func newest(ctx context.Context, o PublishOptions) (overall, major, minor bool, err error) {
	if o.Version.Pre != "" {
		return false, false, false, nil
	}
	all, err := listReleases(ctx, o)
	if err != nil {
		return false, false, false, err
	}
	overall, major, minor = true, true, true
	for _, r := range all {
		if r.GetDraft() || r.GetPrerelease() {
			continue
		}
		w, err := ParseVersion(r.GetTagName())
		if err != nil || w.Pre != "" || w == o.Version {
			continue
		}
		if o.Version.Less(w) {
			overall = false
			if w.Major == o.Version.Major {
				major = false
				if w.Minor == o.Version.Minor {
					minor = false
				}
			}
		}
	}
	return overall, major, minor, nil
}

func isLatest(ctx context.Context, o PublishOptions) (bool, error) {
	overall, _, _, err := newest(ctx, o)
	return overall, err
}

// moveTags points vMAJOR and vMAJOR.MINOR at the release commit where it is the newest release
// of that major or minor; an older patch release leaves them where they are.
func moveTags(ctx context.Context, o PublishOptions, logf func(string, ...any)) ([]string, error) {
	_, major, minor, err := newest(ctx, o)
	if err != nil {
		return nil, err
	}
	var moved []string
	for _, t := range []struct {
		tag  string
		move bool
	}{{o.Version.MajorTag(), major}, {o.Version.MinorTag(), minor}} {
		if !t.move {
			logf("%s stays: %s is not the newest release of it", t.tag, o.Version)
			continue
		}
		ref := "tags/" + t.tag
		_, resp, err := o.Client.Git.GetRef(ctx, o.Owner, o.Repo, ref)
		switch {
		case resp != nil && resp.StatusCode == http.StatusNotFound:
			_, _, err = o.Client.Git.CreateRef(ctx, o.Owner, o.Repo, github.CreateRef{Ref: "refs/" + ref, SHA: o.Commit})
		case err == nil:
			_, _, err = o.Client.Git.UpdateRef(ctx, o.Owner, o.Repo, ref, github.UpdateRef{SHA: o.Commit, Force: github.Ptr(true)})
		}
		if err != nil {
			return moved, fmt.Errorf("move %s: %w", t.tag, err)
		}
		logf("moved %s → %s (%s)", t.tag, o.Commit, o.Version)
		moved = append(moved, t.tag)
	}
	return moved, nil
}

// Assets lists the files of dist a release attaches: goreleaser's archives and checksums.txt.
func Assets(dist string) ([]string, error) {
	var out []string
	for _, pattern := range []string{"gantry_*.tar.gz", "gantry_*.zip", "checksums.txt"} {
		m, err := filepath.Glob(filepath.Join(dist, pattern))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	if !slices.ContainsFunc(out, func(p string) bool { return strings.HasSuffix(p, "checksums.txt") }) {
		return nil, fmt.Errorf("%s has no checksums.txt; run goreleaser release --skip=publish first", dist)
	}
	return out, nil
}
