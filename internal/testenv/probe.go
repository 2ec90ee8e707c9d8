package testenv

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ProbeImage pushes internal/testenv/httpprobe as a FROM-scratch image to
// registryHost/gantry-test/httpprobe and returns its reference, for HTTPFrom.
func ProbeImage(t testing.TB, registryHost string) string {
	t.Helper()
	bin := helperBinary(t, "httpprobe")
	ref, _ := buildImage(t, registryHost, "gantry-test/httpprobe", "test", map[string][]byte{"/bin/httpprobe": bin},
		imageConfig{Entrypoint: []string{"/bin/httpprobe"}})
	return ref
}

// StockCaddyImage pushes a stand-in for a stock Caddy image (or a gantry-edge
// older than its admin relay) to registryHost/gantry-test/stockcaddy: its
// /usr/bin/caddy runs ("caddy run --resume") but knows no
// gantry-admin-stdio command.
func StockCaddyImage(t testing.TB, registryHost string) string {
	t.Helper()
	bin := helperBinary(t, "stockcaddy")
	ref, _ := buildImage(t, registryHost, "gantry-test/stockcaddy", "test", map[string][]byte{"/usr/bin/caddy": bin},
		imageConfig{Entrypoint: []string{"/usr/bin/caddy", "run"}, Ports: []string{"80"}})
	return ref
}

// helperBinary builds internal/testenv/<name> for linux/amd64, once per test
// process.
func helperBinary(t testing.TB, name string) []byte {
	t.Helper()
	root := RepoRoot(t)
	bin, msg := cached("helper "+name, func() ([]byte, string) {
		dir, err := os.MkdirTemp("", "gantry-"+name+"-")
		if err != nil {
			return nil, err.Error()
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, name)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./internal/testenv/"+name)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, "build internal/testenv/" + name + ": " + err.Error() + "\n" + string(b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return nil, err.Error()
		}
		return b, ""
	})
	if msg != "" {
		t.Fatalf("testenv: %s", msg)
	}
	return bin
}

// Probe is one request HTTPFrom sends.
type Probe struct {
	Method string `json:"method"` // GET if empty
	URL    string `json:"url"`
	Host   string `json:"host"` // Host header, if not the URL's
	Body   string `json:"body"`
}

// HTTPFrom sends probes, in order, from one new container of image
// (ProbeImage) on network: a network's name, or container:<id> to share that
// container's network stack, as a process inside it would. It returns each
// probe's outcome: "HTTP <status> <body>" or "error <message>".
func HTTPFrom(t testing.TB, image, network string, probes ...Probe) []string {
	t.Helper()
	for i := range probes {
		if probes[i].Method == "" {
			probes[i].Method = "GET"
		}
	}
	arg, err := json.Marshal(probes)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--rm", "--network", network, "--label", ImageLabel + "=probe", image, string(arg)}
	cmd := exec.Command("docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr // the pull's progress, if any
	out, err := cmd.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != len(probes) {
		t.Fatalf("testenv: docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	for i, p := range probes {
		t.Logf("from %s: %s %s (Host %q): %s", network, p.Method, p.URL, p.Host, lines[i])
	}
	return lines
}

// hijack is what a compromised container would load into an edge: every
// request to :80 answered "hijacked".
const hijack = `{"apps":{"http":{"servers":{"x":{"listen":[":80"],"routes":[{"handle":[{"handler":"static_response","body":"hijacked"}]}]}}}}}`

// EdgeAdminUnreachable asserts, from a container of probeImage on network
// (see HTTPFrom), that the edge at host (a name or address) refuses every
// connection to its admin API port 2019, whatever Host header is forged,
// while its public route http://host/health answers 200 with want in the
// body: the name resolves and the edge is reachable, only its admin API is
// not.
func EdgeAdminUnreachable(t testing.TB, probeImage, network, host, want string) {
	t.Helper()
	admin := "http://" + host + ":2019"
	probes := []Probe{
		{URL: admin + "/config/"},
		{URL: admin + "/config/", Host: "127.0.0.1:2019"},
		{URL: admin + "/config/", Host: "localhost:2019"},
		{Method: "POST", URL: admin + "/load", Host: "localhost:2019", Body: hijack},
		{Method: "PUT", URL: admin + "/gantry/upstreams/web", Host: "127.0.0.1:2019", Body: `[{"dial":"evil.example:80"}]`},
		{URL: "http://" + host + "/health"},
	}
	res := HTTPFrom(t, probeImage, network, probes...)
	for i, p := range probes[:len(probes)-1] {
		if !strings.HasPrefix(res[i], "error ") || !strings.Contains(res[i], "connection refused") {
			t.Errorf("a container on %s reached the edge's admin API: %s %s (Host %q): %s", network, p.Method, p.URL, p.Host, res[i])
		}
	}
	if public := res[len(res)-1]; !strings.HasPrefix(public, "HTTP 200 ") || !strings.Contains(public, want) {
		t.Errorf("the edge's public route from %s: %s, want HTTP 200 with %s", network, public, want)
	}
}
