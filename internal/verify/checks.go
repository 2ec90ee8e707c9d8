package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// CheckFormat documents the line format of contract checks, for help texts.
const CheckFormat = `One check a line; blank lines and lines starting with # are ignored.
  METHOD /path [ASSERTION ...]                   an HTTP request to the service
  exec SERVICE [ASSERTION ...] -- COMMAND [ARG ...]   a command in a container (deploy-compose, deploy-swarm)
METHOD is GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS; /path is resolved against the service's origin.
Options and assertions (all must hold):
  status=201 | status=4xx    the HTTP status (default: any 2xx)
  exit=N                     an exec check's exit code (default 0)
  max=300ms                  the longest the request or command may take
  body=VALUE                 the request body; JSON is sent as application/json, anything else as text/plain
  header=Name:value          a request header
  contains=TEXT              the response body (stdout for exec) contains TEXT
  json.PATH exists | absent  a field of the JSON answer is present or not (PATH: items.0.id)
  json.PATH=VALUE            a field equals VALUE, read as JSON (1, true, "1", {"a":1}) or else as a plain word
Values may hold spaces inside '...' (taken literally), "..." (a JSON string) or {...} / [...] (JSON).`

// methods are the HTTP methods a check may use.
var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// DefaultCheckTimeout bounds one check when Checker.Timeout is zero.
const DefaultCheckTimeout = 10 * time.Second

// Check is one contract check: an HTTP request to the service, or a command
// run in one of its containers, with what its answer must show.
type Check struct {
	Line int    // 1-based line number in the checks text
	Text string // the line as written

	// HTTP checks.
	Method  string // GET, POST...; empty for an exec check
	Path    string // starts with /
	Body    string
	Headers http.Header

	// Exec checks.
	Service string
	Argv    []string
	Exit    int // expected exit code

	// Assertions.
	Status      int // exact HTTP status; 0 when StatusClass applies
	StatusClass int // 2 for 2xx...; used when Status is 0 (default 2)
	Max         time.Duration
	Contains    []string
	JSON        []JSONAssertion
}

// JSONAssertion is one json.PATH assertion.
type JSONAssertion struct {
	Path string
	Op   string // "exists", "absent" or "="
	Raw  string // the expected value as written, for "="
	Want any    // the expected value decoded, for "="
}

// IsExec reports whether c runs a command in a container.
func (c Check) IsExec() bool { return c.Service != "" }

// String returns the check as written.
func (c Check) String() string { return c.Text }

// Execer runs a command in a service's container, for exec checks. Deploy
// commands provide one (docker compose exec, docker exec on a swarm task).
type Execer interface {
	// Exec runs argv in a container of service and returns its stdout and exit
	// code; err means the command could not be run at all.
	Exec(ctx context.Context, service string, argv []string) (stdout string, exitCode int, err error)
}

// ParseChecks parses checks text in CheckFormat. The error names every bad
// line, with its number, and what is wrong with it.
func ParseChecks(text string) ([]Check, error) {
	var checks []Check
	var errs []error
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := ParseCheck(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", i+1, err))
			continue
		}
		c.Line = i + 1
		checks = append(checks, c)
	}
	return checks, errors.Join(errs...)
}

