package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// stdioCommand is how gantry reaches the admin API of an edge whose API
// listens only inside its container: docker exec -i <edge> caddy
// gantry-admin-stdio, with one HTTP request on stdin.
const stdioCommand = "gantry-admin-stdio"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  stdioCommand,
		Usage: "[--address <admin address>] [--timeout <duration>]",
		Short: "Connects stdin and stdout to the local admin API",
		Long: `
Connects to the admin API at --address (default: CADDY_ADMIN, else
localhost:2019), copies stdin to the connection and the connection to stdout
until the server closes it: send one request with "Connection: close".

gantry runs it through "docker exec -i" so that the admin API can listen on
127.0.0.1 inside the edge's container, out of reach of every other container.
It exits 1 when it cannot connect, and 0 once connected, whatever the server
answered (an answer cut short is an incomplete response on stdout).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "", "Address of the admin API")
			cmd.Flags().Duration("timeout", 2*time.Minute, "Longest the exchange may take")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdAdminStdio)
		},
	})
}

func cmdAdminStdio(fl caddycmd.Flags) (int, error) {
	addr := fl.String("address")
	if addr == "" {
		addr = caddy.DefaultAdminListen
	}
	timeout := fl.Duration("timeout")
	conn, err := dialAdmin(addr, timeout)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	// stdin is copied in the background: the request's end is not the
	// connection's, and half-closing it would make the server cancel the
	// request, so the exchange ends when the server closes the connection.
	go func() { _, _ = io.Copy(conn, os.Stdin) }()
	if _, err := io.Copy(os.Stdout, conn); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(os.Stderr, "%s: reading the answer from %s: %v\n", stdioCommand, addr, err)
	}
	return caddy.ExitCodeSuccess, nil
}

// dialAdmin connects to an admin address in Caddy's syntax (127.0.0.1:2019,
// localhost:2019, unix//run/admin.sock).
func dialAdmin(addr string, timeout time.Duration) (net.Conn, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("admin address %q is not one network address (e.g. 127.0.0.1:2019): %v", addr, err)
	}
	network, target := na.Network, na.JoinHostPort(0)
	if na.IsUnixNetwork() {
		target = na.Host
	}
	conn, err := net.DialTimeout(network, target, timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting to the admin API at %s: %w", addr, err)
	}
	return conn, nil
}
