// Package verify proves that a deployed service answers with the expected
// version: it polls a health endpoint until the commit SHA it reports matches,
// several times in a row, then runs contract checks against the service. Every
// deploy command uses it after rolling out, and the verify command wraps it.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/version"
)

// Defaults for the zero values of Options.
const (
	DefaultPath           = "/health"
	DefaultExpectStatus   = http.StatusOK
	DefaultInterval       = time.Second
	DefaultTimeout        = 120 * time.Second
	DefaultConsecutive    = 2
	DefaultRequestTimeout = 5 * time.Second
)

// WrongCommitAnswers is how many answers in a row reporting the same other
// commit end a wait at once when the URL is the new version's own address.
const WrongCommitAnswers = 3

// maxBody is how much of a health response is read.
const maxBody = 1 << 20

// snippetLen is how much of an unexpected body is quoted in reports.
const snippetLen = 120

// Outcome is what one poll of the health endpoint showed. The values are also
// the result output of the verify command.
type Outcome string

// Outcomes of a poll, from worst to best.
const (
	// Unreachable: no HTTP answer (connection refused, DNS, TLS, timeout).
	Unreachable Outcome = "unreachable"
	// Unhealthy: an answer with the wrong status, or one that reports no
	// commit SHA.
	Unhealthy Outcome = "unhealthy"
	// OldVersion: a healthy answer from another commit than the expected one,
	// through a URL that the old version may still answer.
	OldVersion Outcome = "old-version"
	// WrongVersion: a healthy answer from another commit at the new version's
	// own address (Options.OwnAddress), where no old version answers.
	WrongVersion Outcome = "wrong-version"
	// Verified: a healthy answer from the expected commit.
	Verified Outcome = "verified"
)

// versionFields are the JSON fields searched for the served commit, in order,
// when Options.VersionField is empty.
var versionFields = []string{"git_sha", "version", "commit"}

// Options says which endpoint to poll and what proves the expected version.
type Options struct {
	// URL of the health endpoint; /health is appended when it has no path.
	URL string
	// SHA is the expected commit, at least 7 hex characters; it matches the
	// served SHA by prefix, case-insensitively.
	SHA string
	// VersionField is the dotted path of the JSON field holding the served
	// commit (e.g. build.commit; a number indexes an array). Empty tries
	// git_sha, then version (with or without a sha- prefix), then commit.
	VersionField string
	// ExpectStatus is the healthy status code; 0 means 200.
	ExpectStatus int
	// Headers are sent with every request (e.g. an auth token); the caller
	// masks secret values. A Host header sets the request's virtual host.
	Headers http.Header
	// Interval between polls; 0 means 1s.
	Interval time.Duration
	// Timeout for the whole wait; 0 means 120s. The last request may run up
	// to RequestTimeout past it.
	Timeout time.Duration
	// Consecutive verified answers required in a row; 0 means 2.
	Consecutive int
	// RequestTimeout bounds one request; 0 means 5s.
	RequestTimeout time.Duration
	// OwnAddress says URL reaches only the new version (a new container, task
	// or revision at its own address), so an answer from another commit means
	// the new version serves it: WrongCommitAnswers such answers in a row end
	// the wait at once. False for a URL the old version may still answer.
	OwnAddress bool
	// Client makes the requests; nil means a plain client. Deploy commands
	// pass one that dials through SSH.
	Client *http.Client
	// Logf, when set, receives a line each time the outcome changes.
	Logf func(format string, args ...any)
	// OnAttempt, when set, is called after every poll.
	OnAttempt func(Attempt)
}

// Attempt is one poll of the health endpoint.
type Attempt struct {
	N             int           // 1 for the first poll
	At            time.Duration // since the first poll started
	Outcome       Outcome
	Status        int    // HTTP status; 0 when unreachable
	ServedSHA     string // the commit the service reported, if any: lower-case hex
	ServedVersion string // its version field, if any, as Text of at most MaxVersionLen
	Latency       time.Duration
	// Detail says what was seen in one line, e.g. `answers 503 (want 200): "starting"`.
	// Like every text taken from an answer, it has been through Text.
	Detail string
	Err    error // the connection error when unreachable
}

