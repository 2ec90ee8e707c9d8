package k6run

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/gantry-dev/gantry/internal/input"
)

// Names of the __ENV values the smoke script reads; they reach k6 as -e
// arguments (Script.Env), so user text is never part of the script's source.
const (
	EnvURL    = "GANTRY_URL"
	EnvMethod = "GANTRY_METHOD"
	EnvName   = "GANTRY_NAME"
)

// SmokeScenario is the name of the smoke script's one scenario.
const SmokeScenario = "smoke"

// Bounds of the smoke test's inputs.
const (
	MaxRate     = 100000
	MaxVUs      = 10000
	MaxDuration = 24 * time.Hour
	// defaultMaxVUs caps the VUs an arrival rate may grow to when vus is
	// not given: enough for 1 s responses at 1000 requests a second.
	defaultMaxVUs = 1000
)

// smokeMethods are the methods the smoke script may send, without a body.
var smokeMethods = []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"}

// SmokeOptions describes the built-in smoke test: one URL requested at a
// constant rate, or by a constant number of looping VUs.
type SmokeOptions struct {
	// URL is the http(s) URL to request.
	URL string
	// Rate is requests per second (k6's constant-arrival-rate). 0 with VUs
	// set means VUs that loop as fast as they can (constant-vus).
	Rate int
	// VUs is the number of virtual users: with Rate, the most that may be
	// busy at once; without it, how many loop.
	VUs int
	// Duration is how long the load lasts; at least 1s, whole milliseconds.
	Duration time.Duration
	// Method is the HTTP method; empty means GET.
	Method string
	// ExpectStatus is the status every answer must have; 0 accepts any 2xx
	// or 3xx (k6's own default for http_req_failed).
	ExpectStatus int
}

// Script is a generated k6 script and the values it reads from __ENV.
type Script struct {
	// Source is the script's JavaScript.
	Source string
	// Env is what to pass as RunOptions.Env (k6 -e KEY=VALUE).
	Env map[string]string
}

// SmokeScript validates o and returns the smoke test script. Its check is
// named "status is 2xx/3xx" (or "status is <ExpectStatus>") and its requests
// are tagged with the URL's name: scheme, host and path, without user info,
// query or fragment, which k6 then also puts in the url tag in place of the
// full URL.
func SmokeScript(o SmokeOptions) (Script, error) {
	u, err := parseTarget(o.URL)
	if err != nil {
		return Script{}, err
	}
	method := strings.ToUpper(strings.TrimSpace(o.Method))
	if method == "" {
		method = "GET"
	}
	if !slices.Contains(smokeMethods, method) {
		return Script{}, &input.Error{Input: "method", Msg: fmt.Sprintf("must be one of %s (got %q)", strings.Join(smokeMethods, ", "), o.Method)}
	}
	switch {
	case o.Rate < 0 || o.Rate > MaxRate:
		return Script{}, &input.Error{Input: "rate", Msg: fmt.Sprintf("must be a whole number of requests per second from 1 to %d (got %d)", MaxRate, o.Rate)}
	case o.VUs < 0 || o.VUs > MaxVUs:
		return Script{}, &input.Error{Input: "vus", Msg: fmt.Sprintf("must be a whole number of virtual users from 1 to %d (got %d)", MaxVUs, o.VUs)}
	case o.Rate == 0 && o.VUs == 0:
		return Script{}, &input.Error{Input: "rate", Msg: "must be at least 1 request per second, unless vus is set"}
	case o.Duration < time.Second || o.Duration > MaxDuration:
		return Script{}, &input.Error{Input: "duration", Msg: fmt.Sprintf("must be from 1s to 24h, like 30s or 2m (got %s)", o.Duration)}
	case o.Duration%time.Millisecond != 0:
		return Script{}, &input.Error{Input: "duration", Msg: fmt.Sprintf("must be whole milliseconds (got %s)", o.Duration)}
	case o.ExpectStatus != 0 && (o.ExpectStatus < 100 || o.ExpectStatus > 599):
		return Script{}, &input.Error{Input: "expect-status", Msg: fmt.Sprintf("must be an HTTP status from 100 to 599, or empty for any 2xx or 3xx (got %d)", o.ExpectStatus)}
	}

	d := smokeData{
		Scenario: SmokeScenario,
		Duration: k6Duration(o.Duration),
		Rate:     o.Rate,
		VUs:      o.VUs,
		MaxVUs:   o.VUs,
		Expect:   o.ExpectStatus,
		EnvURL:   EnvURL, EnvMethod: EnvMethod, EnvName: EnvName,
	}
	if o.Rate > 0 && o.VUs == 0 {
		// A few VUs serve fast answers; more are started as answers slow.
		d.VUs = max(1, (o.Rate+9)/10)
		d.MaxVUs = max(d.VUs, min(o.Rate, defaultMaxVUs))
	}
	var b strings.Builder
	if err := smokeTemplate.Execute(&b, d); err != nil {
		return Script{}, fmt.Errorf("smoke script: %w", err)
	}
	return Script{
		Source: b.String(),
		Env:    map[string]string{EnvURL: o.URL, EnvMethod: method, EnvName: requestName(u)},
	}, nil
}

