// Package prcomment keeps one comment per purpose on a pull request up to date: a report posted
// on every run replaces its previous version instead of piling up. The comment is found by a
// hidden marker (an HTML comment, see Marker) on its first line and by its author.
package prcomment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/githubapi"
)

// MaxLength is the longest comment GitHub accepts, in characters (code points); longer bodies are
// truncated to it.
const MaxLength = 65536

// pageSize is the most comments GitHub returns per page.
const pageSize = 100

// ErrNotPullRequest is FromActions in a run that no pull request started: there is nothing to
// comment on, and a step usually goes on without a comment.
var ErrNotPullRequest = errors.New("prcomment: the run was not started by a pull request event")

// pullRequestEvents are the events whose payload names a pull request (pull_request.number).
var pullRequestEvents = map[string]bool{
	"pull_request":                true,
	"pull_request_target":         true,
	"pull_request_review":         true,
	"pull_request_review_comment": true,
}

// Marker returns the hidden marker of the comment for key, e.g. Marker("loadtest:api") is
// "<!-- gantry:loadtest:api -->". GitHub renders nothing for it.
func Marker(key string) string {
	for strings.Contains(key, "--") { // "--" would end the HTML comment early
		key = strings.ReplaceAll(key, "--", "-")
	}
	return "<!-- gantry:" + key + " -->"
}

// Commenter upserts comments on one pull request. It is safe for concurrent use, but two
// Upserts with the same marker at the same moment may both create a comment: GitHub has no
// conditional create.
type Commenter struct {
	Client *github.Client
	Owner  string
	Repo   string
	PR     int
	// Author is the login whose comments Upsert may update. Empty means the token's own user,
	// asked once with GET /user, or, for an installation token such as GITHUB_TOKEN (which has no
	// user), any bot account: a person's comment that carries the marker is never overwritten.
	Author string
	// Retry waits out rate limits and retries server errors; the zero value is the default policy.
	Retry githubapi.Retrier

	mu     sync.Mutex
	self   string // the token's login, once known
	asked  bool   // whether self was asked for
	botTok bool   // the token has no user: match bot accounts
}

// Upsert makes sure pull request pr of owner/repo has exactly one comment of this token's with
// marker, reading body: it updates the comment if it exists and creates it otherwise. It is
// Commenter.Upsert with the default retry policy.
func Upsert(ctx context.Context, client *github.Client, owner, repo string, pr int, marker, body string) (id int64, created bool, err error) {
	c := &Commenter{Client: client, Owner: owner, Repo: repo, PR: pr}
	return c.Upsert(ctx, marker, body)
}

// FromActions returns a Commenter for the pull request that started the Actions run: the
// repository from GITHUB_REPOSITORY, the pull request from the event payload at GITHUB_EVENT_PATH
// (pull_request and pull_request_target events), the API from GITHUB_API_URL (GitHub Enterprise
// Server included). token is the step's github-token input. It returns ErrNotPullRequest for a
// run started by another event.
func FromActions(getenv func(string) string, token string, transport http.RoundTripper) (*Commenter, error) {
	pr, err := PullRequestNumber(getenv)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("prcomment: no GitHub token to comment with; set the github-token input (its default is ${{ github.token }})")
	}
	owner, repo, err := githubapi.RepositoryFromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("prcomment: %w", err)
	}
	client, err := githubapi.ClientFromEnv(getenv, token, transport)
	if err != nil {
		return nil, fmt.Errorf("prcomment: %w", err)
	}
	return &Commenter{Client: client, Owner: owner, Repo: repo, PR: pr}, nil
}

