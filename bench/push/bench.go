package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// repo is the repository every tool pushes to, in every registry.
const repo = "bench/img"

// registriesPerRound is how many target registries each round fans out to.
const registriesPerRound = 3

// tool is one way of pushing the image to the target registries: cmds
// returns the commands of one push, run one after another and timed together.
type tool struct {
	Name string
	Cmds func(b *bench, targets []string) [][]string
}

// tools are the pushes compared, in the order each round runs them. The
// first four push from the OCI layout; the last two copy from the source
// registry, which holds the same image.
var tools = []tool{
	{"gantry build-push", func(b *bench, ts []string) [][]string {
		return [][]string{{b.bin["gantry"], "build-push", "--oci-layout", b.layout.Dir, "--registries", strings.Join(repos(ts), ","), "--sha", benchSHA}}
	}},
	{"crane push", func(b *bench, ts []string) [][]string {
		return each(ts, func(t string) []string { return []string{b.bin["crane"], "push", b.layout.Dir, b.ref(t)} })
	}},
	{"regctl image copy", func(b *bench, ts []string) [][]string {
		return each(ts, func(t string) []string {
			return []string{b.bin["regctl"], "--host", "reg=" + t + ",tls=disabled", "image", "copy", "ocidir://" + b.layout.Dir + ":" + b.layout.Tag, b.ref(t)}
		})
	}},
	{"skopeo copy", func(b *bench, ts []string) [][]string {
		return each(ts, func(t string) []string {
			return []string{b.bin["skopeo"], "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", "oci:" + b.layout.Dir + ":" + b.layout.Tag, "docker://" + b.ref(t)}
		})
	}},
	{"gantry promote", func(b *bench, ts []string) [][]string {
		return [][]string{{b.bin["gantry"], "promote", "--source", b.sourceRef(), "--registries", strings.Join(repos(ts), ","), "--sha", benchSHA}}
	}},
	{"crane copy", func(b *bench, ts []string) [][]string {
		return each(ts, func(t string) []string { return []string{b.bin["crane"], "copy", b.sourceRef(), b.ref(t)} })
	}},
}

func repos(hosts []string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h + "/" + repo
	}
	return out
}

func each(ts []string, f func(string) []string) [][]string {
	out := make([][]string, len(ts))
	for i, t := range ts {
		out[i] = f(t)
	}
	return out
}

// bench holds what every round shares: binaries, the image, the source
// registry and the tools' environment.
type bench struct {
	root, tmp string
	bin       map[string]string
	layout    *Layout
	source    *server
	env       []string
}

func newBench(ctx context.Context, root, tmp string) (*bench, error) {
	b := &bench{root: root, tmp: tmp, bin: map[string]string{}}
	for _, name := range []string{"registry", "crane", "regctl", "skopeo"} {
		p := filepath.Join(root, ".bin", name)
		if _, err := os.Stat(p); err != nil {
			if p, err = exec.LookPath(name); err != nil {
				return nil, fmt.Errorf("%s not found in .bin/ or PATH; run ./scripts/tools.sh bench", name)
			}
		}
		b.bin[name] = p
	}
	// The same flags as the release build.
	b.bin["gantry"] = filepath.Join(tmp, "gantry")
	logf("building gantry (CGO_ENABLED=0 -trimpath -ldflags '-s -w')")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", b.bin["gantry"], "./cmd/gantry")
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build gantry: %v\n%s", err, out)
	}

	// The tools get a private HOME and config so that no login or setting of
	// this machine changes what they do, and no GitHub Actions variables, so
	// gantry runs in local mode.
	home := filepath.Join(tmp, "home")
	toolTmp := filepath.Join(tmp, "tooltmp")
	for _, d := range []string{home, toolTmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "GITHUB_"), strings.HasPrefix(k, "RUNNER_"), strings.HasPrefix(k, "ACTIONS_"),
			k == "HOME", k == "DOCKER_CONFIG", k == "REGCTL_CONFIG", k == "TMPDIR", k == "REGISTRY_AUTH_FILE":
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"REGCTL_CONFIG="+filepath.Join(home, "regctl.json"), "TMPDIR="+toolTmp)
	return b, nil
}

// Close stops the source registry.
func (b *bench) Close() {
	if b.source != nil {
		b.source.Stop()
	}
}

// ref is the tagged reference of the image in the registry at host.
func (b *bench) ref(host string) string { return host + "/" + repo + ":" + b.layout.Tag }

// sourceRef is the image in the source registry, by digest.
func (b *bench) sourceRef() string {
	return b.source.Addr + "/" + repo + "@" + b.layout.Digest.String()
}

// startSource starts the registry the copy tools read from and fills it
// (untimed) with crane push.
func (b *bench) startSource(ctx context.Context) error {
	dir := filepath.Join(b.tmp, "source")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var err error
	if b.source, err = startServer(ctx, b.bin["registry"], dir); err != nil {
		return fmt.Errorf("source registry: %w", err)
	}
	if _, err := b.exec(ctx, []string{b.bin["crane"], "push", b.layout.Dir, b.ref(b.source.Direct)}); err != nil {
		return fmt.Errorf("fill source registry: %w", err)
	}
	return nil
}

// sample is one round of one tool.
type sample struct {
	Cold, Unchanged time.Duration
	// ColdCounts and UnchangedCounts are per target registry.
	ColdCounts, UnchangedCounts []counts
	// SourceRead is what the cold push read from the source registry.
	SourceRead counts
	// DigestRound is `crane digest` of the tag at the 3 registries, one
	// after another, after the unchanged re-push.
	DigestRound time.Duration
	Err         error
}

