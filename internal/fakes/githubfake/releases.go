package githubfake

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-github/v84/github"
)

// Release and git reference operations. With Options.ImmutableReleases a published release is
// frozen as GitHub's immutable releases freeze it: no asset upload or delete, and its tag can be
// neither moved nor deleted, nor reused once the release is deleted.
const (
	OpListReleases       = "GET /repos/{owner}/{repo}/releases"
	OpCreateRelease      = "POST /repos/{owner}/{repo}/releases"
	OpGetRelease         = "GET /repos/{owner}/{repo}/releases/{release_id}"
	OpGetReleaseByTag    = "GET /repos/{owner}/{repo}/releases/tags/{tag}"
	OpUpdateRelease      = "PATCH /repos/{owner}/{repo}/releases/{release_id}"
	OpDeleteRelease      = "DELETE /repos/{owner}/{repo}/releases/{release_id}"
	OpListReleaseAssets  = "GET /repos/{owner}/{repo}/releases/{release_id}/assets"
	OpUploadReleaseAsset = "POST /repos/{owner}/{repo}/releases/{release_id}/assets"
	OpDeleteReleaseAsset = "DELETE /repos/{owner}/{repo}/releases/assets/{asset_id}"
	OpGetRef             = "GET /repos/{owner}/{repo}/git/ref/{ref...}"
	OpCreateRef          = "POST /repos/{owner}/{repo}/git/refs"
	OpUpdateRef          = "PATCH /repos/{owner}/{repo}/git/refs/{ref...}"
	OpDeleteRef          = "DELETE /repos/{owner}/{repo}/git/refs/{ref...}"
)

// Messages of GitHub's immutable releases (HTTP 422), as GitHub answers API calls and pushes.
const (
	MessageImmutableUpload = "Cannot upload assets to an immutable release."
	MessageImmutableDelete = "Cannot delete assets from an immutable release."
	MessageProtectedRef    = "Cannot update this protected ref."
	MessageTagUsed         = "tag_name was used by an immutable release"
)

// immutableRefsFile, inside Options.GitDir, lists the tags of immutable releases, one a line;
// the repository's update hook refuses pushes to them as GitHub does (GH013).
const immutableRefsFile = "gantry-fake-immutable-refs"

const updateHook = `#!/bin/sh
# githubfake: a published immutable release's tag cannot be moved or deleted.
if grep -qxF "$1" "$GIT_DIR/` + immutableRefsFile + `" 2>/dev/null; then
	echo "error: GH013: Repository rule violations found for $1." >&2
	echo "- ` + MessageProtectedRef + `" >&2
	exit 1
fi
`

type release struct {
	r      *github.RepositoryRelease
	assets []*asset
}

type asset struct {
	a    *github.ReleaseAsset
	data []byte
}

func (s *Server) registerReleases() {
	s.route(OpListReleases, s.listReleases)
	s.route(OpCreateRelease, s.createRelease)
	s.route(OpGetReleaseByTag, s.getReleaseByTag)
	s.route(OpGetRelease, s.getRelease)
	s.route(OpUpdateRelease, s.updateRelease)
	s.route(OpDeleteRelease, s.deleteRelease)
	// GET .../releases/{release_id}/assets and .../releases/tags/{tag} overlap in http.ServeMux.
	s.routeAt(OpListReleaseAssets, "/repos/{owner}/{repo}/releases/{release_id}/{sub}", func(rq *request) response {
		if rq.r.PathValue("sub") != "assets" {
			return rq.notFound()
		}
		return s.listReleaseAssets(rq)
	})
	s.route(OpUploadReleaseAsset, s.uploadReleaseAsset)
	s.route(OpDeleteReleaseAsset, s.deleteReleaseAsset)
	s.route(OpGetRef, s.getRef)
	s.route(OpCreateRef, s.createRef)
	s.route(OpUpdateRef, s.updateRef)
	s.route(OpDeleteRef, s.deleteRef)
}

