// Package ssh is a remote.Host over SSH (golang.org/x/crypto/ssh): host keys
// pinned from known_hosts content, public-key login, an optional bastion,
// commands with every argv element shell-quoted, and keepalives that notice
// a dead connection in seconds. sshd runs commands through the user's login
// shell, which must be a POSIX shell (sh, dash, bash, zsh, ash).
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
	"golang.org/x/crypto/ssh"
)

// Defaults for Options.
const (
	DefaultPort      = 22
	DefaultTimeout   = 20 * time.Second
	DefaultKeepAlive = 5 * time.Second
	// KeepAliveMisses unanswered keepalives in a row mean the connection
	// is dead.
	KeepAliveMisses = 3
)

// lostWait is how long Run waits, after a session fails without an exit
// status, for the connection to report why it closed.
const lostWait = time.Second

// Options says where and how to connect.
type Options struct {
	Host string
	Port int // DefaultPort when 0
	User string
	// PrivateKey is the ssh-key input: an unencrypted private key in PEM or
	// OpenSSH format.
	PrivateKey []byte
	// KnownHosts is the known-hosts input: known_hosts file content holding
	// the host's (and the jump host's) keys. Required unless
	// InsecureIgnoreHostKey.
	KnownHosts string
	// InsecureIgnoreHostKey accepts any host key, with a warning naming it.
	InsecureIgnoreHostKey bool
	// JumpHost is an optional bastion, "user@host:port" (user defaults to
	// User, port to 22), reached with the same key and known-hosts.
	JumpHost string
	// Timeout bounds connecting and the SSH handshake, per hop
	// (DefaultTimeout when 0).
	Timeout time.Duration
	// KeepAlive is the interval between keepalives (DefaultKeepAlive when
	// 0); after KeepAliveMisses without a reply the connection is closed.
	KeepAlive time.Duration
	// Logf and Warnf print progress and warnings; nil is silent.
	Logf, Warnf func(format string, args ...any)
}

// Client is a connection to a host; it implements remote.Host.
type Client struct {
	name string // user@host:port
	addr string // host:port
	conn *ssh.Client
	jump *ssh.Client // the bastion, nil without one

	done      chan struct{} // closed once conn is closed
	mu        sync.Mutex
	lostErr   error // why conn closed
	closing   bool  // Close was called
	closeOnce sync.Once
}

var _ remote.Host = (*Client)(nil)

// endpoint is one hop: who logs in where.
type endpoint struct{ user, host, port string }

func (e endpoint) addr() string   { return net.JoinHostPort(e.host, e.port) }
func (e endpoint) String() string { return e.user + "@" + e.addr() }

// Dial connects and logs in to o.Host, through o.JumpHost when set.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = func(string, ...any) {}
	}
	o.Host = strings.TrimSuffix(strings.TrimPrefix(o.Host, "["), "]")
	switch {
	case o.Host == "":
		return nil, errors.New("ssh: no host given")
	case strings.ContainsAny(o.Host, "@/ ") || strings.Contains(o.Host, ":") && net.ParseIP(o.Host) == nil:
		return nil, fmt.Errorf("ssh: host %q: want a host name or address alone (user and port are separate settings)", o.Host)
	case o.Port < 1 || o.Port > 65535:
		return nil, fmt.Errorf("ssh: port %d: want 1 to 65535", o.Port)
	}
	if o.User == "" {
		return nil, fmt.Errorf("ssh: no user given for %s", o.Host)
	}
	target := endpoint{o.User, o.Host, strconv.Itoa(o.Port)}
	signer, err := parseKey(o.PrivateKey)
	if err != nil {
		return nil, err
	}
	keys, err := newHostKeys(o.KnownHosts, o.InsecureIgnoreHostKey, o.Warnf)
	if err != nil {
		return nil, err
	}

	var jump *ssh.Client
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	if o.JumpHost != "" {
		bastion, err := parseJumpHost(o.JumpHost, o.User)
		if err != nil {
			return nil, err
		}
		jump, err = handshake(ctx, o, bastion, signer, keys, dial)
		if err != nil {
			return nil, fmt.Errorf("jump host: %w", err)
		}
		o.Logf("connected to jump host %s", bastion)
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return jump.DialContext(ctx, "tcp", addr)
		}
	}
	conn, err := handshake(ctx, o, target, signer, keys, dial)
	if err != nil {
		if jump != nil {
			jump.Close()
			return nil, fmt.Errorf("%w (through jump host %s)", err, o.JumpHost)
		}
		return nil, err
	}
	o.Logf("connected to %s", target)

	c := &Client{name: target.String(), addr: target.addr(), conn: conn, jump: jump, done: make(chan struct{})}
	go func() {
		err := conn.Wait()
		if err == nil {
			err = io.EOF
		}
		c.lost(err)
		if jump != nil {
			jump.Close()
		}
		close(c.done)
	}()
	go c.keepAlive(conn, o.KeepAlive)
	if jump != nil {
		go c.keepAlive(jump, o.KeepAlive)
	}
	return c, nil
}