// parseTarget checks that s is an absolute http(s) URL with a host.
func parseTarget(s string) (*url.URL, error) {
	bad := func(why string) error {
		return &input.Error{Input: "url", Msg: "must be an http:// or https:// URL with a host" + why}
	}
	if strings.TrimSpace(s) == "" {
		return nil, bad(" (got nothing)")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, bad(" and no spaces or control characters")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, bad(fmt.Sprintf(" (%s)", strings.TrimPrefix(err.Error(), "parse ")))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		return nil, bad(fmt.Sprintf(" (got %q)", u.Redacted()))
	}
	return u, nil
}

// requestName is the URL without user info, query or fragment, which may
// hold tokens and would split one endpoint into many rows.
func requestName(u *url.URL) string {
	n := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return n.String()
}

// k6Duration formats d the way k6 reads durations: 90s, or 1500ms.
func k6Duration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// smokeData fills smokeTemplate. Only numbers validated above and constant
// names go into the source; everything a user typed arrives through __ENV.
type smokeData struct {
	Scenario, Duration         string
	Rate, VUs, MaxVUs, Expect  int
	EnvURL, EnvMethod, EnvName string
}

var smokeTemplate = template.Must(template.New("smoke").Parse(`// gantry smoke test, generated by gantry. The target comes from __ENV
// (k6 run -e {{.EnvURL}}=... -e {{.EnvMethod}}=... -e {{.EnvName}}=...).
import http from 'k6/http';
import { check } from 'k6';

const url = __ENV.{{.EnvURL}};
const method = __ENV.{{.EnvMethod}} || 'GET';
const name = __ENV.{{.EnvName}} || url;
if (!url) {
  throw new Error('{{.EnvURL}} is not set: run this script with k6 run -e {{.EnvURL}}=<url>');
}
{{- if .Expect}}

// Only {{.Expect}} counts as a success in http_req_failed too.
http.setResponseCallback(http.expectedStatuses({{.Expect}}));
{{- end}}

export const options = {
  discardResponseBodies: true,
  scenarios: {
    {{.Scenario}}: {
{{- if .Rate}}
      executor: 'constant-arrival-rate',
      rate: {{.Rate}},
      timeUnit: '1s',
      duration: '{{.Duration}}',
      preAllocatedVUs: {{.VUs}},
      maxVUs: {{.MaxVUs}},
{{- else}}
      executor: 'constant-vus',
      vus: {{.VUs}},
      duration: '{{.Duration}}',
{{- end}}
    },
  },
};

const params = { tags: { name: name } };

export default function () {
  const res = http.request(method, url, null, params);
{{- if .Expect}}
  check(res, { 'status is {{.Expect}}': (r) => r.status === {{.Expect}} });
{{- else}}
  check(res, { 'status is 2xx/3xx': (r) => r.status >= 200 && r.status < 400 });
{{- end}}
}
`))
