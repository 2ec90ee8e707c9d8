package verify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want Check
	}{
		{
			line: "GET /api/items status=200 json.items exists max=300ms",
			want: Check{Method: "GET", Path: "/api/items", Status: 200, Max: 300 * time.Millisecond,
				JSON: []JSONAssertion{{Path: "items", Op: "exists"}}},
		},
		{
			line: `POST /api/echo body={"a":1} status=201 json.a=1`,
			want: Check{Method: "POST", Path: "/api/echo", Body: `{"a":1}`, Status: 201,
				JSON: []JSONAssertion{{Path: "a", Op: "=", Raw: "1", Want: 1.0}}},
		},
		{
			line: `put /api/items/1 body={"name": "a b", "tags": ["x", "y z"]} status=2xx json.name="a b" json.tags.1='y z' json.deleted absent`,
			want: Check{Method: "PUT", Path: "/api/items/1", Body: `{"name": "a b", "tags": ["x", "y z"]}`, StatusClass: 2,
				JSON: []JSONAssertion{{Path: "name", Op: "=", Raw: `"a b"`, Want: "a b"}, {Path: "tags.1", Op: "=", Raw: "y z", Want: "y z"}, {Path: "deleted", Op: "absent"}}},
		},
		{
			line: `GET / contains="hello from" contains='v1' header=Accept:text/html json.id="1" json.ok=true json.state=ready`,
			want: Check{Method: "GET", Path: "/", StatusClass: 2, Contains: []string{"hello from", "v1"}, Headers: http.Header{"Accept": {"text/html"}},
				JSON: []JSONAssertion{{Path: "id", Op: "=", Raw: `"1"`, Want: "1"}, {Path: "ok", Op: "=", Raw: "true", Want: true}, {Path: "state", Op: "=", Raw: "ready", Want: "ready"}}},
		},
		{
			line: `DELETE /admin status=4xx`,
			want: Check{Method: "DELETE", Path: "/admin", StatusClass: 4},
		},
		{
			line: `POST /notes body='plain text, with spaces' status=201`,
			want: Check{Method: "POST", Path: "/notes", Body: "plain text, with spaces", Status: 201},
		},
		{
			line: `exec api exit=0 contains=ok max=5s -- ./app migrate --check "a b" 'c d' $(id)`,
			want: Check{Service: "api", Argv: []string{"./app", "migrate", "--check", "a b", "c d", "$(id)"}, Contains: []string{"ok"}, Max: 5 * time.Second},
		},
		{
			line: `exec worker -- sh -c 'test -f /tmp/ready'`,
			want: Check{Service: "worker", Argv: []string{"sh", "-c", "test -f /tmp/ready"}},
		},
	} {
		got, err := ParseCheck(tc.line)
		if err != nil {
			t.Errorf("ParseCheck(%s): %v", tc.line, err)
			continue
		}
		tc.want.Line, tc.want.Text = 1, tc.line
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCheck(%s) =\n%+v\nwant\n%+v", tc.line, got, tc.want)
		}
	}
}