// PullRequestNumber returns the number of the pull request that started the Actions run, read
// from the event payload; ErrNotPullRequest when another event started it.
func PullRequestNumber(getenv func(string) string) (int, error) {
	event := getenv("GITHUB_EVENT_NAME")
	if !pullRequestEvents[event] {
		return 0, fmt.Errorf("%w (GITHUB_EVENT_NAME is %q)", ErrNotPullRequest, event)
	}
	path := getenv("GITHUB_EVENT_PATH")
	if path == "" {
		return 0, fmt.Errorf("prcomment: GITHUB_EVENT_PATH is not set in a %s run", event)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("prcomment: read the event payload: %w", err)
	}
	var payload github.PullRequestEvent
	if err := json.Unmarshal(data, &payload); err != nil {
		return 0, fmt.Errorf("prcomment: event payload %s: %w", path, err)
	}
	n := payload.GetPullRequest().GetNumber()
	if n <= 0 {
		return 0, fmt.Errorf("prcomment: event payload %s of a %s event has no pull_request.number", path, event)
	}
	return n, nil
}

// Upsert makes sure the pull request has exactly one comment of this Commenter's author whose
// first line is marker (an HTML comment, see Marker), reading body: it updates that comment, the
// oldest if there are several, or creates one. It looks through every page of the pull request's
// comments. A body longer than GitHub allows is cut to MaxLength with a note, keeping its start.
//
// A missing permission fails with a *githubapi.PermissionError (errors.As finds it), which a step
// that can do without the comment turns into a warning.
func (c *Commenter) Upsert(ctx context.Context, marker, body string) (id int64, created bool, err error) {
	if !strings.HasPrefix(marker, "<!--") || !strings.HasSuffix(marker, "-->") || strings.ContainsAny(marker, "\r\n") ||
		strings.Contains(marker[4:len(marker)-3], "--") {
		return 0, false, fmt.Errorf("prcomment: marker %q is not a one-line HTML comment like %q", marker, Marker("name"))
	}
	text := body
	if !strings.HasPrefix(body, marker) {
		text = marker + "\n" + body
	}
	text = Truncate(text, MaxLength)

	for attempt := 1; ; attempt++ {
		id, created, err = c.upsert(ctx, marker, text)
		var uncertain *githubapi.UncertainError
		if err == nil || !errors.As(err, &uncertain) || attempt >= c.Retry.MaxAttempts() {
			return id, created, err
		}
		// The comment may have been created all the same: look again before creating it again.
		if err := c.Retry.Wait(ctx, attempt); err != nil {
			return 0, false, err
		}
	}
}

// upsert is one look through the comments and one write.
func (c *Commenter) upsert(ctx context.Context, marker, text string) (int64, bool, error) {
	found, err := c.find(ctx, marker)
	if err != nil {
		return 0, false, err
	}
	if found != nil {
		if found.GetBody() == text {
			return found.GetID(), false, nil
		}
		err := c.Retry.Do(ctx, true, func(ctx context.Context) error {
			_, _, err := c.Client.Issues.EditComment(ctx, c.Owner, c.Repo, found.GetID(), &github.IssueComment{Body: &text})
			return err
		})
		if err != nil {
			return 0, false, c.fail(fmt.Sprintf("update comment %d on", found.GetID()), err)
		}
		return found.GetID(), false, nil
	}
	var made *github.IssueComment
	err = c.Retry.Do(ctx, false, func(ctx context.Context) error {
		var err error
		made, _, err = c.Client.Issues.CreateComment(ctx, c.Owner, c.Repo, c.PR, &github.IssueComment{Body: &text})
		return err
	})
	if err != nil {
		return 0, false, c.fail("comment on", err)
	}
	return made.GetID(), true, nil
}

