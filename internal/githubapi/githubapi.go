// Package githubapi sets up go-github clients the way gantry's actions use the GitHub REST API:
// the token and API URL of the Actions run (GitHub Enterprise Server included), and calls that wait
// out rate limits and retry server errors within bounds, failing with errors a caller can act on.
package githubapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v84/github"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/version"
)

// DefaultAPIURL is the REST API of github.com, GITHUB_API_URL's value there.
const DefaultAPIURL = "https://api.github.com"

// Defaults of Retrier.
const (
	DefaultAttempts = 5
	DefaultMaxWait  = 2 * time.Minute
	DefaultBackoff  = time.Second
	// secondaryWait is how long GitHub asks a client to wait after a secondary rate limit that
	// came without Retry-After: "at least one minute".
	secondaryWait = time.Minute
	// requestTimeout bounds one HTTP round trip, so that a hung API cannot hang a job.
	requestTimeout = 30 * time.Second
)

// ErrBadCredentials is GitHub rejecting the token (401): wrong, expired or revoked.
var ErrBadCredentials = errors.New("GitHub rejected the token (401 Bad credentials)")

// NewClient returns a client of the REST API at apiURL ("" means DefaultAPIURL; GitHub
// Enterprise Server's is https://HOST/api/v3) that authenticates with token. transport carries
// the requests (nil: http.DefaultTransport).
func NewClient(apiURL, token string, transport http.RoundTripper) (*github.Client, error) {
	if token == "" {
		return nil, errors.New("githubapi: no GitHub token")
	}
	c := github.NewClient(&http.Client{Transport: transport, Timeout: requestTimeout}).WithAuthToken(token)
	c.UserAgent = "gantry/" + version.Version
	if apiURL == "" || strings.TrimSuffix(apiURL, "/") == DefaultAPIURL {
		return c, nil
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("githubapi: API URL %q is not an http(s) URL; GITHUB_API_URL should look like https://HOST/api/v3", apiURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	c.BaseURL = u
	return c, nil
}

// ClientFromEnv is NewClient with the API URL of the Actions run (GITHUB_API_URL).
func ClientFromEnv(getenv func(string) string, token string, transport http.RoundTripper) (*github.Client, error) {
	return NewClient(getenv("GITHUB_API_URL"), token, transport)
}

// RepositoryFromEnv returns the owner and name of the Actions run's repository (GITHUB_REPOSITORY).
func RepositoryFromEnv(getenv func(string) string) (owner, name string, err error) {
	full := getenv("GITHUB_REPOSITORY")
	owner, name, ok := strings.Cut(full, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("GITHUB_REPOSITORY is %q, want owner/name", full)
	}
	return owner, name, nil
}

// PermissionError is GitHub refusing a call with 403 for a reason other than a rate limit: the
// token lacks a permission ("Resource not accessible by integration": the job's `permissions:`
// block, or the read-only token of a pull request from a fork). A step that can do without the
// call turns it into a warning.
type PermissionError struct {
	Method  string
	URL     string // without the query
	Message string // what GitHub said
	Err     error  // go-github's *github.ErrorResponse
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("GitHub refused %s %s: 403 %s", e.Method, e.URL, e.Message)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// UncertainError is a write that failed in a way that leaves open whether GitHub carried it out
// (a 5xx answer, a broken connection); Retrier.Do does not repeat such a write, since doing it
// twice could duplicate what it creates. The caller looks before writing again.
type UncertainError struct{ Err error }

func (e *UncertainError) Error() string { return e.Err.Error() + " (it may have been carried out)" }

func (e *UncertainError) Unwrap() error { return e.Err }

// Retrier calls the API again after rate limits (waiting as long as GitHub says, with Retry-After
// or X-RateLimit-Reset) and after server errors and broken connections (backing off), within
// bounds. The zero value uses the defaults and the wall clock.
type Retrier struct {
	// Clock waits between attempts; nil means the wall clock.
	Clock clock.Clock
	// Attempts is how often a call is tried in all; 0 means DefaultAttempts.
	Attempts int
	// MaxWait is the longest single wait: a rate limit that resets later fails the call at once.
	// 0 means DefaultMaxWait.
	MaxWait time.Duration
	// Backoff is the wait after the first server error, doubling after each; 0 means DefaultBackoff.
	Backoff time.Duration
}

func (r Retrier) withDefaults() Retrier {
	if r.Clock == nil {
		r.Clock = clock.Real{}
	}
	if r.Attempts <= 0 {
		r.Attempts = DefaultAttempts
	}
	if r.MaxWait <= 0 {
		r.MaxWait = DefaultMaxWait
	}
	if r.Backoff <= 0 {
		r.Backoff = DefaultBackoff
	}
	return r
}

// MaxAttempts is how often Do tries a call in all.
func (r Retrier) MaxAttempts() int { return r.withDefaults().Attempts }

// Wait sleeps the backoff after the given failed attempt (1, 2, …), for a caller that repeats
// more than one call, such as a look-then-write after an *UncertainError.
func (r Retrier) Wait(ctx context.Context, attempt int) error {
	r = r.withDefaults()
	return r.Clock.Sleep(ctx, r.backoff(attempt))
}

func (r Retrier) backoff(attempt int) time.Duration {
	return min(r.Backoff<<min(attempt-1, 20), r.MaxWait)
}

// Do calls call until it succeeds, fails for good, or the attempts are spent. A write that is not
// idempotent (a POST that creates) is retried only after rate limits, which GitHub answers before
// doing anything; a server error or a broken connection ends it with an *UncertainError. The
// returned error is a *PermissionError for a 403 that is not a rate limit, and wraps
// ErrBadCredentials for a 401.
//
// Do waits itself, so it tells go-github to skip its own pre-emptive rate limit checks
// (github.BypassRateLimitCheck), which would fail calls on the wall clock without asking GitHub.
func (r Retrier) Do(ctx context.Context, idempotent bool, call func(context.Context) error) error {
	r = r.withDefaults()
	ctx = context.WithValue(ctx, github.BypassRateLimitCheck, true)
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return err
		}
		wait, retry := r.plan(err, attempt, idempotent)
		if !retry || attempt >= r.Attempts {
			return classify(err, idempotent)
		}
		if wait > r.MaxWait {
			return fmt.Errorf("%w; GitHub asks to wait %s, longer than the %s gantry waits", classify(err, idempotent), wait.Round(time.Second), r.MaxWait)
		}
		if err := r.Clock.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// plan says whether err is worth another attempt, and after how long.
func (r Retrier) plan(err error, attempt int, idempotent bool) (time.Duration, bool) {
	backoff := r.backoff(attempt)
	var abuse *github.AbuseRateLimitError
	var primary *github.RateLimitError
	var resp *github.ErrorResponse
	switch {
	case errors.As(err, &abuse):
		if abuse.RetryAfter != nil {
			return max(*abuse.RetryAfter, 0), true
		}
		return max(secondaryWait, backoff), true
	case errors.As(err, &primary):
		return max(primary.Rate.Reset.Sub(r.Clock.Now())+time.Second, 0), true
	case errors.As(err, &resp) && resp.Response != nil:
		switch code := resp.Response.StatusCode; {
		case code == http.StatusTooManyRequests:
			if d, ok := retryAfter(resp.Response.Header); ok {
				return d, true
			}
			return max(secondaryWait, backoff), true
		case code >= 500:
			return backoff, idempotent
		}
		return 0, false
	}
	var urlErr *url.Error // go-github's wrapping of a transport failure
	if errors.As(err, &urlErr) {
		return backoff, idempotent
	}
	return 0, false
}

func retryAfter(h http.Header) (time.Duration, bool) {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s < 0 {
		return 0, false
	}
	return time.Duration(s) * time.Second, true
}

// classify turns a final error into the types Do documents.
func classify(err error, idempotent bool) error {
	var abuse *github.AbuseRateLimitError
	var primary *github.RateLimitError
	if errors.As(err, &abuse) || errors.As(err, &primary) {
		return err
	}
	var resp *github.ErrorResponse
	if errors.As(err, &resp) && resp.Response != nil {
		switch code := resp.Response.StatusCode; {
		case code == http.StatusUnauthorized:
			return fmt.Errorf("%w: %w", ErrBadCredentials, err)
		case code == http.StatusForbidden:
			pe := &PermissionError{Message: resp.Message, Err: err}
			if req := resp.Response.Request; req != nil {
				pe.Method = req.Method
				u := *req.URL
				u.RawQuery = ""
				pe.URL = u.String()
			}
			return pe
		case code >= 500 && !idempotent:
			return &UncertainError{Err: err}
		}
		return err
	}
	var urlErr *url.Error
	if !idempotent && errors.As(err, &urlErr) {
		return &UncertainError{Err: err}
	}
	return err
}

// StatusCode is the HTTP status of a failed call's answer, or 0 when there was none.
func StatusCode(err error) int {
	var resp *github.ErrorResponse
	if errors.As(err, &resp) && resp.Response != nil {
		return resp.Response.StatusCode
	}
	var abuse *github.AbuseRateLimitError
	if errors.As(err, &abuse) && abuse.Response != nil {
		return abuse.Response.StatusCode
	}
	var primary *github.RateLimitError
	if errors.As(err, &primary) && primary.Response != nil {
		return primary.Response.StatusCode
	}
	return 0
}