func TestParseCheckErrors(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]string{
		"GETT /x":                     "unknown method GETT; want GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or exec",
		"GET":                         "want METHOD /path [assertions] or exec SERVICE",
		"GET api/items":               `path "api/items" must start with /`,
		"GET /x status=abc":           "status=abc: want an HTTP status such as 200 or a class such as 2xx",
		"GET /x status=700":           "status=700",
		"GET /x max=fast":             "max=fast: want a duration such as 300ms",
		"GET /x max=300":              "max=300: want a duration",
		"GET /x json.items":           "json.items needs exists, absent or =VALUE after it",
		"GET /x json.items present":   "json.items needs exists, absent or =VALUE after it",
		"GET /x json.=1":              "json.=1: want json.PATH=VALUE",
		"GET /x speed":                `unknown assertion "speed"`,
		"GET /x colour=red":           `unknown assertion "colour=red"`,
		"GET /x exit=1":               "exit= is for exec checks",
		"GET /x header=Bad":           "header=Bad: want header=Name:value",
		`POST /x body={"a":1`:         "a { or [ is never closed",
		`GET /x contains='abc`:        "a ' is never closed",
		`GET /x contains="abc`:        `a " is never closed`,
		"exec api ./migrate":          "an exec check needs -- before its command",
		"exec api --":                 "no command after --",
		"exec api status=200 -- true": "status= is for HTTP checks; an exec check uses exit=",
		"exec api body=x -- true":     "body= is for HTTP checks",
		"exec api exit=300 -- true":   "exit=300: want an exit code from 0 to 255",
		"exec --rm -- true":           `"--rm" is not a service name`,
	} {
		_, err := ParseCheck(line)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCheck(%s) error %v, want %q", line, err, want)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+strings.ReplaceAll(line, `"`, `\"`)+`"`) {
			t.Errorf("ParseCheck(%s) error %v does not quote the line", line, err)
		}
	}
}

func TestParseChecks(t *testing.T) {
	t.Parallel()
	text := "# contract\n\nGET /a status=200\n  POST /b body={\"x\": 1}  \nGETT /c\nGET /d max=1\n"
	checks, err := ParseChecks(text)
	if err == nil {
		t.Fatal("bad lines accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "line 5: \"GETT /c\": unknown method") || !strings.Contains(msg, "line 6: \"GET /d max=1\": max=1") {
		t.Errorf("error:\n%s", msg)
	}
	if len(checks) != 2 || checks[0].Line != 3 || checks[1].Line != 4 || checks[1].Body != `{"x": 1}` {
		t.Errorf("checks: %+v", checks)
	}
	if checks, err := ParseChecks("\n# none\n"); err != nil || len(checks) != 0 {
		t.Errorf("empty: %v %v", checks, err)
	}
}

// api is a small service for contract checks.
func api(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/items", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"items":[{"id":1,"name":"widget"}],"count":1}`))
	})
	mux.HandleFunc("POST /api/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database is down", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /html", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<h1>hello from v2</h1>"))
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		// Slower than the max=1ms the check allows, whatever the machine.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte(`{}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func mustParse(t *testing.T, text string) []Check {
	t.Helper()
	checks, err := ParseChecks(text)
	if err != nil {
		t.Fatal(err)
	}
	return checks
}

func TestRunChecks(t *testing.T) {
	t.Parallel()
	srv := api(t)
	checker := Checker{Client: srv.Client(), BaseURL: srv.URL + "/", Headers: http.Header{"Authorization": {"Bearer t0ken"}}}
	for _, tc := range []struct {
		line string
		fail string // "" when the check passes
	}{
		{"GET /api/items status=200 json.items exists json.items.0.name=widget json.count=1 max=5s", ""},
		{`POST /api/echo body={"a": 1, "b": {"c": [1, "x y"]}} status=201 json.a=1 json.b={"c":[1,"x y"]}`, ""},
		{"GET /html contains='hello from v2'", ""},
		{"GET /broken status=4xx", `status 500, want 4xx: "database is down"`},
		{"GET /broken", "status 500, want 2xx"},
		{"GET /api/items json.items.0.name=gadget", `json.items.0.name is "widget", want "gadget"`},
		{`GET /api/items json.count="1"`, `json.count is 1, want "1"`},
		{"GET /api/items json.missing exists", "json.missing is missing"},
		{"GET /api/items json.count absent", "json.count is present (1), want absent"},
		{"GET /api/items json.nope=1", "json.nope is missing, want 1"},
		{"GET /html json.a exists", `answer is not JSON: "<h1>hello from v2</h1>"`},
		{"GET /html contains=goodbye", `answer does not contain "goodbye"`},
		{"GET /slow max=1ms", "over max=1ms"},
		{"GET /api/items header=Authorization:wrong status=401", ""},
		{"GET /nowhere status=200", "status 404, want 200"},
	} {
		res := checker.Run(t.Context(), mustParse(t, tc.line))
		if len(res) != 1 {
			t.Fatalf("%s: %d results", tc.line, len(res))
		}
		r := res[0]
		switch {
		case tc.fail == "" && !r.OK():
			t.Errorf("%s failed: %v", tc.line, r.Failures)
		case tc.fail != "" && (r.OK() || !strings.Contains(strings.Join(r.Failures, "; "), tc.fail)):
			t.Errorf("%s: failures %q, want %q", tc.line, r.Failures, tc.fail)
		}
	}
}

