package githubfake

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v84/github"
)

// MaxCommentLength is the longest comment body GitHub accepts, in characters.
const MaxCommentLength = 65536

// repository is one repository's state.
type repository struct {
	owner, name string
	pulls       map[int]bool
	comments    []comment // by ID, ascending
	refs        map[string]string
	deployments []*deployment // by ID, ascending
	releases    []*release    // oldest first
	usedTags    []string      // tags of deleted immutable releases: never again a release's
}

type comment struct {
	issue int
	c     *github.IssueComment // replaced, never changed, on update
}

func repoKey(fullName string) string { return strings.ToLower(fullName) }

func (s *Server) addRepo(fullName string) *repository {
	if r := s.repos[repoKey(fullName)]; r != nil {
		return r
	}
	owner, name, _ := strings.Cut(fullName, "/")
	r := &repository{owner: owner, name: name, pulls: map[int]bool{}, refs: map[string]string{}}
	s.repos[repoKey(fullName)] = r
	return r
}

// repo returns the repository the request's path names, or nil.
func (s *Server) repo(rq *request) *repository {
	return s.repos[repoKey(rq.r.PathValue("owner")+"/"+rq.r.PathValue("repo"))]
}

// AddPullRequest opens pull request number in repo ("owner/name"), creating the repository if
// the fake does not know it yet. Options.Repository exists from the start, with no pull requests.
func (s *Server) AddPullRequest(repo string, number int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addRepo(repo).pulls[number] = true
}

// AddComment posts a comment on pull request number as author, as if made outside the test
// (a person, or another bot), and returns it.
func (s *Server) AddComment(repo string, number int, author *github.User, body string) *github.IssueComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.addRepo(repo)
	r.pulls[number] = true
	c := s.newComment(r, s.APIURL(), number, author, body)
	return &c
}

// Comments returns the comments on pull request number of repo, oldest first.
func (s *Server) Comments(repo string, number int) []*github.IssueComment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*github.IssueComment
	if r := s.repos[repoKey(repo)]; r != nil {
		for _, c := range r.comments {
			if c.issue == number {
				cp := *c.c
				out = append(out, &cp)
			}
		}
	}
	return out
}

func (s *Server) newComment(r *repository, base string, issue int, author *github.User, body string) github.IssueComment {
	id := s.newID()
	now := s.timestamp()
	repoPath := "/repos/" + r.owner + "/" + r.name
	c := github.IssueComment{
		ID:        github.Ptr(id),
		NodeID:    github.Ptr("IC_fake" + strconv.FormatInt(id, 36)),
		URL:       github.Ptr(base + repoPath + "/issues/comments/" + strconv.FormatInt(id, 10)),
		HTMLURL:   github.Ptr(s.webURL() + "/" + r.owner + "/" + r.name + "/pull/" + strconv.Itoa(issue) + "#issuecomment-" + strconv.FormatInt(id, 10)),
		IssueURL:  github.Ptr(base + repoPath + "/issues/" + strconv.Itoa(issue)),
		Body:      github.Ptr(body),
		User:      author,
		CreatedAt: now,
		UpdatedAt: now,
		Reactions: &github.Reactions{TotalCount: github.Ptr(0), URL: github.Ptr(base + repoPath + "/issues/comments/" + strconv.FormatInt(id, 10) + "/reactions")},
	}
	r.comments = append(r.comments, comment{issue: issue, c: &c})
	return c
}

// webURL is where html_url links point: github.com, or the server itself when it plays GHES.
func (s *Server) webURL() string {
	if s.opts.APIPrefix != "" {
		return s.URL
	}
	return "https://github.com"
}

// issue returns the repository and the pull request number the path names; ok false carries
// GitHub's 404.
func (s *Server) issue(rq *request) (*repository, int, response, bool) {
	r := s.repo(rq)
	n, err := strconv.Atoi(rq.r.PathValue("issue_number"))
	if r == nil || err != nil || !r.pulls[n] {
		return nil, 0, rq.notFound(), false
	}
	return r, n, response{}, true
}

// findComment returns the index of comment id in r, or -1.
func findComment(r *repository, rq *request) int {
	id, err := strconv.ParseInt(rq.r.PathValue("comment_id"), 10, 64)
	if err != nil {
		return -1
	}
	for i, c := range r.comments {
		if c.c.GetID() == id {
			return i
		}
	}
	return -1
}

// checkBody answers as GitHub does for a missing or too long comment body.
func checkBody(rq *request, body *string) (response, bool) {
	if body == nil {
		return rq.fail(http.StatusUnprocessableEntity, "Invalid request.\n\n\"body\" wasn't supplied."), false
	}
	if utf8.RuneCountInString(*body) > MaxCommentLength {
		return rq.fail(http.StatusUnprocessableEntity, "Validation Failed", github.Error{
			Resource: "IssueComment", Code: "unprocessable", Field: "data",
			Message: "Body is too long (maximum is " + strconv.Itoa(MaxCommentLength) + " characters)",
		}), false
	}
	return response{}, true
}

func (s *Server) listComments(rq *request) response {
	r, n, resp, ok := s.issue(rq)
	if !ok {
		return resp
	}
	var since time.Time
	if v := rq.r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return rq.fail(http.StatusUnprocessableEntity, "Invalid request.\n\nInvalid property /since: `"+v+"` is not a valid date-time.")
		}
		since = t
	}
	list := []*github.IssueComment{}
	for _, c := range r.comments {
		if c.issue == n && !c.c.GetUpdatedAt().Before(since) {
			list = append(list, c.c)
		}
	}
	return response{http.StatusOK, paginate(rq, list)}
}

func (s *Server) createComment(rq *request) response {
	r, n, resp, ok := s.issue(rq)
	if !ok {
		return resp
	}
	var in github.IssueComment
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	if resp, ok := checkBody(rq, in.Body); !ok {
		return resp
	}
	c := s.newComment(r, rq.base, n, rq.id.User, in.GetBody())
	rq.header.Set("Location", c.GetURL())
	return response{http.StatusCreated, &c}
}

func (s *Server) updateComment(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	i := findComment(r, rq)
	if i < 0 {
		return rq.notFound()
	}
	var in github.IssueComment
	if resp, ok := rq.decode(&in); !ok {
		return resp
	}
	if resp, ok := checkBody(rq, in.Body); !ok {
		return resp
	}
	c := *r.comments[i].c
	c.Body = github.Ptr(in.GetBody())
	c.UpdatedAt = s.timestamp()
	r.comments[i].c = &c
	return response{http.StatusOK, &c}
}

func (s *Server) deleteComment(rq *request) response {
	r := s.repo(rq)
	if r == nil {
		return rq.notFound()
	}
	i := findComment(r, rq)
	if i < 0 {
		return rq.notFound()
	}
	r.comments = append(r.comments[:i], r.comments[i+1:]...)
	return response{http.StatusNoContent, nil}
}
