package testenv

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"testing"
	"time"
)

// StartTLS serves h over TLS with cert on 127.0.0.1 until t ends and returns its host:port.
func StartTLS(t testing.TB, cert *Cert, h http.Handler) string {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// ConnectProxy is an HTTP CONNECT proxy on 127.0.0.1 for a process the test cannot hand a
// transport, such as gantry under act: with HTTPS_PROXY set to its URL (and SSL_CERT_FILE to a
// Cert's file), connections to a host:port matching a routes pattern (path.Match, e.g.
// "*.a.run.app:443") go to the route's loopback address; any other is refused, so nothing leaves
// the machine.
func ConnectProxy(t testing.TB, routes map[string]string) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		to := ""
		for pattern, addr := range routes {
			if ok, _ := path.Match(pattern, r.Host); ok {
				to = addr
			}
		}
		if to == "" {
			http.Error(w, "no route to "+r.Host+" in this test", http.StatusForbidden)
			return
		}
		up, err := net.DialTimeout("tcp", to, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			up.Close()
			http.Error(w, "cannot hijack", http.StatusInternalServerError)
			return
		}
		down, buf, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(up, buf); up.Close() }()
		go func() { defer wg.Done(); _, _ = io.Copy(down, up); down.Close() }()
	}))
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return srv.URL
}