// InitGitDir makes the bare repository at Options.GitDir refuse, in its update hook, pushes that
// move or delete an immutable release's tag; tests push to it as to GitHub.
func (s *Server) InitGitDir() error {
	if s.opts.GitDir == "" {
		return fmt.Errorf("githubfake: Options.GitDir is not set")
	}
	hooks := filepath.Join(s.opts.GitDir, "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(hooks, "update"), []byte(updateHook), 0o755)
}

// Releases returns repo's releases, newest first, as the API lists them.
func (s *Server) Releases(repo string) []*github.RepositoryRelease {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[repoKey(repo)]
	if r == nil {
		return nil
	}
	var out []*github.RepositoryRelease
	for i := len(r.releases) - 1; i >= 0; i-- {
		out = append(out, s.releaseJSON(r, r.releases[i], ""))
	}
	return out
}

// AssetData returns the bytes of asset name of the release tagged tag in repo.
func (s *Server) AssetData(repo, tag, name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[repoKey(repo)]
	if r == nil {
		return nil, false
	}
	for _, rel := range r.releases {
		if rel.r.GetTagName() != tag {
			continue
		}
		for _, a := range rel.assets {
			if a.a.GetName() == name {
				return a.data, true
			}
		}
	}
	return nil, false
}

// git runs git on Options.GitDir.
func (s *Server) git(args ...string) (string, error) {
	if s.opts.GitDir == "" {
		return "", fmt.Errorf("githubfake: git references need Options.GitDir")
	}
	cmd := exec.Command("git", append([]string{"--git-dir=" + s.opts.GitDir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// refSHA is the commit ref ("refs/tags/v1") points at, or "".
func (s *Server) refSHA(ref string) string {
	out, err := s.git("rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return ""
	}
	return out
}

func (s *Server) releaseJSON(r *repository, rel *release, base string) *github.RepositoryRelease {
	cp := *rel.r
	if base != "" {
		cp.URL = github.Ptr(fmt.Sprintf("%s/repos/%s/%s/releases/%d", base, r.owner, r.name, cp.GetID()))
		cp.UploadURL = github.Ptr(cp.GetURL() + "/assets{?name,label}")
	}
	cp.Assets = nil
	for _, a := range rel.assets {
		ac := *a.a
		cp.Assets = append(cp.Assets, &ac)
	}
	return &cp
}

func (s *Server) findRelease(rq *request) (*repository, *release, response, bool) {
	r := s.repo(rq)
	id, err := strconv.ParseInt(rq.r.PathValue("release_id"), 10, 64)
	if r == nil || err != nil {
		return nil, nil, rq.notFound(), false
	}
	for _, rel := range r.releases {
		if rel.r.GetID() == id {
			return r, rel, response{}, true
		}
	}
	return nil, nil, rq.notFound(), false
}

func (s *Server) listReleases(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	list := []*github.RepositoryRelease{}
	for i := len(r.releases) - 1; i >= 0; i-- {
		list = append(list, s.releaseJSON(r, r.releases[i], rq.base))
	}
	return response{http.StatusOK, paginate(rq, list)}
}

func (s *Server) getRelease(rq *request) response {
	r, rel, resp, ok := s.findRelease(rq)
	if !ok {
		return resp
	}
	return response{http.StatusOK, s.releaseJSON(r, rel, rq.base)}
}

// getReleaseByTag finds a published release only, as GitHub does: drafts have no tag yet.
func (s *Server) getReleaseByTag(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	for _, rel := range r.releases {
		if rel.r.GetTagName() == rq.r.PathValue("tag") && !rel.r.GetDraft() {
			return response{http.StatusOK, s.releaseJSON(r, rel, rq.base)}
		}
	}
	return rq.notFound()
}

var validTag = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

func (s *Server) createRelease(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	var in github.RepositoryRelease
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	tag := in.GetTagName()
	if !validTag.MatchString(tag) {
		return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{Resource: "Release", Code: "invalid", Field: "tag_name"})
	}
	if slices.Contains(r.usedTags, tag) {
		return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{Resource: "Release", Code: "custom", Field: "tag_name", Message: MessageTagUsed})
	}
	for _, rel := range r.releases {
		if rel.r.GetTagName() == tag && !rel.r.GetDraft() {
			return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{Resource: "Release", Code: "already_exists", Field: "tag_name"})
		}
	}
	if !in.GetDraft() && s.refSHA("refs/tags/"+tag) == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{Resource: "Release", Code: "invalid", Field: "tag_name", Message: "tag " + tag + " does not exist; this fake creates tags only on publish of a draft"})
	}
	id := s.newID()
	name := in.GetName()
	if name == "" {
		name = tag
	}
	body := in.GetBody()
	if in.GetGenerateReleaseNotes() {
		body = strings.TrimSpace(body + "\n\n**Full Changelog**: generated by the fake")
	}
	rel := &github.RepositoryRelease{
		ID: github.Ptr(id), TagName: github.Ptr(tag), TargetCommitish: in.TargetCommitish, Name: github.Ptr(name), Body: github.Ptr(body),
		Draft: github.Ptr(in.GetDraft()), Prerelease: github.Ptr(in.GetPrerelease()), Immutable: github.Ptr(false),
		CreatedAt: s.timestamp(), Author: rq.id.User,
		HTMLURL: github.Ptr(fmt.Sprintf("%s/%s/%s/releases/tag/%s", s.webURL(), r.owner, r.name, tag)),
	}
	if !in.GetDraft() {
		if resp := s.publish(r, rel); resp.status != 0 {
			return resp
		}
	}
	nr := &release{r: rel}
	r.releases = append(r.releases, nr)
	return response{http.StatusCreated, s.releaseJSON(r, nr, rq.base)}
}

