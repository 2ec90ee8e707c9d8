package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryInstall is how the registry server is installed.
const RegistryInstall = "scripts/tools.sh (go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2)"

// Registry is a running distribution/distribution registry server.
type Registry struct {
	// Host is host:port, e.g. 127.0.0.1:5001; images are Host/repo.
	Host string
	Dir  string
	log  *syncBuffer
}

// RegistryOptions configures a registry.
type RegistryOptions struct {
	// Users enables htpasswd basic auth with these user → password pairs.
	Users map[string]string
	// TLS serves HTTPS with this certificate instead of plain HTTP.
	TLS *Cert
}

// StartRegistry starts a registry with filesystem storage in a temp dir,
// stopped when the test ends.
func StartRegistry(t testing.TB, o RegistryOptions) *Registry {
	t.Helper()
	bin := Tool(t, "registry", "GANTRY_REGISTRY_BIN", RegistryInstall)
	dir := t.TempDir()
	port := FreePort(t)
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, log: &syncBuffer{}}
	auth := ""
	if len(o.Users) > 0 {
		var lines []string
		for u, p := range o.Users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, u+":"+string(h))
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: gantry-test\n    path: %s\n", path)
	}
	tlsCfg, scheme := "", "http"
	if o.TLS != nil {
		tlsCfg, scheme = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", o.TLS.CertFile, o.TLS.KeyFile), "https"
	}
	cfg := RegistryConfig(filepath.Join(dir, "data"), r.Host, tlsCfg+auth)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", cfgPath)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("testenv: start registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	// Wait for readiness: /v2/ answers 200, or 401 with auth on.
	client := &http.Client{Timeout: 5 * time.Second}
	if o.TLS != nil {
		client.Transport = Resolver(nil, o.TLS)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("testenv: registry exited: %v\n%s", err, r.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: registry did not answer on %s within 30s\n%s", r.Host, r.log.String())
		}
	}
}

// RegistryConfig is a distribution registry configuration: filesystem
// storage in dataDir, listening on addr, quiet logs; extra is more YAML under
// http (tls) or at the top level (auth), already indented.
func RegistryConfig(dataDir, addr, extra string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: gantry-test-secret
%s`, dataDir, addr, extra)
}

// Log returns what the registry printed so far.
func (r *Registry) Log() string { return r.log.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