func TestRunChecksUnreachableAndNoHeaders(t *testing.T) {
	t.Parallel()
	srv := api(t)
	res := RunChecks(t.Context(), srv.Client(), srv.URL, mustParse(t, "GET /api/items status=200\nGET /api/items status=401"))
	if res[0].OK() || res[0].Status != 401 || !res[1].OK() {
		t.Errorf("without the token: %+v", res)
	}
	srv.Close()
	res = RunChecks(t.Context(), nil, srv.URL, mustParse(t, "GET /api/items"))
	if res[0].OK() || res[0].Status != -1 || !strings.Contains(res[0].Failures[0], "no answer: dial tcp") {
		t.Errorf("closed server: %+v", res)
	}
}

// execer is a stand-in for the deploy targets' docker exec.
type execer struct {
	calls [][]string
}

func (e *execer) Exec(_ context.Context, service string, argv []string) (string, int, error) {
	e.calls = append(e.calls, append([]string{service}, argv...))
	switch {
	case service == "gone":
		return "", -1, errors.New("no container for service gone")
	case argv[0] == "migrate":
		return `{"pending":0}`, 0, nil
	default:
		return "boom", 2, nil
	}
}

func TestRunExecChecks(t *testing.T) {
	t.Parallel()
	ex := &execer{}
	checks := mustParse(t, "exec api -- migrate --status\nexec api json.pending=0 contains=pending -- migrate\nexec api -- false\nexec api exit=2 -- false\nexec gone -- true")
	res := Checker{Execer: ex}.Run(t.Context(), checks)
	want := []string{"", "", `exited 2, want 0: "boom"`, "", "could not run in gone: no container for service gone"}
	for i, r := range res {
		got := strings.Join(r.Failures, "; ")
		if want[i] == "" && !r.OK() || want[i] != "" && !strings.Contains(got, want[i]) {
			t.Errorf("%s: %q, want %q", r.Check.Text, got, want[i])
		}
	}
	if len(ex.calls) != 5 || !reflect.DeepEqual(ex.calls[0], []string{"api", "migrate", "--status"}) {
		t.Errorf("calls: %q", ex.calls)
	}
	// Without an Execer (the verify action), exec checks fail and say where they belong.
	res = RunChecks(t.Context(), nil, "http://127.0.0.1:1", checks[:1])
	if res[0].OK() || !strings.Contains(res[0].Failures[0], "deploy-compose or deploy-swarm") {
		t.Errorf("no execer: %+v", res[0])
	}
}

func TestRunChecksCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := RunChecks(ctx, nil, "http://127.0.0.1:1", mustParse(t, "GET /a\nGET /b"))
	if len(res) != 2 || res[1].OK() || !strings.Contains(res[1].Failures[0], "not run") {
		t.Errorf("%+v", res)
	}
}

func TestJSONOrWord(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]any{"1": 1.0, "true": true, `"1"`: "1", "ready": "ready", "null": nil, `[1,2]`: []any{1.0, 2.0}} {
		if got := jsonOrWord(in); !reflect.DeepEqual(got, want) {
			b, _ := json.Marshal(got)
			t.Errorf("jsonOrWord(%s) = %s", in, b)
		}
	}
}