// ParseCheck parses one line in CheckFormat.
func ParseCheck(line string) (Check, error) {
	c := Check{Text: strings.TrimSpace(line), Line: 1}
	toks, err := tokenize(c.Text, true)
	if err != nil {
		return c, fmt.Errorf("%q: %w", c.Text, err)
	}
	if len(toks) < 2 {
		return c, fmt.Errorf("%q: want METHOD /path [assertions] or exec SERVICE [assertions] -- COMMAND", c.Text)
	}
	bad := func(format string, args ...any) (Check, error) {
		return c, fmt.Errorf("%q: %s", c.Text, fmt.Sprintf(format, args...))
	}
	opts := toks[2:]
	if strings.EqualFold(toks[0].s, "exec") {
		c.Service = toks[1].s
		if c.Service == "" || strings.HasPrefix(c.Service, "-") || strings.ContainsAny(c.Service, "='\"") {
			return bad("%q is not a service name; write exec SERVICE [assertions] -- COMMAND", c.Service)
		}
		dash := -1
		for i, t := range opts {
			if t.s == "--" {
				dash = i
				break
			}
		}
		if dash < 0 {
			return bad("an exec check needs -- before its command, e.g. exec api -- ./migrate --check")
		}
		if dash+1 == len(opts) {
			return bad("no command after --")
		}
		if c.Argv, err = words(c.Text[opts[dash+1].off:]); err != nil {
			return bad("%v", err)
		}
		if c.Argv[0] == "" {
			return bad("the command after -- is empty")
		}
		opts = opts[:dash]
	} else {
		c.Method = strings.ToUpper(toks[0].s)
		known := false
		for _, m := range methods {
			known = known || m == c.Method
		}
		if !known {
			return bad("unknown method %s; want %s or exec", toks[0].s, strings.Join(methods, ", "))
		}
		c.Path = toks[1].s
		if !strings.HasPrefix(c.Path, "/") {
			return bad("path %q must start with /", c.Path)
		}
		c.StatusClass = 2
	}
	for i := 0; i < len(opts); i++ {
		t := opts[i].s
		key, val, hasVal := strings.Cut(t, "=")
		switch {
		case strings.HasPrefix(t, "json.") && !hasVal:
			path := strings.TrimPrefix(t, "json.")
			if path == "" || i+1 == len(opts) || opts[i+1].s != "exists" && opts[i+1].s != "absent" {
				return bad("%s needs exists, absent or =VALUE after it, e.g. %s exists", t, t)
			}
			i++
			c.JSON = append(c.JSON, JSONAssertion{Path: path, Op: opts[i].s})
		case strings.HasPrefix(key, "json."):
			path := strings.TrimPrefix(key, "json.")
			if path == "" || val == "" {
				return bad("%s: want json.PATH=VALUE", t)
			}
			c.JSON = append(c.JSON, JSONAssertion{Path: path, Op: "=", Raw: val, Want: jsonOrWord(val)})
		case !hasVal:
			return bad("unknown assertion %q; want status=, max=, body=, header=, contains=, json.PATH=VALUE or json.PATH exists", t)
		case key == "status":
			if c.IsExec() {
				return bad("status= is for HTTP checks; an exec check uses exit=")
			}
			if err := c.parseStatus(val); err != nil {
				return bad("%v", err)
			}
		case key == "exit":
			if !c.IsExec() {
				return bad("exit= is for exec checks; an HTTP check uses status=")
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || n > 255 {
				return bad("exit=%s: want an exit code from 0 to 255", val)
			}
			c.Exit = n
		case key == "max":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return bad("max=%s: want a duration such as 300ms or 2s", val)
			}
			c.Max = d
		case key == "body":
			if c.IsExec() {
				return bad("body= is for HTTP checks")
			}
			c.Body = val
		case key == "header":
			if c.IsExec() {
				return bad("header= is for HTTP checks")
			}
			name, v, ok := strings.Cut(unquote(val), ":")
			if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t") {
				return bad("header=%s: want header=Name:value", val)
			}
			if c.Headers == nil {
				c.Headers = http.Header{}
			}
			c.Headers.Add(strings.TrimSpace(name), strings.TrimSpace(v))
		case key == "contains":
			if val = unquote(val); val == "" {
				return bad("contains= needs some text")
			}
			c.Contains = append(c.Contains, val)
		default:
			return bad("unknown assertion %q; want status=, max=, body=, header=, contains=, json.PATH=VALUE or json.PATH exists", t)
		}
	}
	return c, nil
}

func (c *Check) parseStatus(v string) error {
	if len(v) == 3 && strings.HasSuffix(strings.ToLower(v), "xx") && v[0] >= '1' && v[0] <= '5' {
		c.Status, c.StatusClass = 0, int(v[0]-'0')
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 || n > 599 {
		return fmt.Errorf("status=%s: want an HTTP status such as 200 or a class such as 2xx", v)
	}
	c.Status, c.StatusClass = n, 0
	return nil
}

// jsonOrWord decodes v as JSON, or returns it as a string when it is not JSON.
func jsonOrWord(v string) any {
	var out any
	if err := json.Unmarshal([]byte(v), &out); err == nil {
		return out
	}
	return v
}

// unquote returns the text of a "..." JSON string, or v as it is.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return s
		}
	}
	return v
}

type token struct {
	s   string
	off int // byte offset of the token in the line
}

