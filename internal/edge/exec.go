package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gantry-dev/gantry/internal/remote"
)

// AdminListen is where gantry's edge listens for its admin API: the loopback
// interface inside the edge's container, which no other container reaches.
// gantry reaches it with docker exec (ExecClient).
const AdminListen = "127.0.0.1:2019"

// StdioCommand is gantry-edge's command that connects its stdin and stdout
// to the local admin API (edge/cmd/gantry-edge); a stock Caddy has none.
const StdioCommand = "gantry-admin-stdio"

// ErrNoStdioCommand is an edge whose binary has no StdioCommand: not
// gantry-edge, or one older than the closed admin API.
var ErrNoStdioCommand = errors.New("the edge image has no " + StdioCommand + " command (gantry-edge's), so gantry cannot reach its admin API, which listens only inside the edge's container")

// ExecArgv is the command, after "docker exec -i <container>", that relays
// one admin request of ExecClient inside the edge's container.
func ExecArgv() []string {
	return []string{"caddy", StdioCommand, "--address", AdminListen}
}

// ExecClient is a Client whose requests reach the admin API through argv,
// e.g. docker exec -i <edge container> followed by ExecArgv(), run on h.
func ExecClient(h remote.Host, argv []string) *Client {
	return &Client{HTTP: &http.Client{Transport: &ExecTransport{Host: h, Argv: argv}}, Admin: "http://" + AdminListen}
}

// ExecTransport sends each request on the stdin of a program run on Host
// and reads the raw HTTP response from its stdout, one program per request.
type ExecTransport struct {
	Host remote.Host
	// Argv relays stdin to the admin API and its answer to stdout.
	Argv []string
}

// RoundTrip implements http.RoundTripper. An answer cut short, as when the
// admin server closes the connection unanswered, is io.ErrUnexpectedEOF.
func (t *ExecTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Close = true // the relay ends when the server closes the connection
	if req.Body != nil {
		defer req.Body.Close()
	}
	var in bytes.Buffer
	if err := r.Write(&in); err != nil {
		return nil, fmt.Errorf("edge: writing the admin request: %w", err)
	}
	out, err := t.Host.Run(req.Context(), t.Argv, &in)
	var ee *remote.ExitError
	if errors.As(err, &ee) {
		// cobra's answer to a command it lacks, or docker's to an image
		// without the binary.
		if strings.Contains(ee.Stderr, "unknown command") || strings.Contains(ee.Stderr, "executable file not found") {
			return nil, fmt.Errorf("edge: %w (%s)", ErrNoStdioCommand, strings.Join(t.Argv, " "))
		}
		return nil, fmt.Errorf("edge: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), req)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("edge: the admin API closed the connection without a complete answer: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("edge: the admin API's answer was cut short: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// CloseAdmin makes the edge's admin API listen on AdminListen only, with no
// other admin settings (remote access, config loading), when its running
// configuration says otherwise: an edge that an older gantry configured, or
// one that resumed such a configuration, listened on every interface. Caddy
// saves the change, so a restart (--resume) keeps it. It reports whether it
// changed anything.
func (c *Client) CloseAdmin(ctx context.Context) (bool, error) {
	// The whole configuration: /config/admin of an empty one is an error.
	_, body, err := c.do(ctx, http.MethodGet, "/config/", nil, nil)
	if err != nil {
		return false, err
	}
	var cfg struct {
		Admin json.RawMessage `json:"admin"`
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return false, fmt.Errorf("edge: decode the configuration: %w", err)
	}
	admin := strings.TrimSpace(string(cfg.Admin))
	want := `{"listen":"` + AdminListen + `"}`
	if admin == want || admin == "" || admin == "null" {
		// No admin settings: the API listens at CADDY_ADMIN, which gantry's
		// override and stack set to AdminListen.
		return false, nil
	}
	if _, _, err := c.do(ctx, http.MethodPost, "/config/admin", []byte(want), nil); err != nil {
		return false, fmt.Errorf("edge: closing the admin API (it was %s): %w", admin, err)
	}
	return true, nil
}
