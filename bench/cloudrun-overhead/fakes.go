//go:build linux

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
)

// The Cloud Run target of every deploy.
const (
	wifProvider = "projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry"
	runSA       = "deployer@my-project.iam.gserviceaccount.com"
	runProject  = runfake.DefaultProject
	runRegion   = runfake.DefaultRegion
	runService  = "api"
	runImage    = "europe-docker.pkg.dev/my-project/images/api@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	deploySHA   = "be7c0de5a1f2e3d4c5b6a7980123456789abcdef"
)

// benchTB is the testing.TB runfake.Start asks for, outside a test: it
// keeps the cleanups to run when the round ends and turns Fatalf into a
// panic that startRunFake recovers into an error. The fakes call only the
// methods defined here; the embedded nil TB supplies the unexported method
// and would panic on any other.
type benchTB struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

type tbFatal struct{ msg string }

func (*benchTB) Helper()        {}
func (*benchTB) Name() string   { return "bench/cloudrun-overhead" }
func (t *benchTB) Failed() bool { t.mu.Lock(); defer t.mu.Unlock(); return len(t.errs) > 0 }

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *benchTB) Logf(format string, args ...any) { logf(format, args...) }

func (t *benchTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
}

func (t *benchTB) Fatalf(format string, args ...any) {
	panic(tbFatal{fmt.Sprintf(format, args...)})
}

func (t *benchTB) Fatal(args ...any) { panic(tbFatal{fmt.Sprint(args...)}) }

// Close runs the cleanups, last registered first.
func (t *benchTB) Close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func startRunFake(tb *benchTB, opts runfake.Options) (s *runfake.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(tbFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
	}()
	return runfake.Start(tb, opts), nil
}

// recorder notes when each kind of request first reached a fake.
type recorder struct {
	mu    sync.Mutex
	first map[string]time.Time
	order []string
}

func newRecorder() *recorder { return &recorder{first: map[string]time.Time{}} }

func (r *recorder) note(what string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.first[what]; !ok {
		r.first[what] = now
		r.order = append(r.order, what)
	}
}

// at returns when what first happened (zero if never).
func (r *recorder) at(what string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first[what]
}

// seen lists the kinds of request in the order they first came.
func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// Kinds of request the recorder notes.
const (
	evOIDC = "GitHub OIDC token"
	evSTS  = "Google STS token exchange"
	evIAM  = "IAM generateAccessToken"
	evRun  = "Cloud Run API"
	// evServiceUsage is gcloud asking whether the Cloud Run API is enabled.
	evServiceUsage = "Service Usage API"
	// runRequestPrefix starts the note of each Cloud Run request gcloud sent.
	runRequestPrefix = "Cloud Run: "
)

// cloud is GitHub's OIDC endpoint, Google STS and IAM Credentials, and the
// Cloud Run Admin API, as far as they run here: the project's fakes on
// their real wire protocols, on 127.0.0.1, fresh for every round.
type cloud struct {
	tb     *benchTB
	rec    *recorder
	gh     *githubfake.Server
	google *googlefake.Server
	run    *runfake.Server
	// RunAddr is the address gantry reaches Cloud Run at: a TCP proxy in
	// front of the fake that notes the first gRPC call.
	RunAddr string
	// ProxyURL is an HTTP proxy for gcloud: plain http requests to the
	// fakes are answered by them, CONNECTs to *.googleapis.com by
	// googleAPIs over TLS with a certificate in CAPEM.
	ProxyURL string
	CAPEM    []byte
	tunnels  *connQueue

	ghHost, googleHost string
	servers            []*http.Server
	listeners          []net.Listener
	cancel             context.CancelFunc
	wg                 sync.WaitGroup
}

func startCloud() (c *cloud, err error) {
	c = &cloud{tb: &benchTB{}, rec: newRecorder()}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	c.gh = githubfake.New(githubfake.Options{})
	c.google = googlefake.New(googlefake.Options{Provider: wifProvider, ServiceAccounts: []string{runSA}})
	ghH := c.noting(c.gh, func(*http.Request) string { return evOIDC })
	googleH := c.noting(c.google, func(r *http.Request) string {
		if strings.HasSuffix(r.URL.Path, ":generateAccessToken") {
			return evIAM
		}
		return evSTS
	})
	if c.gh.URL, err = c.serve(ghH); err != nil {
		return nil, err
	}
	if c.google.URL, err = c.serve(googleH); err != nil {
		return nil, err
	}
	c.ghHost = strings.TrimPrefix(c.gh.URL, "http://")
	c.googleHost = strings.TrimPrefix(c.google.URL, "http://")

	// As the Cloud Run tests: revisions ready in 1 s, on a clock that
	// follows the wall clock; only tokens the fake IAM issued are accepted.
	c.run, err = startRunFake(c.tb, runfake.Options{ReadyAfter: time.Second, SettleAfter: 500 * time.Millisecond, Tick: 100 * time.Millisecond,
		Tokens: func(tok string) bool { _, ok := c.google.AccessTokens()[tok]; return ok }})
	if err != nil {
		return nil, fmt.Errorf("start runfake: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.run.RunRealtime(ctx, 50*time.Millisecond) }()

	if c.RunAddr, err = c.callProxy(c.run.Addr); err != nil {
		return nil, err
	}
	proxy, err := c.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.forward(w, r, ghH, googleH) }))
	if err != nil {
		return nil, err
	}
	c.ProxyURL = proxy
	cert, caPEM, err := newGoogleCert()
	if err != nil {
		return nil, err
	}
	c.CAPEM = caPEM
	c.tunnels = newConnQueue()
	c.listeners = append(c.listeners, c.tunnels)
	apis := &http.Server{Handler: http.HandlerFunc(c.googleAPIs), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	c.servers = append(c.servers, apis)
	go func() { _ = apis.ServeTLS(c.tunnels, "", "") }()
	return c, nil
}

