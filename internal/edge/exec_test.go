package edge_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// TestExecTransport drives an edge whose admin API only a local process can
// reach (a unix socket here, the container's loopback in a deploy) through
// gantry-edge's relay command, as a deploy does with docker exec: every
// client method works, and the relay's failures come back as errors the
// client can act on.
func TestExecTransport(t *testing.T) {
	t.Parallel()
	bin := testenv.Caddy(t)
	sock, listen := startUnixAdminCaddy(t)
	var err error
	relay := func(argv ...string) *edge.Client {
		return &edge.Client{HTTP: &http.Client{Transport: &edge.ExecTransport{Host: &remote.Local{}, Argv: argv}}, Admin: "http://edge"}
	}
	c := relay(bin, edge.StdioCommand, "--address", "unix/"+sock)
	ctx := context.Background()
	if !testenv.Eventually(30*time.Second, 20*time.Millisecond, func() bool { _, err = c.Detect(ctx); return err == nil }) {
		t.Fatalf("the admin API did not answer through the relay: %v", err)
	}
	if !c.Dynamic {
		t.Fatal("Detect through the relay did not find gantry's upstreams module")
	}
	blue, green := newBackend(t, "blue", nil), newBackend(t, "green", nil)
	cfg := edge.Config{Listen: caddyListen, AdminListen: "unix/" + sock, UpstreamHeader: edge.UpstreamHeader, Services: []edge.Service{{Name: "web", Upstreams: []edge.Upstream{blue.up(1)}}}}
	if err := c.Load(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if color, err := getRetry(ctx, edgeClient(), "http://"+listen+"/", ""); err != nil || color != "blue" {
		t.Errorf("after the load: %q, %v", color, err)
	}
	if err := c.SetUpstreams(ctx, "web", []edge.Upstream{green.up(1)}); err != nil {
		t.Fatal(err)
	}
	if ups, err := c.Upstreams(ctx, "web"); err != nil || len(ups) != 1 || ups[0].Dial != green.up(1).Dial {
		t.Errorf("Upstreams = %v, %v; want only green", ups, err)
	}
	if color, err := getRetry(ctx, edgeClient(), "http://"+listen+"/", ""); err != nil || color != "green" {
		t.Errorf("after the switch: %q, %v", color, err)
	}
	if err := c.WaitDrained(ctx, blue.up(1).Dial); err != nil {
		t.Error(err)
	}
	// Caddy's refusal comes back as an AdminError with its reason.
	var ae *edge.AdminError
	if err := c.SetUpstreams(ctx, "nosuch", []edge.Upstream{green.up(1)}); !errors.Is(err, edge.ErrUnknownService) || !errors.As(err, &ae) {
		t.Errorf("unknown service through the relay: %v", err)
	}

	tests := []struct {
		name    string
		argv    []string
		wantErr error  // errors.Is
		want    string // in the message
	}{
		// An image without the relay (a stock Caddy, an older gantry-edge):
		// cobra's answer to a command it does not know.
		{"no relay command", []string{bin, edge.StdioCommand + "-missing"}, edge.ErrNoStdioCommand, edge.StdioCommand},
		// An image without caddy at all, as docker exec says it.
		{"no binary", []string{"sh", "-c", `echo 'OCI runtime exec failed: exec failed: unable to start container process: exec: "caddy": executable file not found in $PATH: unknown' >&2; exit 126`}, edge.ErrNoStdioCommand, edge.StdioCommand},
		{"no admin API", []string{bin, edge.StdioCommand, "--address", "unix/" + filepath.Join(filepath.Dir(sock), "none.sock")}, nil, "connecting to the admin API"},
		// Connected, then closed unanswered: the client may send it again.
		{"no answer", []string{"true"}, io.ErrUnexpectedEOF, "without a complete answer"},
		{"answer cut short", []string{"printf", `HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc`}, io.ErrUnexpectedEOF, "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://edge/config/", nil)
			_, err := (&edge.ExecTransport{Host: &remote.Local{}, Argv: tt.argv}).RoundTrip(req)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RoundTrip = %v; want %v with %q", err, tt.wantErr, tt.want)
			}
			if tt.wantErr == nil && errors.Is(err, edge.ErrNoStdioCommand) {
				t.Errorf("RoundTrip = %v; not a missing command", err)
			}
		})
	}
}
