package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// server is a distribution registry behind a counting proxy. Clients use
// Addr (the proxy); the bench checks results at Direct, which is not counted.
type server struct {
	Addr, Direct string
	proxy        *proxy
	cmd          *exec.Cmd
	exited       chan error
	logPath      string
}

// startServer starts `registry serve` with filesystem storage in dir on a
// free loopback port, and a counting proxy in front of it.
func startServer(ctx context.Context, bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{Direct: fmt.Sprintf("127.0.0.1:%d", port), logPath: filepath.Join(dir, "registry.log")}
	cfg := testenv.RegistryConfig(filepath.Join(dir, "data"), s.Direct, "")
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	s.cmd = exec.CommandContext(ctx, bin, "serve", cfgPath)
	s.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.cmd.Wait() }()
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, err
	}
	if s.proxy, err = startProxy(s.Direct); err != nil {
		s.Stop()
		return nil, err
	}
	s.Addr = s.proxy.Addr()
	return s, nil
}

func (s *server) waitReady() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get("http://" + s.Direct + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("registry on %s exited: %v\n%s", s.Direct, err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("registry on %s did not answer within 30s\n%s", s.Direct, s.logTail())
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop closes the proxy and stops the registry, waiting for it to exit.
func (s *server) Stop() {
	if s.proxy != nil {
		s.proxy.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// counts is what crossed a proxy. Sent and Received are raw TCP bytes
// (client→registry and registry→client, headers, TLS probes and all); the
// rest come from parsing the HTTP/1.1 requests in the client's stream.
type counts struct {
	Sent, Received int64
	// BlobBody is the body bytes of requests to /blobs/uploads/ (blob data);
	// ManifestBody the body bytes of manifest PUTs.
	BlobBody, ManifestBody int64
	// Requests counts parsed requests by "METHOD kind", kind being ping,
	// manifest, blob, upload or other, and connections that were not HTTP.
	Requests map[string]int
}

// Sub returns c minus an earlier snapshot.
func (c counts) Sub(o counts) counts {
	d := counts{Sent: c.Sent - o.Sent, Received: c.Received - o.Received, BlobBody: c.BlobBody - o.BlobBody, ManifestBody: c.ManifestBody - o.ManifestBody, Requests: map[string]int{}}
	for k, v := range c.Requests {
		if n := v - o.Requests[k]; n != 0 {
			d.Requests[k] = n
		}
	}
	return d
}

// Add returns the sum of c and o.
func (c counts) Add(o counts) counts {
	s := counts{Sent: c.Sent + o.Sent, Received: c.Received + o.Received, BlobBody: c.BlobBody + o.BlobBody, ManifestBody: c.ManifestBody + o.ManifestBody, Requests: map[string]int{}}
	for k, v := range c.Requests {
		s.Requests[k] += v
	}
	for k, v := range o.Requests {
		s.Requests[k] += v
	}
	return s
}

// nonHTTP counts connections whose first bytes were not an HTTP request:
// the TLS probes of clients that try https before plain http.
const nonHTTP = "non-HTTP connection"

// NRequests is the number of HTTP requests seen.
func (c counts) NRequests() int {
	n := 0
	for k, v := range c.Requests {
		if k != nonHTTP {
			n += v
		}
	}
	return n
}

// proxy forwards TCP connections to a registry byte for byte, counting bytes
// each way, and parses a copy of the client's stream as HTTP/1.1 to count
// request bodies by kind. Parsing never changes what is forwarded.
type proxy struct {
	ln       net.Listener
	target   string
	sent     atomic.Int64
	received atomic.Int64
	blob     atomic.Int64
	manifest atomic.Int64
	mu       sync.Mutex
	requests map[string]int
	wg       sync.WaitGroup
	active   atomic.Int64
	conns    sync.Map // net.Conn → struct{}, closed on Close
	link     *pacer   // nil: unlimited
}

// linkBytesPerSec caps each registry's upload link (the -link-mbit flag), so
// that a round models registries reached over a network, not over loopback
// where two cores hashing 900 MB are the bottleneck.
var linkBytesPerSec int64

// pacer spreads the bytes written through one link over time at rate bytes
// per second, shared by every connection to that registry.
type pacer struct {
	mu    sync.Mutex
	rate  int64
	start time.Time
	sent  int64
}

func (p *pacer) wait(n int) {
	p.mu.Lock()
	now := time.Now()
	if p.start.IsZero() || now.Sub(p.start) > time.Second && p.sent < p.rate*int64(now.Sub(p.start))/int64(time.Second)-p.rate {
		// Idle link: start a new accounting window rather than allowing a burst.
		p.start, p.sent = now, 0
	}
	p.sent += int64(n)
	due := p.start.Add(time.Duration(p.sent * int64(time.Second) / p.rate))
	p.mu.Unlock()
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

// pacedWriter writes through a pacer in chunks of at most 32 KiB.
type pacedWriter struct {
	w io.Writer
	p *pacer
}

func (pw pacedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), 32<<10)
		pw.p.wait(n)
		m, err := pw.w.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

func startProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, requests: map[string]int{}}
	if linkBytesPerSec > 0 {
		p.link = &pacer{rate: linkBytesPerSec}
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

// Counts returns a snapshot of the counters.
func (p *proxy) Counts() counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := counts{Sent: p.sent.Load(), Received: p.received.Load(), BlobBody: p.blob.Load(), ManifestBody: p.manifest.Load(), Requests: map[string]int{}}
	for k, v := range p.requests {
		c.Requests[k] = v
	}
	return c
}

// WaitIdle waits up to timeout for every connection to end, so that a
// snapshot taken after a client exited includes all of its requests.
func (p *proxy) WaitIdle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for p.active.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// Close stops accepting, closes open connections and waits for them.
func (p *proxy) Close() {
	p.ln.Close()
	p.conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	p.wg.Wait()
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		p.active.Add(1)
		go func() { defer p.wg.Done(); defer p.active.Add(-1); p.handle(c) }()
	}
}

func (p *proxy) handle(client net.Conn) {
	defer client.Close()
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer upstream.Close()
	p.conns.Store(client, struct{}{})
	p.conns.Store(upstream, struct{}{})
	defer p.conns.Delete(client)
	defer p.conns.Delete(upstream)

	pr, pw := io.Pipe()
	parsed := make(chan struct{})
	go func() { defer close(parsed); p.parse(pr) }()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&counter{w: client, n: &p.received}, upstream)
		closeWrite(client)
	}()
	var up io.Writer = &counter{w: upstream, n: &p.sent}
	if p.link != nil {
		up = pacedWriter{w: up, p: p.link}
	}
	_, _ = io.Copy(io.MultiWriter(up, pw), client)
	pw.Close()
	closeWrite(upstream)
	<-done
	<-parsed
}

// parse reads requests from a copy of the client's stream until it ends. A
// stream that is not HTTP (the TLS probe some clients send first) is drained.
func (p *proxy) parse(r *io.PipeReader) {
	defer func() { _, _ = io.Copy(io.Discard, r) }()
	br := bufio.NewReader(r)
	for first := true; ; first = false {
		req, err := http.ReadRequest(br)
		if err != nil {
			if first && !errors.Is(err, io.EOF) {
				p.mu.Lock()
				p.requests[nonHTTP]++
				p.mu.Unlock()
			}
			return
		}
		n, err := io.Copy(io.Discard, req.Body)
		kind := requestKind(req.URL.Path)
		switch {
		case kind == "upload":
			p.blob.Add(n)
		case kind == "manifest" && req.Method == http.MethodPut:
			p.manifest.Add(n)
		}
		p.mu.Lock()
		p.requests[req.Method+" "+kind]++
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func requestKind(path string) string {
	switch {
	case path == "/v2/" || path == "/v2":
		return "ping"
	case strings.Contains(path, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	}
	return "other"
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// counter is a writer that counts the bytes it writes.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return n, err
}
