package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// VersionFile is the root file a release commit carries: one line, the release's version
// (vX.Y.Z). scripts/install.sh reads it to download exactly that release; main never has it.
const VersionFile = "VERSION"

// Committer is who the release commits are made by: the identity of GITHUB_TOKEN.
const (
	CommitterName  = "github-actions[bot]"
	CommitterEmail = "41898282+github-actions[bot]@users.noreply.github.com"
)

// PrepareOptions says what release to prepare, in which checkout.
type PrepareOptions struct {
	Dir       string  // a clean git checkout of main's commit M
	Repo      string  // owner/name of the repository (GITHUB_REPOSITORY)
	Version   Version // the release's version
	EdgeImage string  // the edge image built for this release, name:tag@sha256:…
}

// Prepared are the two commits of a release.
type Prepared struct {
	Base string // M, the commit released
	S    string // M + VERSION + the edge image pinned by digest
	R    string // S + every internal uses: pinned to S: the commit tagged vX.Y.Z
}

// Prepare makes the release commits on top of the checkout's HEAD (M) and tags R vX.Y.Z locally.
// A commit cannot name its own SHA, so internal uses: point at S, which differs from R only in
// those lines: whoever runs R's workflows runs S's actions, the same code.
func Prepare(ctx context.Context, o PrepareOptions) (Prepared, error) {
	g := gitDir{dir: o.Dir}
	var p Prepared
	if o.Repo == "" || strings.Count(o.Repo, "/") != 1 {
		return p, fmt.Errorf("prepare: repository %q is not owner/name (GITHUB_REPOSITORY)", o.Repo)
	}
	if !pinnedImageRE.MatchString(o.EdgeImage) {
		return p, fmt.Errorf("prepare: edge image %q is not name:tag@sha256:<64 hex>; pass the digest the edge-image job printed", o.EdgeImage)
	}
	status, err := g.run(ctx, "status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return p, err
	}
	if status != "" {
		return p, fmt.Errorf("prepare: %s has uncommitted changes; release from a clean checkout:\n%s", o.Dir, status)
	}
	if p.Base, err = g.run(ctx, "rev-parse", "HEAD"); err != nil {
		return p, err
	}
	// The release commits belong to no branch: main never gets VERSION.
	if _, err := g.run(ctx, "checkout", "--quiet", "--detach", p.Base); err != nil {
		return p, err
	}
	if _, err := os.Stat(filepath.Join(o.Dir, VersionFile)); err == nil {
		return p, fmt.Errorf("prepare: %s already has a %s file, so HEAD is a release commit; release a commit of main", o.Dir, VersionFile)
	}
	if err := CheckOneLevel(o.Dir, o.Repo); err != nil {
		return p, fmt.Errorf("prepare: %w", err)
	}

	v := o.Version.String()
	if err := os.WriteFile(filepath.Join(o.Dir, VersionFile), []byte(v+"\n"), 0o644); err != nil {
		return p, err
	}
	if _, err := PinEdgeImage(o.Dir, o.EdgeImage); err != nil {
		return p, fmt.Errorf("prepare: %w", err)
	}
	if p.S, err = g.commit(ctx, fmt.Sprintf("release %s: VERSION, and the default edge image pinned to %s", v, o.EdgeImage)); err != nil {
		return p, err
	}
	changed, err := PinInternalUses(o.Dir, o.Repo, p.S)
	if err != nil {
		return p, fmt.Errorf("prepare: %w", err)
	}
	if p.R, err = g.commit(ctx, fmt.Sprintf("release %s: internal uses: pinned to %s", v, p.S)); err != nil {
		return p, err
	}
	if err := g.checkOnlyUses(ctx, o.Repo, p.S, p.R, changed); err != nil {
		return p, fmt.Errorf("prepare: %w", err)
	}
	if err := CheckPinned(o.Dir, o.Repo); err != nil {
		return p, fmt.Errorf("prepare: %w", err)
	}
	if _, err := g.run(ctx, "tag", "--force", v, p.R); err != nil {
		return p, err
	}
	return p, nil
}

// gitDir runs git in a checkout.
type gitDir struct{ dir string }

func (g gitDir) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME="+CommitterName, "GIT_AUTHOR_EMAIL="+CommitterEmail,
		"GIT_COMMITTER_NAME="+CommitterName, "GIT_COMMITTER_EMAIL="+CommitterEmail)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %v: %s", strings.Join(args, " "), g.dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func (g gitDir) commit(ctx context.Context, msg string) (string, error) {
	if _, err := g.run(ctx, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, "commit", "--quiet", "--allow-empty", "--no-verify", "-m", msg); err != nil {
		return "", err
	}
	return g.run(ctx, "rev-parse", "HEAD")
}

// checkOnlyUses fails unless R differs from S only in internal uses: refs, in the files pinned.
func (g gitDir) checkOnlyUses(ctx context.Context, repo, s, r string, pinned []string) error {
	names, err := g.run(ctx, "diff", "--name-only", s, r)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(names) {
		if !slices.Contains(pinned, f) {
			return fmt.Errorf("the pinning commit changes %s, which is not a pinned file", f)
		}
		before, err1 := g.run(ctx, "show", s+":"+f)
		after, err2 := g.run(ctx, "show", r+":"+f)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if err := CheckOnlyUsesDiffer(f, repo, []byte(before), []byte(after)); err != nil {
			return err
		}
	}
	return nil
}
