package upstreams

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// call sends one request to the admin routes and returns the status and
// body (for an error, Caddy's {"error": ...} message).
func call(t *testing.T, a *Admin, method, path, body string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	err := a.serve(w, r)
	if err == nil {
		return w.Code, w.Body.String()
	}
	var ae caddy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s %s: error %v is not a caddy.APIError", method, path, err)
	}
	return ae.HTTPStatus, ae.Err.Error()
}

func TestAdminRefusesBadRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"empty body", "PUT", "/gantry/upstreams/web", "", 400, "body is empty"},
		{"empty list", "PUT", "/gantry/upstreams/web", "[]", 400, "upstream list is empty"},
		{"null", "PUT", "/gantry/upstreams/web", "null", 400, "upstream list is empty"},
		{"all zero", "PUT", "/gantry/upstreams/web", `[{"dial":"a:1","weight":0},{"dial":"b:1","weight":0}]`, 400, "every weight is 0"},
		{"negative", "PUT", "/gantry/upstreams/web", `[{"dial":"a:1","weight":-5}]`, 400, "weight -5 is outside"},
		{"fraction", "PUT", "/gantry/upstreams/web", `[{"dial":"a:1","weight":0.5}]`, 400, "decode body"},
		{"object", "PUT", "/gantry/upstreams/web", `{"dial":"a:1"}`, 400, "want a JSON array"},
		{"typo", "PUT", "/gantry/upstreams/web", `[{"dial":"a:1","wieght":1}]`, 400, `unknown field "wieght"`},
		{"no dial", "PUT", "/gantry/upstreams/web", `[{"weight":1}]`, 400, `upstream 1 has no "dial"`},
		{"bad dial", "PUT", "/gantry/upstreams/web", `[{"dial":"web-2","weight":1}]`, 400, `dial "web-2" is not host:port`},
		{"twice", "PUT", "/gantry/upstreams/web", `[{"dial":"a:1"},{"dial":"a:1"}]`, 400, "listed twice"},
		{"trailing", "PUT", "/gantry/upstreams/web", `[{"dial":"a:1"}] [1]`, 400, "more after the array"},
		{"not json", "PUT", "/gantry/upstreams/web", `dial=a:1`, 400, "decode body"},
		{"bad service", "PUT", "/gantry/upstreams/we%20b", `[{"dial":"a:1"}]`, 400, "service name"},
		{"too large", "PUT", "/gantry/upstreams/web", "[" + strings.Repeat(" ", maxBody) + "]", 400, "larger than"},
		{"method", "DELETE", "/gantry/upstreams/web", "", 405, "use GET or PUT"},
		{"inflight method", "POST", "/gantry/inflight", "", 405, "use GET"},
		{"unknown service", "GET", "/gantry/upstreams/api", "", 404, `service "api" has no upstreams`},
		{"unknown route", "GET", "/gantry/nothing", "", 404, "no gantry route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg, _ := OpenRegistry("")
			a := &Admin{reg: reg}
			status, msg := call(t, a, tt.method, tt.path, tt.body)
			if status != tt.status || !strings.Contains(msg, tt.want) {
				t.Fatalf("%s %s %q = %d %q, want %d and a message containing %q", tt.method, tt.path, tt.body, status, msg, tt.status, tt.want)
			}
			if len(reg.All()) != 0 {
				t.Fatalf("a refused request changed the registry: %v", reg.All())
			}
		})
	}
}

func TestAdminPutGet(t *testing.T) {
	t.Parallel()
	reg, _ := OpenRegistry("")
	a := &Admin{reg: reg}
	status, body := call(t, a, "PUT", "/gantry/upstreams/web", `[{"dial":"web-1:8080","weight":3},{"dial":"web-2:8080"}]`)
	want := []Upstream{{"web-1:8080", 3}, {"web-2:8080", 1}}
	var got []Upstream
	if status != 200 || json.Unmarshal([]byte(body), &got) != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("PUT = %d %s, want 200 and %v (a missing weight is 1)", status, body, want)
	}
	status, body = call(t, a, "GET", "/gantry/upstreams/web", "")
	got = nil
	if status != 200 || json.Unmarshal([]byte(body), &got) != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GET = %d %s, want 200 and %v", status, body, want)
	}
	status, body = call(t, a, "GET", "/gantry/upstreams", "")
	var all map[string][]Upstream
	if status != 200 || json.Unmarshal([]byte(body), &all) != nil || !reflect.DeepEqual(all, map[string][]Upstream{"web": want}) {
		t.Fatalf("GET all = %d %s", status, body)
	}
	status, body = call(t, a, "GET", "/gantry/inflight", "")
	var inflight []DialInFlight
	if status != 200 || json.Unmarshal([]byte(body), &inflight) != nil || len(inflight) != 2 ||
		inflight[0].Dial != "web-1:8080" || inflight[0].InFlight != 0 || !reflect.DeepEqual(inflight[0].Services, []string{"web"}) {
		t.Fatalf("GET inflight = %d %s", status, body)
	}
}
