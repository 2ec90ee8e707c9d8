package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestAdminStdioRelaysOneRequest runs "gantry-edge gantry-admin-stdio" as
// gantry does through docker exec: one raw HTTP request on stdin, the raw
// answer on stdout. The relay is dumb: Caddy's own Host check still applies.
func TestAdminStdioRelaysOneRequest(t *testing.T) {
	adminAddr, listen := freeAddr(t), freeAddr(t)
	edge := newEdgeHome(t).startWithConfig(t, adminAddr, edgeConfig(t, adminAddr, listen, dynamicProxy()))
	blue := newBackend(t, "blue")
	tests := []struct {
		name, method, path, host, body string
		wantStatus                     int
		wantBody                       string
	}{
		{"put", http.MethodPut, "/gantry/upstreams/web", adminAddr, `[{"dial":"` + blue.dial() + `","weight":1}]`, 200, blue.dial()},
		{"get", http.MethodGet, "/gantry/upstreams/web", adminAddr, "", 200, blue.dial()},
		{"caddy's error", http.MethodPut, "/gantry/upstreams/web", adminAddr, `[]`, 400, "upstream list is empty"},
		{"forged host", http.MethodGet, "/config/", "evil.example:2019", "", 403, "host not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+tt.host+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Close = true
			var in bytes.Buffer
			if err := req.Write(&in); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(edgeBin, stdioCommand, "--address", adminAddr)
			cmd.Stdin = &in
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v\n%s", stdioCommand, err, stderr.String())
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), req)
			if err != nil {
				t.Fatalf("reading the relayed answer %q: %v", out, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("HTTP %d %s, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
	if got := string(edge.mustCall(http.MethodGet, "/gantry/upstreams/web", nil)); !strings.Contains(got, blue.dial()) {
		t.Errorf("after the relayed PUT the edge has %s", got)
	}
}

// TestAdminStdioWithoutAdminAPI exits 1 with a message naming the address
// when nothing listens there, so gantry can tell it from an answer.
func TestAdminStdioWithoutAdminAPI(t *testing.T) {
	addr := freeAddr(t)
	cmd := exec.Command(edgeBin, stdioCommand, "--address", addr)
	cmd.Stdin = strings.NewReader("GET /config/ HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "connecting to the admin API at "+addr) {
		t.Errorf("%s with nothing at %s: %v, %s; want exit 1 naming the address", stdioCommand, addr, err, out)
	}
}
