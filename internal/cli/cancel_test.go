package cli

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestSIGTERMCancelsPush checks that a cancelled workflow (SIGTERM) stops a
// push that hangs on the registry, and the step fails saying so.
func TestSIGTERMCancelsPush(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	hung, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch || r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/") {
			once.Do(func() { close(hung) })
			// Hang until the client gives up or the test ends (the server
			// notices a closed connection only once the body is read).
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer close(release)
	host := strings.TrimPrefix(srv.URL, "http://")
	workspace(t, map[string]string{"app": strings.Repeat("x", 1<<20)})
	go func() {
		<-hung
		_ = syscall.Kill(syscall.Getpid(), syscall.SIGTERM)
	}()
	r := runCLI(t, nil, nil, "build-push", "--registries", host+"/api", "--sha", testSHA, "--files", "app:/app")
	if r.code != 1 || !strings.Contains(r.log, "cancelled") {
		t.Fatalf("exit %d, want 1 with a cancellation message\n%s", r.code, r.log)
	}
}
