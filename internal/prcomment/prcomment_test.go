package prcomment

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/githubapi"
)

const (
	repoName = "acme/shop"
	prNumber = 7
)

var marker = Marker("loadtest:api")

// recorder is a clock that records the waits asked of it and returns at once.
type recorder struct{ waits []time.Duration }

func (r *recorder) clock() clock.Clock {
	return clock.Virtual{NowFunc: time.Now, Advance: func(d time.Duration) { r.waits = append(r.waits, d) }}
}

// newCommenter returns a Commenter on acme/shop#7 of gh that authenticates with token and records
// its waits.
func newCommenter(t *testing.T, gh *githubfake.Server, token string) (*Commenter, *recorder) {
	t.Helper()
	client, err := githubapi.NewClient(gh.APIURL(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	return &Commenter{Client: client, Owner: "acme", Repo: "shop", PR: prNumber, Retry: githubapi.Retrier{Clock: rec.clock()}}, rec
}

func startFake(t *testing.T) *githubfake.Server {
	t.Helper()
	gh := githubfake.Start(t, githubfake.Options{Repository: repoName})
	gh.AddPullRequest(repoName, prNumber)
	return gh
}

func bodies(cs []*github.IssueComment) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.GetBody())
	}
	return out
}

func TestUpsert(t *testing.T) {
	t.Parallel()
	alice := githubfake.User("alice")
	tests := []struct {
		name string
		// setup seeds the fake and returns the token to comment with ("" for the default GITHUB_TOKEN).
		setup func(gh *githubfake.Server) string
		// bodies are upserted in turn.
		bodies []string
		// wantCreated is created of each Upsert.
		wantCreated []bool
		// check looks at the comments after the last Upsert; ours is the comment the last Upsert returned.
		check func(t *testing.T, gh *githubfake.Server, ours *github.IssueComment)
	}{
		{
			name:        "created once then updated",
			bodies:      []string{"first run", "second run"},
			wantCreated: []bool{true, false},
			check: func(t *testing.T, gh *githubfake.Server, ours *github.IssueComment) {
				if got := bodies(gh.Comments(repoName, prNumber)); len(got) != 1 || got[0] != marker+"\nsecond run" {
					t.Errorf("comments = %q, want one reading the second run", got)
				}
				if ours.GetUser().GetLogin() != "github-actions[bot]" {
					t.Errorf("author = %s", ours.GetUser().GetLogin())
				}
				if n := gh.CallCount(githubfake.OpGetAuthenticatedUser); n != 1 {
					t.Errorf("GET /user called %d times, want 1 (to learn the token is a bot's)", n)
				}
			},
		},
		{
			name:        "same body is not written again",
			bodies:      []string{"same", "same"},
			wantCreated: []bool{true, false},
			check: func(t *testing.T, gh *githubfake.Server, _ *github.IssueComment) {
				if n := gh.CallCount(githubfake.OpUpdateComment); n != 0 {
					t.Errorf("%d updates, want 0", n)
				}
			},
		},
		{
			name: "found on the third page of 250",
			setup: func(gh *githubfake.Server) string {
				for i := range 250 {
					author, body := githubfake.User(fmt.Sprintf("user%d", i%7)), fmt.Sprintf("comment %d", i)
					if i == 230 {
						author, body = githubfake.ActionsBot(), marker+"\nold report"
					} else if i%50 == 0 {
						author, body = githubfake.ActionsBot(), Marker("loadtest:other")+"\nanother report"
					}
					gh.AddComment(repoName, prNumber, author, body)
				}
				return ""
			},
			bodies:      []string{"new report"},
			wantCreated: []bool{false},
			check: func(t *testing.T, gh *githubfake.Server, ours *github.IssueComment) {
				cs := gh.Comments(repoName, prNumber)
				if len(cs) != 250 || cs[230].GetID() != ours.GetID() || cs[230].GetBody() != marker+"\nnew report" {
					t.Errorf("%d comments; #230 = %q, want the updated report", len(cs), cs[230].GetBody())
				}
				if cs[200].GetBody() != Marker("loadtest:other")+"\nanother report" {
					t.Errorf("another marker's comment changed: %q", cs[200].GetBody())
				}
				if n := gh.CallCount(githubfake.OpListComments); n != 3 {
					t.Errorf("%d list calls, want 3 pages of 100", n)
				}
			},
		},
		{
			name: "a person's comment carrying or quoting the marker is left alone",
			setup: func(gh *githubfake.Server) string {
				gh.AddComment(repoName, prNumber, alice, marker+"\ncopied the bot's report verbatim")
				gh.AddComment(repoName, prNumber, alice, "> "+marker+"\n> quoted report\n\nwhy is p95 up?")
				return ""
			},
			bodies:      []string{"run 1", "run 2"},
			wantCreated: []bool{true, false},
			check: func(t *testing.T, gh *githubfake.Server, _ *github.IssueComment) {
				got := bodies(gh.Comments(repoName, prNumber))
				want := []string{marker + "\ncopied the bot's report verbatim", "> " + marker + "\n> quoted report\n\nwhy is p95 up?", marker + "\nrun 2"}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("comments = %q, want %q", got, want)
				}
			},
		},
		{
			name: "a personal token updates its own comment only",
			setup: func(gh *githubfake.Server) string {
				gh.AddToken("ghp_alice", githubfake.Identity{User: alice})
				gh.AddComment(repoName, prNumber, githubfake.ActionsBot(), marker+"\nposted by GITHUB_TOKEN")
				gh.AddComment(repoName, prNumber, githubfake.User("bob"), marker+"\nbob's copy")
				gh.AddComment(repoName, prNumber, alice, marker+"\nalice's old report")
				return "ghp_alice"
			},
			bodies:      []string{"alice's new report"},
			wantCreated: []bool{false},
			check: func(t *testing.T, gh *githubfake.Server, ours *github.IssueComment) {
				got := bodies(gh.Comments(repoName, prNumber))
				if len(got) != 3 || got[0] != marker+"\nposted by GITHUB_TOKEN" || got[1] != marker+"\nbob's copy" || got[2] != marker+"\nalice's new report" {
					t.Errorf("comments = %q", got)
				}
			},
		},
		{
			name:        "body over the limit is truncated, keeping the marker and the start",
			bodies:      []string{"# Load test\n\n" + strings.Repeat("| GET /api/items | 200 | 12 ms | ✅ |\n", 3000)},
			wantCreated: []bool{true},
			check: func(t *testing.T, gh *githubfake.Server, ours *github.IssueComment) {
				body := ours.GetBody()
				if n := utf8.RuneCountInString(body); n > MaxLength {
					t.Errorf("body has %d characters, over %d", n, MaxLength)
				}
				if !strings.HasPrefix(body, marker+"\n# Load test\n") || !strings.Contains(body, "truncated") {
					t.Errorf("body starts %q and ends %q", body[:60], body[len(body)-120:])
				}
			},
		},
		{
			name: "secondary rate limit, then 429, then 502 are waited out",
			setup: func(gh *githubfake.Server) string {
				gh.Inject(githubfake.SecondaryRateLimit(githubfake.OpListComments, http.StatusForbidden, 7*time.Second, 1))
				gh.Inject(githubfake.SecondaryRateLimit(githubfake.OpCreateComment, http.StatusTooManyRequests, 3*time.Second, 1))
				gh.Inject(githubfake.ServerError(githubfake.OpListComments, http.StatusBadGateway, 1))
				return ""
			},
			bodies:      []string{"report"},
			wantCreated: []bool{true},
			check: func(t *testing.T, gh *githubfake.Server, _ *github.IssueComment) {
				if n := len(gh.Comments(repoName, prNumber)); n != 1 {
					t.Errorf("%d comments, want 1", n)
				}
			},
		},
		{
			name: "a create that failed after it went through is not repeated",
			setup: func(gh *githubfake.Server) string {
				f := githubfake.ServerError(githubfake.OpCreateComment, http.StatusBadGateway, 1)
				f.Applied = true
				gh.Inject(f)
				return ""
			},
			bodies:      []string{"report"},
			wantCreated: []bool{false}, // the second look finds the comment the failed call made
			check: func(t *testing.T, gh *githubfake.Server, _ *github.IssueComment) {
				if got := bodies(gh.Comments(repoName, prNumber)); len(got) != 1 {
					t.Errorf("comments = %q, want one", got)
				}
			},
		},
		{
			name: "a create that failed before it went through is made again",
			setup: func(gh *githubfake.Server) string {
				gh.Inject(githubfake.ServerError(githubfake.OpCreateComment, http.StatusInternalServerError, 1))
				return ""
			},
			bodies:      []string{"report"},
			wantCreated: []bool{true},
			check: func(t *testing.T, gh *githubfake.Server, _ *github.IssueComment) {
				if got := bodies(gh.Comments(repoName, prNumber)); len(got) != 1 || gh.CallCount(githubfake.OpListComments) != 2 {
					t.Errorf("comments = %q after %d lists, want one after 2", got, gh.CallCount(githubfake.OpListComments))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := startFake(t)
			token := gh.APIToken()
			if tt.setup != nil {
				if tok := tt.setup(gh); tok != "" {
					token = tok
				}
			}
			c, _ := newCommenter(t, gh, token)
			var lastID int64
			for i, body := range tt.bodies {
				id, created, err := c.Upsert(context.Background(), marker, body)
				if err != nil {
					t.Fatalf("Upsert %d: %v", i+1, err)
				}
				if created != tt.wantCreated[i] {
					t.Errorf("Upsert %d: created = %v, want %v", i+1, created, tt.wantCreated[i])
				}
				if i > 0 && id != lastID {
					t.Errorf("Upsert %d: id %d, want %d as before", i+1, id, lastID)
				}
				lastID = id
			}
			var ours *github.IssueComment
			for _, cm := range gh.Comments(repoName, prNumber) {
				if cm.GetID() == lastID {
					ours = cm
				}
			}
			if ours == nil {
				t.Fatalf("comment %d not on the pull request", lastID)
			}
			tt.check(t, gh, ours)
		})
	}
}

func TestUpsertWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     githubfake.Fault
		wantWaits func(waits []time.Duration) bool
		wantErr   bool
	}{
		{
			name:      "secondary rate limit: Retry-After",
			fault:     githubfake.SecondaryRateLimit("", http.StatusForbidden, 42*time.Second, 1),
			wantWaits: func(w []time.Duration) bool { return len(w) == 1 && w[0] == 42*time.Second },
		},
		{
			name:      "429: Retry-After",
			fault:     githubfake.SecondaryRateLimit("", http.StatusTooManyRequests, 5*time.Second, 1),
			wantWaits: func(w []time.Duration) bool { return len(w) == 1 && w[0] == 5*time.Second },
		},
		{
			name:      "primary rate limit: until the reset",
			fault:     githubfake.PrimaryRateLimit("", time.Now().Add(30*time.Second), 1),
			wantWaits: func(w []time.Duration) bool { return len(w) == 1 && w[0] > 25*time.Second && w[0] <= 31*time.Second },
		},
		{
			name:      "server errors: doubling backoff",
			fault:     githubfake.ServerError(githubfake.OpListComments, http.StatusServiceUnavailable, 3),
			wantWaits: func(w []time.Duration) bool { return fmt.Sprint(w) == "[1s 2s 4s]" },
		},
		{
			name:      "server errors: attempts spent",
			fault:     githubfake.ServerError(githubfake.OpListComments, http.StatusInternalServerError, 0),
			wantWaits: func(w []time.Duration) bool { return fmt.Sprint(w) == "[1s 2s 4s 8s]" },
			wantErr:   true,
		},
		{
			name:      "Retry-After beyond the longest wait fails at once",
			fault:     githubfake.SecondaryRateLimit("", http.StatusForbidden, time.Hour, 1),
			wantWaits: func(w []time.Duration) bool { return len(w) == 0 },
			wantErr:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := startFake(t)
			gh.Inject(tt.fault)
			c, rec := newCommenter(t, gh, gh.APIToken())
			_, _, err := c.Upsert(context.Background(), marker, "report")
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantWaits(rec.waits) {
				t.Errorf("waits = %v", rec.waits)
			}
		})
	}
}

func TestUpsertFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(gh *githubfake.Server) (token string, pr int)
		check func(t *testing.T, err error)
	}{
		{
			name: "token without pull-requests: write",
			setup: func(gh *githubfake.Server) (string, int) {
				gh.AddToken("ghs_readonly", githubfake.Identity{User: githubfake.ActionsBot(), Permissions: map[string]string{"pull-requests": "read", "contents": "read"}})
				return "ghs_readonly", prNumber
			},
			check: func(t *testing.T, err error) {
				var denied *githubapi.PermissionError
				if !errors.As(err, &denied) || denied.Message != githubfake.MessageNotAccessible || denied.Method != http.MethodPost {
					t.Errorf("err = %v, want a PermissionError for the POST", err)
				}
				if !strings.Contains(err.Error(), "pull-requests: write") {
					t.Errorf("err = %v, want it to name the permission", err)
				}
			},
		},
		{
			name: "missing permission injected on the list",
			setup: func(gh *githubfake.Server) (string, int) {
				gh.Inject(githubfake.MissingPermission(githubfake.OpListComments, 0))
				return gh.APIToken(), prNumber
			},
			check: func(t *testing.T, err error) {
				var denied *githubapi.PermissionError
				if !errors.As(err, &denied) {
					t.Errorf("err = %v, want a PermissionError", err)
				}
			},
		},
		{
			name:  "bad token",
			setup: func(*githubfake.Server) (string, int) { return "ghp_revoked", prNumber },
			check: func(t *testing.T, err error) {
				var denied *githubapi.PermissionError
				if !errors.Is(err, githubapi.ErrBadCredentials) || errors.As(err, &denied) || !strings.Contains(err.Error(), "github-token") {
					t.Errorf("err = %v, want bad credentials", err)
				}
			},
		},
		{
			name:  "unknown pull request",
			setup: func(gh *githubfake.Server) (string, int) { return gh.APIToken(), 999 },
			check: func(t *testing.T, err error) {
				if githubapi.StatusCode(err) != http.StatusNotFound || !strings.Contains(err.Error(), "acme/shop#999: not found") {
					t.Errorf("err = %v, want not found", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gh := startFake(t)
			token, pr := tt.setup(gh)
			c, _ := newCommenter(t, gh, token)
			c.PR = pr
			_, _, err := c.Upsert(context.Background(), marker, "report")
			if err == nil {
				t.Fatal("Upsert succeeded")
			}
			tt.check(t, err)
			if n := len(gh.Comments(repoName, prNumber)); n != 0 {
				t.Errorf("%d comments made", n)
			}
		})
	}
}

func TestUpsertBadMarker(t *testing.T) {
	t.Parallel()
	for _, m := range []string{"", "gantry:x", "<!-- a -- b -->", "<!-- a\n -->"} {
		if _, _, err := (&Commenter{}).Upsert(context.Background(), m, "x"); err == nil {
			t.Errorf("marker %q accepted", m)
		}
	}
	if got := Marker("a--b---c"); got != "<!-- gantry:a-b-c -->" {
		t.Errorf("Marker = %q", got)
	}
}

func TestFromActions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeEvent := func(name, payload string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(payload), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	prEvent := writeEvent("pr.json", `{"action":"synchronize","number":7,"pull_request":{"number":7,"head":{"sha":"abc"}}}`)
	pushEvent := writeEvent("push.json", `{"ref":"refs/heads/main"}`)

	// GitHub Enterprise Server serves the API under /api/v3.
	gh := githubfake.Start(t, githubfake.Options{Repository: repoName, APIPrefix: "/api/v3"})
	gh.AddPullRequest(repoName, prNumber)
	base := map[string]string{
		"GITHUB_API_URL":    gh.APIURL(),
		"GITHUB_REPOSITORY": repoName,
		"GITHUB_EVENT_NAME": "pull_request",
		"GITHUB_EVENT_PATH": prEvent,
	}
	tests := []struct {
		name    string
		env     map[string]string
		token   string
		wantErr string // "" for success
	}{
		{name: "pull_request on GHES", token: gh.APIToken()},
		{name: "pull_request_target", env: map[string]string{"GITHUB_EVENT_NAME": "pull_request_target"}, token: gh.APIToken()},
		{name: "push", env: map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": pushEvent}, token: gh.APIToken(), wantErr: ErrNotPullRequest.Error()},
		{name: "payload without a pull request", env: map[string]string{"GITHUB_EVENT_PATH": pushEvent}, token: gh.APIToken(), wantErr: "no pull_request.number"},
		{name: "no payload", env: map[string]string{"GITHUB_EVENT_PATH": filepath.Join(dir, "missing.json")}, token: gh.APIToken(), wantErr: "read the event payload"},
		{name: "no token", wantErr: "github-token input"},
		{name: "bad repository", env: map[string]string{"GITHUB_REPOSITORY": "shop"}, token: gh.APIToken(), wantErr: "want owner/name"},
		{name: "bad API URL", env: map[string]string{"GITHUB_API_URL": "ghes.example.com"}, token: gh.APIToken(), wantErr: "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string {
				if v, ok := tt.env[k]; ok {
					return v
				}
				return base[k]
			}
			c, err := FromActions(getenv, tt.token, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Owner != "acme" || c.Repo != "shop" || c.PR != prNumber {
				t.Errorf("commenter for %s/%s#%d", c.Owner, c.Repo, c.PR)
			}
			if _, _, err := c.Upsert(context.Background(), Marker(tt.name), "hello"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Cleanup(func() {
		for _, call := range gh.Calls() {
			if !strings.HasPrefix(call.Path, "/api/v3/") {
				t.Errorf("call outside /api/v3: %s %s", call.Method, call.Path)
			}
		}
	})
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 50)
	tests := []struct {
		name       string
		text       string
		limit      int
		wantPrefix string
		wantFence  bool
	}{
		{name: "short enough", text: "hello", limit: 10, wantPrefix: "hello"},
		{name: "cut at a line", text: marker + "\n" + strings.Repeat(long+"\n", 400), limit: 2000, wantPrefix: marker + "\n" + long + "\n"},
		{name: "closes a code block it cuts", text: marker + "\n```\n" + strings.Repeat(long+"\n", 400) + "```\n", limit: 2000, wantPrefix: marker + "\n```\n", wantFence: true},
		{name: "multibyte characters", text: strings.Repeat("✅ ok 🚀\n", 1000), limit: 1000, wantPrefix: "✅ ok 🚀\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Truncate(tt.text, tt.limit)
			if n := utf8.RuneCountInString(got); n > tt.limit {
				t.Errorf("%d characters, over %d", n, tt.limit)
			}
			if !utf8.ValidString(got) || !strings.HasPrefix(got, tt.wantPrefix) {
				t.Errorf("got %q…", got[:min(len(got), 80)])
			}
			if got != tt.text && !strings.Contains(got, "truncated") {
				t.Errorf("no truncation note: …%q", got[max(len(got)-80, 0):])
			}
			if openFence(strings.SplitN(got, "\n\n_… truncated", 2)[0]) {
				t.Errorf("code block left open")
			}
			if tt.wantFence && !strings.Contains(got, "\n```\n\n_… truncated") {
				t.Errorf("code block not closed before the note: …%q", got[max(len(got)-120, 0):])
			}
		})
	}
}