// find returns the oldest comment of this Commenter's author whose first line is marker, or nil.
func (c *Commenter) find(ctx context.Context, marker string) (*github.IssueComment, error) {
	var withMarker []*github.IssueComment
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: pageSize}}
	for {
		var page []*github.IssueComment
		var resp *github.Response
		err := c.Retry.Do(ctx, true, func(ctx context.Context) error {
			var err error
			page, resp, err = c.Client.Issues.ListComments(ctx, c.Owner, c.Repo, c.PR, opts)
			return err
		})
		if err != nil {
			return nil, c.fail("list the comments of", err)
		}
		for _, cm := range page {
			if strings.HasPrefix(strings.TrimLeft(cm.GetBody(), " \t\r\n"), marker) {
				withMarker = append(withMarker, cm)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if len(withMarker) == 0 {
		return nil, nil
	}
	mine, err := c.mine(ctx)
	if err != nil {
		return nil, err
	}
	for _, cm := range withMarker {
		if mine(cm.GetUser()) {
			return cm, nil
		}
	}
	return nil, nil
}

// mine returns the test for the authors whose comments Upsert may update.
func (c *Commenter) mine(ctx context.Context) (func(*github.User) bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Author != "" {
		return func(u *github.User) bool { return strings.EqualFold(u.GetLogin(), c.Author) }, nil
	}
	if !c.asked {
		var user *github.User
		err := c.Retry.Do(ctx, true, func(ctx context.Context) error {
			var err error
			user, _, err = c.Client.Users.Get(ctx, "")
			return err
		})
		var denied *githubapi.PermissionError
		switch {
		case errors.As(err, &denied):
			// An installation token (GITHUB_TOKEN, a GitHub App's) has no user: it comments as a bot.
			c.botTok = true
		case err != nil:
			return nil, c.fail("find out who comments on", err)
		default:
			c.self = user.GetLogin()
		}
		c.asked = true
	}
	if c.botTok {
		return func(u *github.User) bool { return u.GetType() == "Bot" }, nil
	}
	self := c.self
	return func(u *github.User) bool { return strings.EqualFold(u.GetLogin(), self) }, nil
}

// fail says what failed on which pull request, and what to do about it.
func (c *Commenter) fail(what string, err error) error {
	where := fmt.Sprintf("%s/%s#%d", c.Owner, c.Repo, c.PR)
	var denied *githubapi.PermissionError
	switch {
	case errors.As(err, &denied):
		return fmt.Errorf("prcomment: %s %s: %w; the job needs `permissions: pull-requests: write` (a pull request from a fork gets a read-only token)", what, where, err)
	case errors.Is(err, githubapi.ErrBadCredentials):
		return fmt.Errorf("prcomment: %s %s: %w; check the github-token input", what, where, err)
	case githubapi.StatusCode(err) == http.StatusNotFound:
		return fmt.Errorf("prcomment: %s %s: not found, or the token cannot see it: %w", what, where, err)
	}
	return fmt.Errorf("prcomment: %s %s: %w", what, where, err)
}

// Truncate cuts text to at most limit characters (code points), keeping its start (and so its
// marker) and ending with a note that says so. It cuts at a line break when one is near, and
// closes a code block it cuts open.
func Truncate(text string, limit int) string {
	total := utf8.RuneCountInString(text)
	if total <= limit {
		return text
	}
	note := func(shown int) string {
		return fmt.Sprintf("\n\n_… truncated: %d of %d characters shown; GitHub comments hold at most %d._", shown, total, limit)
	}
	const fence = "\n```"
	budget := limit - utf8.RuneCountInString(note(limit)) - len(fence)
	if budget <= 0 {
		return string([]rune(text)[:limit])
	}
	kept := string([]rune(text)[:budget])
	if i := strings.LastIndexByte(kept, '\n'); i > 0 && utf8.RuneCountInString(kept[i:]) < budget/4 {
		kept = kept[:i]
	}
	if openFence(kept) {
		kept += fence
	}
	return kept + note(utf8.RuneCountInString(kept))
}

// openFence reports whether markdown ends inside a fenced code block.
func openFence(markdown string) bool {
	open := false
	for line := range strings.SplitSeq(markdown, "\n") {
		l := strings.TrimLeft(line, " ")
		if strings.HasPrefix(l, "```") || strings.HasPrefix(l, "~~~") {
			open = !open
		}
	}
	return open
}