// noting wraps a fake's handler so the recorder notes its requests.
func (c *cloud) noting(h http.Handler, kind func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.rec.note(kind(r))
		h.ServeHTTP(w, r)
	})
}

// serve serves h on 127.0.0.1 until Close and returns its base URL.
func (c *cloud) serve(h http.Handler) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	c.servers = append(c.servers, srv)
	go func() { _ = srv.Serve(lis) }()
	return "http://" + lis.Addr().String(), nil
}

// forward is gcloud's HTTP proxy: plain http requests for the fakes'
// addresses go to them; a CONNECT (https to a Google API) is answered by
// googleAPIs over TLS with the round's certificate; anything else is
// refused, so nothing leaves the machine.
func (c *cloud) forward(w http.ResponseWriter, r *http.Request, gh, google http.Handler) {
	if r.Method == http.MethodConnect {
		host, _, _ := net.SplitHostPort(r.Host)
		hj, ok := w.(http.Hijacker)
		if !ok || !strings.HasSuffix(host, ".googleapis.com") {
			c.rec.note("CONNECT " + r.Host + " (refused)")
			http.Error(w, "bench/cloudrun-overhead: no network here", http.StatusForbidden)
			return
		}
		conn, buf, err := hj.Hijack()
		if err != nil {
			return
		}
		if buf.Reader.Buffered() > 0 {
			conn.Close() // a client that speaks before the tunnel is up
			return
		}
		if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			conn.Close()
			return
		}
		c.tunnels.push(conn)
		return
	}
	switch r.URL.Host {
	case c.ghHost:
		gh.ServeHTTP(w, r)
	case c.googleHost:
		google.ServeHTTP(w, r)
	default:
		c.rec.note(r.Method + " " + r.URL.Host + " (refused)")
		http.Error(w, "bench/cloudrun-overhead: no network here", http.StatusForbidden)
	}
}

// googleAPIs answers what reaches *.googleapis.com through gcloud's proxy:
// Service Usage says the Cloud Run API is enabled (gcloud run deploy asks
// first); a request to a Cloud Run host is the first Cloud Run call, noted
// and answered 404 as for a service that does not exist yet (gcloud is
// stopped there: runfake speaks the v2 gRPC API, gcloud the v1 REST API).
func (c *cloud) googleAPIs(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	switch {
	case host == "serviceusage.googleapis.com":
		c.rec.note(evServiceUsage)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name":"projects/%s/services/run.googleapis.com","parent":"projects/%s","state":"ENABLED"}`, runfake.DefaultProjectNumber, runfake.DefaultProjectNumber)
	case host == "run.googleapis.com" || strings.HasSuffix(host, "-run.googleapis.com"):
		c.rec.note(evRun)
		c.rec.note(runRequestPrefix + r.Method + " " + host + r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":404,"message":"Resource '%s' of kind 'SERVICE' in region '%s' in project '%s' does not exist.","status":"NOT_FOUND"}}`, runService, runRegion, runProject)
	default:
		c.rec.note(r.Method + " " + host + r.URL.Path + " (refused)")
		http.Error(w, "bench/cloudrun-overhead: no network here", http.StatusForbidden)
	}
}

// connQueue is a net.Listener of the connections pushed into it: the
// tunnels gcloud opened through the proxy.
type connQueue struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.closed:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// newGoogleCert makes a self-signed certificate for *.googleapis.com and
// returns it with its PEM, for gcloud's custom_ca_certs_file.
func newGoogleCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "bench/cloudrun-overhead"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"*.googleapis.com", "googleapis.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// callProxy forwards TCP connections to the gRPC server at to and notes
// when the first HTTP/2 HEADERS frame (the start of a call) comes from a
// client: the moment the first Cloud Run call reaches the API.
func (c *cloud) callProxy(to string) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	c.listeners = append(c.listeners, lis)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			c.wg.Add(1)
			go func() { defer c.wg.Done(); c.pipe(conn, to) }()
		}
	}()
	return lis.Addr().String(), nil
}

func (c *cloud) pipe(client net.Conn, to string) {
	defer client.Close()
	up, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(client, up)
		client.Close()
		close(done)
	}()
	var scan h2Scan
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if !scan.found && scan.feed(buf[:n]) {
				c.rec.note(evRun)
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	up.Close()
	<-done
}

// h2Scan finds the first HEADERS frame in a client's HTTP/2 stream: the
// 24-byte connection preface, then frames of a 9-byte header (24-bit
// length, type, flags, stream) and a payload.
type h2Scan struct {
	preface int
	hdr     [9]byte
	nhdr    int
	skip    int
	found   bool
}

const h2Preface = len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

func (s *h2Scan) feed(b []byte) bool {
	for len(b) > 0 && !s.found {
		switch {
		case s.preface < h2Preface:
			n := min(h2Preface-s.preface, len(b))
			s.preface += n
			b = b[n:]
		case s.skip > 0:
			n := min(s.skip, len(b))
			s.skip -= n
			b = b[n:]
		default:
			n := copy(s.hdr[s.nhdr:], b)
			s.nhdr += n
			b = b[n:]
			if s.nhdr == len(s.hdr) {
				s.nhdr = 0
				s.skip = int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
				s.found = s.hdr[3] == 0x1 // HEADERS
			}
		}
	}
	return s.found
}

// Close stops every fake and proxy of the round.
func (c *cloud) Close() {
	if c.cancel != nil {
		c.cancel()
	}
	for _, l := range c.listeners {
		l.Close()
	}
	for _, s := range c.servers {
		s.Close()
	}
	c.tb.Close()
	c.wg.Wait()
}