// tokenize splits a check line at spaces outside '...', "..." and {...} or
// [...]. Single quotes are removed; double-quoted spans are kept with their
// quotes when keepDouble (they are JSON) and unquoted otherwise.
func tokenize(s string, keepDouble bool) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return toks, nil
		}
		start := i
		var b strings.Builder
		depth := 0
		for i < len(s) && (depth > 0 || !isSpace(s[i])) {
			switch c := s[i]; {
			case c == '\'' && depth == 0:
				j := strings.IndexByte(s[i+1:], '\'')
				if j < 0 {
					return nil, errors.New("a ' is never closed")
				}
				b.WriteString(s[i+1 : i+1+j])
				i += j + 2
				continue
			case c == '"':
				end := i + 1
				for end < len(s) && s[end] != '"' {
					if s[end] == '\\' {
						end++
					}
					end++
				}
				if end >= len(s) {
					return nil, errors.New(`a " is never closed`)
				}
				quoted := s[i : end+1]
				if keepDouble || depth > 0 {
					b.WriteString(quoted)
				} else {
					var text string
					if err := json.Unmarshal([]byte(quoted), &text); err != nil {
						return nil, fmt.Errorf("bad quoted string %s: %v", quoted, err)
					}
					b.WriteString(text)
				}
				i = end + 1
				continue
			case c == '{' || c == '[':
				depth++
			case (c == '}' || c == ']') && depth > 0:
				depth--
			}
			b.WriteByte(s[i])
			i++
		}
		if depth > 0 {
			return nil, errors.New("a { or [ is never closed")
		}
		toks = append(toks, token{s: b.String(), off: start})
	}
}