// publish marks rel published (and immutable when the repository has immutable releases on),
// creating its tag from target_commitish when it does not exist.
func (s *Server) publish(r *repository, rel *github.RepositoryRelease) response {
	tag := "refs/tags/" + rel.GetTagName()
	if s.refSHA(tag) == "" {
		target := rel.GetTargetCommitish()
		if target == "" {
			target = "HEAD"
		}
		sha := s.refSHA(target)
		if sha == "" {
			return response{http.StatusUnprocessableEntity, apiError{Message: "Validation Failed", Errors: []github.Error{{Resource: "Release", Code: "invalid", Field: "target_commitish"}}, Status: "422"}}
		}
		if _, err := s.git("update-ref", tag, sha); err != nil {
			return response{http.StatusInternalServerError, apiError{Message: err.Error(), Status: "500"}}
		}
	}
	rel.Draft = github.Ptr(false)
	rel.PublishedAt = s.timestamp()
	if s.opts.ImmutableReleases {
		rel.Immutable = github.Ptr(true)
		f, err := os.OpenFile(filepath.Join(s.opts.GitDir, immutableRefsFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = fmt.Fprintln(f, tag)
			_ = f.Close()
		}
		if err != nil {
			return response{http.StatusInternalServerError, apiError{Message: err.Error(), Status: "500"}}
		}
	}
	return response{}
}

func (s *Server) updateRelease(rq *request) response {
	r, rel, resp, ok := s.findRelease(rq)
	if !ok {
		return resp
	}
	var in github.RepositoryRelease
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	cur := rel.r
	if cur.GetImmutable() && ((in.TagName != nil && in.GetTagName() != cur.GetTagName()) || (in.Draft != nil && in.GetDraft())) {
		return rq.fail(http.StatusUnprocessableEntity, MessageProtectedRef)
	}
	upd := *cur
	if in.Name != nil {
		upd.Name = in.Name
	}
	if in.Body != nil {
		upd.Body = in.Body
	}
	if in.Prerelease != nil {
		upd.Prerelease = in.Prerelease
	}
	if in.TagName != nil {
		upd.TagName = in.TagName
	}
	if in.TargetCommitish != nil {
		upd.TargetCommitish = in.TargetCommitish
	}
	if in.Draft != nil && !in.GetDraft() && cur.GetDraft() {
		if resp := s.publish(r, &upd); resp.status != 0 {
			return resp
		}
	}
	rel.r = &upd
	return response{http.StatusOK, s.releaseJSON(r, rel, rq.base)}
}

func (s *Server) deleteRelease(rq *request) response {
	r, rel, resp, ok := s.findRelease(rq)
	if !ok {
		return resp
	}
	if rel.r.GetImmutable() {
		// The tag stays frozen and its name can never be used again.
		r.usedTags = append(r.usedTags, rel.r.GetTagName())
	}
	r.releases = slices.DeleteFunc(r.releases, func(x *release) bool { return x == rel })
	return response{http.StatusNoContent, nil}
}

func (s *Server) listReleaseAssets(rq *request) response {
	r, rel, resp, ok := s.findRelease(rq)
	if !ok {
		return resp
	}
	return response{http.StatusOK, paginate(rq, s.releaseJSON(r, rel, rq.base).Assets)}
}

func (s *Server) uploadReleaseAsset(rq *request) response {
	r, rel, resp, ok := s.findRelease(rq)
	if !ok {
		return resp
	}
	if rel.r.GetImmutable() {
		return rq.fail(http.StatusUnprocessableEntity, MessageImmutableUpload)
	}
	name := rq.r.URL.Query().Get("name")
	if name == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{Resource: "ReleaseAsset", Code: "missing_field", Field: "name"})
	}
	for _, a := range rel.assets {
		if a.a.GetName() == name {
			return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{Resource: "ReleaseAsset", Code: "already_exists", Field: "name"})
		}
	}
	data, err := io.ReadAll(rq.r.Body)
	if err != nil {
		return rq.fail(http.StatusBadRequest, "could not read the upload: "+err.Error())
	}
	id := s.newID()
	a := &github.ReleaseAsset{
		ID: github.Ptr(id), Name: github.Ptr(name), Label: github.Ptr(rq.r.URL.Query().Get("label")), State: github.Ptr("uploaded"),
		ContentType: github.Ptr(rq.r.Header.Get("Content-Type")), Size: github.Ptr(len(data)), CreatedAt: s.timestamp(),
		URL:                github.Ptr(fmt.Sprintf("%s/repos/%s/%s/releases/assets/%d", rq.base, r.owner, r.name, id)),
		BrowserDownloadURL: github.Ptr(fmt.Sprintf("%s/%s/%s/releases/download/%s/%s", s.webURL(), r.owner, r.name, rel.r.GetTagName(), name)),
	}
	rel.assets = append(rel.assets, &asset{a: a, data: data})
	return response{http.StatusCreated, a}
}