// Result is how a wait ended.
type Result struct {
	// Outcome is Verified when Wait succeeded. Otherwise it is the last
	// poll's, or, when the last answers were right but too few in a row, that
	// of the last wrong answer.
	Outcome Outcome
	// ServedSHA and ServedVersion are the last commit and version the
	// endpoint reported, even if the last poll got no answer: the SHA in
	// lower-case hex (7 to 40 or 64 characters), the version through Text.
	ServedSHA     string
	ServedVersion string
	Status        int // of the last poll
	Elapsed       time.Duration
	Attempts      int
	// Last is the last poll's Detail.
	Last string
	// Changes holds each poll whose outcome (or status or served SHA)
	// differs from the poll before it, starting with the first poll.
	Changes []Attempt
}

// HealthURL parses raw as an http(s) URL and appends /health when it has no
// path.
func HealthURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL with a host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultPath
		u.RawPath = ""
	}
	return u, nil
}

// Origin returns scheme://host of u, the base that contract check paths are
// resolved against.
func Origin(u *url.URL) string { return u.Scheme + "://" + u.Host }

func (o *Options) setDefaults() {
	if o.ExpectStatus == 0 {
		o.ExpectStatus = DefaultExpectStatus
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Consecutive == 0 {
		o.Consecutive = DefaultConsecutive
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// check validates o (after defaults) and returns the health URL.
func (o *Options) check() (*url.URL, error) {
	sha, err := commit.Validate(o.SHA)
	if err != nil {
		return nil, fmt.Errorf("expected SHA %v", err)
	}
	o.SHA = sha
	u, err := HealthURL(o.URL)
	if err != nil {
		return nil, err
	}
	switch {
	case o.ExpectStatus < 100 || o.ExpectStatus > 599:
		return nil, fmt.Errorf("expected status %d is not an HTTP status code", o.ExpectStatus)
	case o.Interval < 0, o.Timeout < 0, o.RequestTimeout < 0:
		return nil, errors.New("interval and timeouts must not be negative")
	case o.Consecutive < 0:
		return nil, fmt.Errorf("consecutive %d must be at least 1", o.Consecutive)
	}
	return u, nil
}

// Wait polls the health endpoint until it answers Consecutive times in a row
// with ExpectStatus and the expected SHA, or until Timeout. On timeout the
// error says in one line what the endpoint last did, e.g.
//
//	after 2m0s http://vm1:8080/health still serves abcdef1 (want 1234567): the old version is still answering, or the new one reports another commit
//
// The Result is filled in either way, so callers can report and react to
// Result.Outcome (e.g. roll back on OldVersion).
func Wait(ctx context.Context, opts Options) (Result, error) {
	opts.setDefaults()
	u, err := opts.check()
	if err != nil {
		return Result{}, err
	}
	target := u.Redacted()
	var (
		res     Result
		prev    *Attempt
		streak  int
		right   int      // verified answers in all
		lastBad *Attempt // the last poll that was not verified
		wrong   int      // answers in a row from the same wrong commit, at an own address
	)
	start := time.Now()
	deadline := start.Add(opts.Timeout)
	for {
		a := poll(ctx, opts, u, start)
		// Everything kept from an answer is data: one line, no workflow command.
		a.Detail = Text(a.Detail, maxDetail)
		a.ServedSHA, a.ServedVersion = SHA(a.ServedSHA), Text(a.ServedVersion, MaxVersionLen)
		if ctx.Err() != nil {
			// The poll was cut short by the caller: it says nothing.
			return stopped(ctx, res, start, target, lastBad)
		}
		a.N = res.Attempts + 1
		res.Attempts = a.N
		res.Outcome, res.Status, res.Last = a.Outcome, a.Status, a.Detail
		if a.ServedSHA != "" {
			res.ServedSHA = a.ServedSHA
		}
		if a.ServedVersion != "" {
			res.ServedVersion = a.ServedVersion
		}
		if prev == nil || changed(*prev, a) {
			res.Changes = append(res.Changes, a)
			opts.Logf("%s %s (attempt %d, +%s)", target, a.Detail, a.N, Round(a.At))
		}
		if opts.OnAttempt != nil {
			opts.OnAttempt(a)
		}
		if a.Outcome == WrongVersion && prev != nil && prev.Outcome == WrongVersion && prev.ServedSHA == a.ServedSHA {
			wrong++
		} else if a.Outcome == WrongVersion {
			wrong = 1
		} else {
			wrong = 0
		}
		prev = &a
		if wrong >= WrongCommitAnswers {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("%s serves %s, not %s (%d answers in a row after %s): the new version itself reports another commit at its own address; was its image built from another commit, or is the sha input wrong?",
				target, short(a.ServedSHA), short(opts.SHA), wrong, Round(res.Elapsed))
		}
		if a.Outcome == Verified {
			streak++
			right++
		} else {
			streak = 0
			lastBad = &a
		}
		if streak >= opts.Consecutive {
			res.Elapsed = time.Since(start)
			opts.Logf("verified: %s serves %s, %d answers in a row (%d attempts, %s)", target, a.ServedSHA, streak, res.Attempts, Round(res.Elapsed))
			return res, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return timedOut(res, start, opts, target, a, right, lastBad)
		}
		t := time.NewTimer(min(opts.Interval, remaining))
		select {
		case <-ctx.Done():
			t.Stop()
			return stopped(ctx, res, start, target, lastBad)
		case <-t.C:
		}
		if time.Until(deadline) <= 0 {
			return timedOut(res, start, opts, target, a, right, lastBad)
		}
	}
}

// stopped ends a wait the caller cancelled.
func stopped(ctx context.Context, res Result, start time.Time, target string, lastBad *Attempt) (Result, error) {
	res.Elapsed = time.Since(start)
	last := res.Last
	if last == "" {
		last = "no answer yet"
	}
	switch {
	case res.Attempts == 0:
		res.Outcome = Unreachable
	case res.Outcome == Verified && lastBad != nil:
		res.Outcome = lastBad.Outcome
	case res.Outcome == Verified:
		res.Outcome = Unhealthy
	}
	return res, fmt.Errorf("verify %s stopped after %s (last: %s): %w", target, Round(res.Elapsed), last, ctx.Err())
}

// changed reports whether b is worth a log line after a.
func changed(a, b Attempt) bool {
	return a.Outcome != b.Outcome || a.Status != b.Status || a.ServedSHA != b.ServedSHA
}

// timedOut ends a wait that ran out of time. The error and outcome are those
// of the last wrong answer, even when right ones came after it; right answers
// that never came often enough in a row are mentioned, since they usually
// mean an old instance is still behind the endpoint.
func timedOut(res Result, start time.Time, opts Options, target string, last Attempt, right int, lastBad *Attempt) (Result, error) {
	res.Elapsed = time.Since(start)
	bad := lastBad
	if last.Outcome != Verified {
		bad = &last
	}
	if bad == nil {
		res.Outcome = Unhealthy
		return res, fmt.Errorf("after %s %s served %s only %d time(s) in a row (want %d) before the timeout; raise timeout or lower interval",
			opts.Timeout, target, short(last.ServedSHA), right, opts.Consecutive)
	}
	res.Outcome = bad.Outcome
	msg := fmt.Sprintf("after %s %s %s", opts.Timeout, target, bad.Detail)
	if right > 0 {
		msg += fmt.Sprintf("; it served %s in %d of %d answers but never %d in a row (is an old or unhealthy instance still behind the endpoint?)",
			short(opts.SHA), right, res.Attempts, opts.Consecutive)
	}
	return res, errors.New(msg)
}

// poll makes one request and classifies its answer.
func poll(ctx context.Context, opts Options, u *url.URL, start time.Time) Attempt {
	a := Attempt{At: time.Since(start)}
	rctx, cancel := context.WithTimeout(ctx, opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		a.Outcome, a.Err, a.Detail = Unreachable, err, "is unreachable: "+err.Error()
		return a
	}
	setHeaders(req, opts.Headers)
	req.Header.Set("Accept", "application/json")
	if req.Header.Get("Cache-Control") == "" {
		// An old answer cached by a proxy must not pass for the new version.
		req.Header.Set("Cache-Control", "no-cache")
	}
	t0 := time.Now()
	resp, err := opts.Client.Do(req)
	if err != nil {
		a.Latency = time.Since(t0)
		a.Outcome, a.Err = Unreachable, unwrapURLError(err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			a.Detail = fmt.Sprintf("is unreachable: no answer within %s", opts.RequestTimeout)
		} else {
			a.Detail = "is unreachable: " + oneLine(a.Err.Error())
		}
		return a
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	a.Latency = time.Since(t0)
	a.Status = resp.StatusCode
	if rerr != nil {
		a.Outcome, a.Err = Unreachable, rerr
		a.Detail = fmt.Sprintf("is unreachable: answer %d cut off: %s", resp.StatusCode, oneLine(rerr.Error()))
		return a
	}
	if resp.StatusCode != opts.ExpectStatus {
		a.Outcome = Unhealthy
		a.Detail = fmt.Sprintf("answers %d (want %d): %s", resp.StatusCode, opts.ExpectStatus, Snippet(body))
		return a
	}
	served, ver, why := ServedCommit(body, opts.VersionField)
	a.ServedSHA, a.ServedVersion = served, ver
	switch {
	case served == "":
		a.Outcome = Unhealthy
		a.Detail = fmt.Sprintf("answers %d but %s", resp.StatusCode, why)
	case commit.Matches(served, opts.SHA):
		a.Outcome = Verified
		a.Detail = fmt.Sprintf("serves %s: healthy", short(served))
	case opts.OwnAddress:
		a.Outcome = WrongVersion
		a.Detail = fmt.Sprintf("serves %s, not %s: the new version itself reports another commit", short(served), short(opts.SHA))
	default:
		a.Outcome = OldVersion
		a.Detail = fmt.Sprintf("still serves %s (want %s): the old version is still answering, or the new one reports another commit", short(served), short(opts.SHA))
	}
	return a
}

// setHeaders copies h onto req; a Host header becomes the virtual host.
func setHeaders(req *http.Request, h http.Header) {
	for k, vs := range h {
		if http.CanonicalHeaderKey(k) == "Host" {
			if len(vs) > 0 {
				req.Host = vs[0]
			}
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "gantry/"+version.Version+" (verify)")
	}
}

// ServedCommit finds the commit a health body reports. field is a dotted JSON
// path; empty tries git_sha, then version (a SHA, with or without a sha-
// prefix), then commit. It also returns the body's version field, and when no
// commit is found, why not.
func ServedCommit(body []byte, field string) (sha, ver, why string) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return "", "", "the body is not JSON: " + Snippet(body)
	}
	if v, ok := Lookup(doc, "version"); ok {
		ver = scalar(v)
	}
	if field != "" {
		v, ok := Lookup(doc, field)
		if !ok {
			return "", ver, fmt.Sprintf("the body has no field %s: %s", field, Snippet(body))
		}
		s := strings.TrimPrefix(scalar(v), "sha-")
		switch {
		case s == "":
			return "", ver, fmt.Sprintf("field %s is empty", field)
		case SHA(s) == "":
			return "", ver, fmt.Sprintf("field %s is %s, not a commit SHA (7 to 40 hex characters)", field, Snippet([]byte(s)))
		}
		return strings.ToLower(s), ver, ""
	}
	var seen []string
	for _, f := range versionFields {
		v, ok := Lookup(doc, f)
		if !ok {
			continue
		}
		s := scalar(v)
		if c := SHA(strings.TrimPrefix(s, "sha-")); c != "" {
			return c, ver, ""
		}
		seen = append(seen, fmt.Sprintf("%s %q", f, s))
	}
	const hint = "; report the commit in git_sha or set version-field to the field holding it"
	if len(seen) == 0 {
		return "", ver, "the body has none of the fields git_sha, version, commit" + hint
	}
	return "", ver, "it reports no commit SHA (" + strings.Join(seen, ", ") + ")" + hint
}

func looksLikeSHA(s string) bool {
	if len(s) < commit.MinLen {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Lookup follows a dotted path (a.b.0.c) through decoded JSON; a number
// indexes an array.
func Lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, seg := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// scalar renders a JSON value as text: strings as they are, others as JSON.
func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Snippet quotes the first bytes of a body on one line for a report.
func Snippet(body []byte) string {
	s := string(body)
	if len(s) > snippetLen {
		s = s[:snippetLen]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	if strings.TrimSpace(s) == "" {
		return "(empty body)"
	}
	return strconv.Quote(oneLine(s))
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// short abbreviates a SHA to 7 characters for messages.
func short(sha string) string {
	if looksLikeSHA(sha) && len(sha) > commit.MinLen {
		return strings.ToLower(sha[:commit.MinLen])
	}
	return sha
}

// Round rounds d for display: to 100µs under 10ms, to milliseconds under a
// second, else to tenths of a second.
func Round(d time.Duration) time.Duration {
	switch {
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d < time.Second:
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