// parseJumpHost parses "user@host:port", "host:port" or "host".
func parseJumpHost(s, defaultUser string) (endpoint, error) {
	e := endpoint{user: defaultUser, port: strconv.Itoa(DefaultPort)}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		e.user, s = s[:i], s[i+1:]
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole string is the host (IPv6 may be bracketed).
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), e.port
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return e, fmt.Errorf("jump host %q: port %q is not a number from 1 to 65535", s, port)
	}
	if host == "" || e.user == "" || strings.ContainsAny(host, " /@") {
		return e, fmt.Errorf("jump host %q: want user@host:port", s)
	}
	e.host, e.port = host, port
	return e, nil
}

// handshake opens a TCP connection with dial and logs in over it, all
// within o.Timeout.
func handshake(ctx context.Context, o Options, e endpoint, signer ssh.Signer, keys *hostKeys, dial func(context.Context, string) (net.Conn, error)) (*ssh.Client, error) {
	addr := e.addr()
	hctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	timedOut := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("connect to %s: %w", addr, context.Cause(ctx))
		}
		return fmt.Errorf("connect to %s: no answer within %s (check the host, port and firewall): %w", addr, o.Timeout, err)
	}
	nc, err := dial(hctx, addr)
	if err != nil {
		if hctx.Err() != nil {
			return nil, timedOut(err)
		}
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// Closing the connection is what ends a handshake that takes too long
	// or is canceled (a tunneled connection has no deadlines).
	stop := context.AfterFunc(hctx, func() { nc.Close() })

	var hostKeyErr error
	cfg := &ssh.ClientConfig{
		User:              e.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   keys.callback(addr, &hostKeyErr),
		HostKeyAlgorithms: keys.algorithms(addr),
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, timedOut(context.DeadlineExceeded)
	}
	if err != nil {
		nc.Close()
		switch {
		case hostKeyErr != nil:
			return nil, hostKeyErr
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("user %s on %s refused the key (%s of ssh-key)", e.user, addr, ssh.FingerprintSHA256(signer.PublicKey()))
		case strings.Contains(err.Error(), "no common algorithm for host key"):
			return nil, fmt.Errorf("host key for %s: the server has no key of the types known-hosts lists for it (%s); update the known-hosts input (ssh-keyscan -p %s %s)", addr, strings.Join(cfg.HostKeyAlgorithms, ", "), e.port, e.host)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// keepAlive sends keepalive@openssh.com every interval and closes the
// connection when KeepAliveMisses of them in a row get no reply: a cut
// network sends no reset, and TCP alone would take many minutes to notice.
func (c *Client) keepAlive(conn *ssh.Client, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	replies := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-replies:
			if err != nil {
				return // the connection is closed
			}
			pending, missed = false, 0
		case <-t.C:
			if !pending {
				pending = true
				go func() {
					// Any reply, even "unknown request", shows the peer alive.
					_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
					replies <- err
				}()
				continue
			}
			if missed++; missed >= KeepAliveMisses {
				c.lost(fmt.Errorf("no reply to keepalives for over %s", time.Duration(missed)*interval))
				c.conn.Close()
				if c.jump != nil {
					c.jump.Close()
				}
				return
			}
		}
	}
}

// lost records the first reason the connection ended.
func (c *Client) lost(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lostErr == nil {
		c.lostErr = err
	}
}

// short is argv for messages, cut at 60 bytes.
func short(argv []string) string {
	s := strings.Join(argv, " ")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + "..."
	}
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}

// DialContext opens a TCP connection from the host (an SSH direct-tcpip
// channel); addr's name is resolved on the host. Only "tcp" networks are
// supported.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%s: dial %s %s: only tcp is supported", c, network, addr)
	}
	conn, err := c.conn.DialContext(ctx, network, addr)
	if err != nil {
		c.mu.Lock()
		lost := c.lostErr
		c.mu.Unlock()
		if lost != nil {
			return nil, remote.Lost("connection to %s lost (%v); cannot reach %s through it", c.addr, lost, addr)
		}
		return nil, fmt.Errorf("%s: dial %s: %w", c, addr, err)
	}
	return conn, nil
}

// String is user@host:port.
func (c *Client) String() string { return c.name }

// Close ends the connection (and the jump host's).
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		err = c.conn.Close()
		if c.jump != nil {
			c.jump.Close()
		}
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