func (s *Server) deleteReleaseAsset(rq *request) response {
	r := s.repo(rq)
	id, err := strconv.ParseInt(rq.r.PathValue("asset_id"), 10, 64)
	if r == nil || err != nil {
		return rq.notFound()
	}
	for _, rel := range r.releases {
		for i, a := range rel.assets {
			if a.a.GetID() != id {
				continue
			}
			if rel.r.GetImmutable() {
				return rq.fail(http.StatusUnprocessableEntity, MessageImmutableDelete)
			}
			rel.assets = slices.Delete(rel.assets, i, i+1)
			return response{http.StatusNoContent, nil}
		}
	}
	return rq.notFound()
}

func (s *Server) refJSON(rq *request, r *repository, ref, sha string) *github.Reference {
	return &github.Reference{
		Ref: github.Ptr(ref),
		URL: github.Ptr(fmt.Sprintf("%s/repos/%s/%s/git/%s", rq.base, r.owner, r.name, ref)),
		Object: &github.GitObject{Type: github.Ptr("commit"), SHA: github.Ptr(sha),
			URL: github.Ptr(fmt.Sprintf("%s/repos/%s/%s/git/commits/%s", rq.base, r.owner, r.name, sha))},
	}
}

// protected reports whether ref is the tag of an immutable release.
func protected(r *repository, ref string) bool {
	for _, rel := range r.releases {
		if rel.r.GetImmutable() && "refs/tags/"+rel.r.GetTagName() == ref {
			return true
		}
	}
	return slices.ContainsFunc(r.usedTags, func(t string) bool { return "refs/tags/"+t == ref })
}

func (s *Server) getRef(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	ref := "refs/" + rq.r.PathValue("ref")
	sha := s.refSHA(ref)
	if sha == "" {
		return rq.notFound()
	}
	return response{http.StatusOK, s.refJSON(rq, r, ref, sha)}
}

func (s *Server) createRef(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	var in github.CreateRef
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	if !strings.HasPrefix(in.Ref, "refs/") || strings.Count(in.Ref, "/") < 2 {
		return rq.fail(http.StatusUnprocessableEntity, "Reference name must start with 'refs/' and have at least two slashes.")
	}
	if s.refSHA(in.Ref) != "" {
		return rq.fail(http.StatusUnprocessableEntity, "Reference already exists")
	}
	if protected(r, in.Ref) {
		return rq.fail(http.StatusUnprocessableEntity, MessageProtectedRef)
	}
	if !fullSHA.MatchString(in.SHA) || s.refSHA(in.SHA) == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Object does not exist")
	}
	if _, err := s.git("update-ref", in.Ref, in.SHA, ""); err != nil {
		return rq.fail(http.StatusUnprocessableEntity, err.Error())
	}
	return response{http.StatusCreated, s.refJSON(rq, r, in.Ref, in.SHA)}
}

func (s *Server) updateRef(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	ref := "refs/" + rq.r.PathValue("ref")
	var in github.UpdateRef
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	old := s.refSHA(ref)
	if old == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Reference does not exist")
	}
	if !fullSHA.MatchString(in.SHA) || s.refSHA(in.SHA) == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Object does not exist")
	}
	if protected(r, ref) && old != in.SHA {
		return rq.fail(http.StatusUnprocessableEntity, MessageProtectedRef)
	}
	if (in.Force == nil || !*in.Force) && old != in.SHA {
		if _, err := s.git("merge-base", "--is-ancestor", old, in.SHA); err != nil {
			return rq.fail(http.StatusUnprocessableEntity, "Update is not a fast forward")
		}
	}
	if _, err := s.git("update-ref", ref, in.SHA); err != nil {
		return rq.fail(http.StatusUnprocessableEntity, err.Error())
	}
	return response{http.StatusOK, s.refJSON(rq, r, ref, in.SHA)}
}

func (s *Server) deleteRef(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	ref := "refs/" + rq.r.PathValue("ref")
	if s.refSHA(ref) == "" {
		return rq.fail(http.StatusUnprocessableEntity, "Reference does not exist")
	}
	if protected(r, ref) {
		return rq.fail(http.StatusUnprocessableEntity, MessageProtectedRef)
	}
	if _, err := s.git("update-ref", "-d", ref); err != nil {
		return rq.fail(http.StatusUnprocessableEntity, err.Error())
	}
	return response{http.StatusNoContent, nil}
}