// round runs one tool once on fresh registries: cold push, check, unchanged
// re-push, then the crane digest reference round.
func (b *bench) round(ctx context.Context, t tool) (s sample) {
	dir, err := os.MkdirTemp(b.tmp, "round-")
	if err != nil {
		return sample{Err: err}
	}
	defer os.RemoveAll(dir)
	var servers []*server
	defer func() {
		for _, srv := range servers {
			srv.Stop()
		}
	}()
	var hosts []string
	for i := range registriesPerRound {
		d := filepath.Join(dir, fmt.Sprint("r", i+1))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return sample{Err: err}
		}
		srv, err := startServer(ctx, b.bin["registry"], d)
		if err != nil {
			return sample{Err: err}
		}
		servers = append(servers, srv)
		hosts = append(hosts, srv.Addr)
	}
	cmds := t.Cmds(b, hosts)

	srcBefore := b.source.proxy.Counts()
	if s.Cold, s.ColdCounts, s.Err = b.timed(ctx, cmds, servers); s.Err != nil {
		s.Err = fmt.Errorf("cold push: %w", s.Err)
		return s
	}
	b.source.proxy.WaitIdle(2 * time.Second)
	s.SourceRead = b.source.proxy.Counts().Sub(srcBefore)
	if s.Err = b.check(servers); s.Err != nil {
		return s
	}
	if s.Unchanged, s.UnchangedCounts, s.Err = b.timed(ctx, cmds, servers); s.Err != nil {
		s.Err = fmt.Errorf("unchanged re-push: %w", s.Err)
		return s
	}
	if s.Err = b.check(servers); s.Err != nil {
		return s
	}
	digest := each(hosts, func(h string) []string { return []string{b.bin["crane"], "digest", b.ref(h)} })
	start := time.Now()
	for _, c := range digest {
		out, err := b.exec(ctx, c)
		if err != nil {
			s.Err = fmt.Errorf("crane digest round: %w", err)
			return s
		}
		if got := strings.TrimSpace(out); got != b.layout.Digest.String() {
			s.Err = fmt.Errorf("crane digest %s answered %s, want %s", c[len(c)-1], got, b.layout.Digest)
			return s
		}
	}
	s.DigestRound = time.Since(start)
	return s
}

// timed runs cmds one after another and returns the wall time and what
// each server's proxy counted meanwhile.
func (b *bench) timed(ctx context.Context, cmds [][]string, servers []*server) (time.Duration, []counts, error) {
	before := make([]counts, len(servers))
	for i, srv := range servers {
		before[i] = srv.proxy.Counts()
	}
	start := time.Now()
	for _, c := range cmds {
		if _, err := b.exec(ctx, c); err != nil {
			return 0, nil, err
		}
	}
	took := time.Since(start)
	delta := make([]counts, len(servers))
	for i, srv := range servers {
		srv.proxy.WaitIdle(2 * time.Second)
		delta[i] = srv.proxy.Counts().Sub(before[i])
	}
	return took, delta, nil
}

// exec runs one command in the tools' environment and returns its stdout;
// its error carries the end of what it printed.
func (b *bench) exec(ctx context.Context, argv []string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = b.tmp, b.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		out := stderr.String() + stdout.String()
		if len(out) > 3000 {
			out = "…" + out[len(out)-3000:]
		}
		return "", fmt.Errorf("%s %s: %v\n%s", filepath.Base(argv[0]), strings.Join(argv[1:], " "), err, out)
	}
	return stdout.String(), nil
}

// check asks each registry directly (not through its proxy) for the tag and
// fails unless it answers the layout's manifest digest, unchanged.
func (b *bench) check(servers []*server) error {
	client := &http.Client{Timeout: 10 * time.Second}
	for _, srv := range servers {
		req, err := http.NewRequest(http.MethodHead, "http://"+srv.Direct+"/v2/"+repo+"/manifests/"+b.layout.Tag, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		got := resp.Header.Get("Docker-Content-Digest")
		if resp.StatusCode != http.StatusOK || got != b.layout.Digest.String() {
			return fmt.Errorf("registry %s: %s:%s answered HTTP %d digest %q, want %s (the tool changed or did not push the manifest)",
				srv.Direct, repo, b.layout.Tag, resp.StatusCode, got, b.layout.Digest)
		}
	}
	return nil
}

// versions reports the version of every program compared.
func (b *bench) versions(ctx context.Context) map[string]string {
	v := map[string]string{}
	first := func(argv ...string) string {
		out, err := b.exec(ctx, argv)
		if err != nil {
			return "unknown"
		}
		for _, line := range strings.Split(out, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				return line
			}
		}
		return "unknown"
	}
	v["gantry"] = benchenv.GantryBuild(ctx, b.root)
	v["crane"] = first(b.bin["crane"], "version")
	v["regctl"] = strings.TrimSpace(strings.TrimPrefix(first(b.bin["regctl"], "version"), "VCSTag:"))
	v["skopeo"] = strings.TrimPrefix(first(b.bin["skopeo"], "--version"), "skopeo version ")
	v["registry"] = strings.TrimSpace(strings.TrimPrefix(first(b.bin["registry"], "--version"), b.bin["registry"]))
	return v
}