// words splits an exec command into argv, shell-like: '...' is literal, "..."
// is a JSON string, and nothing is expanded.
func words(s string) ([]string, error) {
	toks, err := tokenize(s, false)
	if err != nil {
		return nil, err
	}
	argv := make([]string, len(toks))
	for i, t := range toks {
		argv[i] = t.s
	}
	return argv, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// CheckResult is what one check found.
type CheckResult struct {
	Check Check
	// Status is the HTTP status, or the exit code of an exec check; -1 when
	// there was no answer.
	Status  int
	Elapsed time.Duration
	// Failures says what did not hold and why, one item each; empty when the
	// check passed.
	Failures []string
}

// OK reports whether every assertion of the check held.
func (r CheckResult) OK() bool { return len(r.Failures) == 0 }

// String describes the result in one line.
func (r CheckResult) String() string {
	if r.OK() {
		return fmt.Sprintf("%s: ok (%s)", r.Check.Text, Round(r.Elapsed))
	}
	return fmt.Sprintf("%s: %s", r.Check.Text, strings.Join(r.Failures, "; "))
}

// Checker runs contract checks against a service.
type Checker struct {
	Client *http.Client // nil means a plain client
	// BaseURL is what check paths are appended to, usually Origin of the
	// health URL.
	BaseURL string
	// Headers are sent with every HTTP check (e.g. an auth token).
	Headers http.Header
	// Execer runs exec checks; nil fails them.
	Execer Execer
	// Timeout bounds one check; 0 means DefaultCheckTimeout (or max= plus a
	// second, when that is longer).
	Timeout time.Duration
}

// RunChecks runs HTTP checks against baseURL with client, in order; exec
// checks fail (use Checker with an Execer for those).
func RunChecks(ctx context.Context, client *http.Client, baseURL string, checks []Check) []CheckResult {
	return Checker{Client: client, BaseURL: baseURL}.Run(ctx, checks)
}

// Run runs checks in order (a POST may prepare what a later GET reads) and
// returns one result per check.
func (k Checker) Run(ctx context.Context, checks []Check) []CheckResult {
	out := make([]CheckResult, 0, len(checks))
	for _, c := range checks {
		if ctx.Err() != nil {
			out = append(out, CheckResult{Check: c, Status: -1, Failures: []string{"not run: " + ctx.Err().Error()}})
			continue
		}
		timeout := k.Timeout
		if timeout == 0 {
			timeout = max(DefaultCheckTimeout, c.Max+time.Second)
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		var r CheckResult
		if c.IsExec() {
			r = k.runExec(cctx, c)
		} else {
			r = k.runHTTP(cctx, c, timeout)
		}
		cancel()
		// What the service answered is data: one line, no workflow command.
		for i, f := range r.Failures {
			r.Failures[i] = Text(f, maxDetail)
		}
		out = append(out, r)
	}
	return out
}

func (k Checker) runHTTP(ctx context.Context, c Check, timeout time.Duration) CheckResult {
	r := CheckResult{Check: c, Status: -1}
	client := k.Client
	if client == nil {
		client = &http.Client{}
	}
	var body io.Reader
	if c.Body != "" {
		body = strings.NewReader(c.Body)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, strings.TrimRight(k.BaseURL, "/")+c.Path, body)
	if err != nil {
		r.Failures = append(r.Failures, "bad request: "+err.Error())
		return r
	}
	setHeaders(req, k.Headers)
	if c.Body != "" {
		if json.Valid([]byte(c.Body)) {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	// A check's own headers replace the common ones (e.g. a wrong token to
	// check that the service refuses it).
	for name := range c.Headers {
		req.Header.Del(name)
	}
	setHeaders(req, c.Headers)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		r.Elapsed = time.Since(start)
		msg := oneLine(unwrapURLError(err).Error())
		if errors.Is(err, context.DeadlineExceeded) {
			msg = fmt.Sprintf("no answer within %s", timeout)
		}
		r.Failures = append(r.Failures, "no answer: "+msg)
		return r
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	r.Elapsed = time.Since(start)
	r.Status = resp.StatusCode
	if rerr != nil {
		r.Failures = append(r.Failures, "answer cut off: "+oneLine(rerr.Error()))
	}
	switch {
	case c.Status != 0 && resp.StatusCode != c.Status:
		r.Failures = append(r.Failures, fmt.Sprintf("status %d, want %d: %s", resp.StatusCode, c.Status, Snippet(data)))
	case c.Status == 0 && resp.StatusCode/100 != c.StatusClass:
		r.Failures = append(r.Failures, fmt.Sprintf("status %d, want %dxx: %s", resp.StatusCode, c.StatusClass, Snippet(data)))
	}
	r.Failures = append(r.Failures, c.assertAnswer(data, r.Elapsed)...)
	return r
}

func (k Checker) runExec(ctx context.Context, c Check) CheckResult {
	r := CheckResult{Check: c, Status: -1}
	if k.Execer == nil {
		r.Failures = append(r.Failures, "exec checks run inside the service's containers and belong to deploy-compose or deploy-swarm; verify can only make HTTP requests")
		return r
	}
	start := time.Now()
	stdout, code, err := k.Execer.Exec(ctx, c.Service, c.Argv)
	r.Elapsed = time.Since(start)
	if err != nil {
		r.Failures = append(r.Failures, fmt.Sprintf("could not run in %s: %s", c.Service, oneLine(err.Error())))
		return r
	}
	r.Status = code
	if code != c.Exit {
		r.Failures = append(r.Failures, fmt.Sprintf("exited %d, want %d: %s", code, c.Exit, Snippet([]byte(stdout))))
	}
	r.Failures = append(r.Failures, c.assertAnswer([]byte(stdout), r.Elapsed)...)
	return r
}

// assertAnswer checks the time, contains= and json. assertions on an answer.
func (c Check) assertAnswer(data []byte, took time.Duration) []string {
	var fails []string
	if c.Max > 0 && took > c.Max {
		fails = append(fails, fmt.Sprintf("took %s, over max=%s", Round(took), c.Max))
	}
	for _, want := range c.Contains {
		if !bytes.Contains(data, []byte(want)) {
			fails = append(fails, fmt.Sprintf("answer does not contain %q: %s", want, Snippet(data)))
		}
	}
	if len(c.JSON) == 0 {
		return fails
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return append(fails, "answer is not JSON: "+Snippet(data))
	}
	for _, j := range c.JSON {
		got, ok := Lookup(doc, j.Path)
		switch j.Op {
		case "exists":
			if !ok {
				fails = append(fails, fmt.Sprintf("json.%s is missing", j.Path))
			}
		case "absent":
			if ok {
				fails = append(fails, fmt.Sprintf("json.%s is present (%s), want absent", j.Path, compact(got)))
			}
		default:
			switch {
			case !ok:
				fails = append(fails, fmt.Sprintf("json.%s is missing, want %s", j.Path, j.Raw))
			case !reflect.DeepEqual(got, j.Want):
				fails = append(fails, fmt.Sprintf("json.%s is %s, want %s", j.Path, compact(got), compact(j.Want)))
			}
		}
	}
	return fails
}

// compact renders a decoded JSON value for a message, cut to a readable length.
func compact(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > snippetLen {
		return string(b[:snippetLen]) + "…"
	}
	return string(b)
}
