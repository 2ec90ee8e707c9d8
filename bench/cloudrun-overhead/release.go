//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
)

const (
	// releaseRepository is the repository the installer downloads from
	// (GANTRY_ACTION_REPOSITORY), as for uses: gantry-dev/gantry/...@v1.
	releaseRepository = "gantry-dev/gantry"
	// linuxAsset is the archive install.sh asks for on a Linux X64 runner.
	linuxAsset  = "gantry_linux_amd64.tar.gz"
	modulePath  = "github.com/gantry-dev/gantry"
	checksumsTx = "checksums.txt"
)

// release is what the release workflow would publish for linux/amd64.
type release struct {
	Version    string // stamped into the binary
	Commit     string // the commit built (HEAD)
	SrcDir     string // its files, where the installer is run from
	Archive    []byte // gantry_linux_amd64.tar.gz
	Checksums  []byte // checksums.txt
	BinarySize int64  // the gantry executable, unpacked
	Files      []string
}

// buildRelease builds ./cmd/gantry as .goreleaser.yaml does (linux_amd64_v1,
// CGO_ENABLED=0, -trimpath, -ldflags "-s -w -X .../version.Version=<tag>")
// and packs it as goreleaser's tar.gz archiver does: the binary and README*
// (LICENSE* too, when the repository has one) at the top level, gzip at
// best compression.
//
// Like a release, it builds a commit: HEAD, exported with git archive, so
// that uncommitted changes in the work tree are not measured.
func buildRelease(ctx context.Context, root, dir, version string) (*release, error) {
	commit, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return nil, fmt.Errorf("git rev-parse HEAD: %w", err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	tarball := filepath.Join(dir, "src.tar")
	for _, argv := range [][]string{{"git", "-C", root, "archive", "--format=tar", "--output=" + tarball, "HEAD"}, {"tar", "-xf", tarball, "-C", src}} {
		if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	// A release commit names its release in VERSION; install.sh installs that
	// release whatever the action's ref (v1, v1.2, v1.2.3).
	if err := os.WriteFile(filepath.Join(src, "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "gantry")
	ldflags := "-s -w -X " + modulePath + "/internal/version.Version=" + version
	logf("building the release binary of HEAD (%s): GOOS=linux GOARCH=amd64 GOAMD64=v1 CGO_ENABLED=0 -trimpath -ldflags %q", strings.TrimSpace(string(commit)), ldflags)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/gantry")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build gantry: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return nil, err
	}
	rel := &release{Version: version, Commit: strings.TrimSpace(string(commit)), SrcDir: src, BinarySize: st.Size(), Files: []string{"gantry"}}
	extra, err := filepath.Glob(filepath.Join(src, "LICENSE*"))
	if err != nil {
		return nil, err
	}
	readmes, err := filepath.Glob(filepath.Join(src, "README*"))
	if err != nil {
		return nil, err
	}
	extra = append(extra, readmes...)

	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	add := func(path, name string, mode int64) error {
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Now().Truncate(time.Second)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(body)
		return err
	}
	if err := add(bin, "gantry", 0o755); err != nil {
		return nil, err
	}
	for _, p := range extra {
		if err := add(p, filepath.Base(p), 0o644); err != nil {
			return nil, err
		}
		rel.Files = append(rel.Files, filepath.Base(p))
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	rel.Archive = buf.Bytes()
	sum := sha256.Sum256(rel.Archive)
	rel.Checksums = []byte(hex.EncodeToString(sum[:]) + "  " + linuxAsset + "\n")
	return rel, nil
}

// releaseServer serves a release as GitHub does, at
// /<owner>/<repo>/releases/download/<tag>/<asset>, over a link of a given
// speed, and counts every byte it sends (headers included).
type releaseServer struct {
	URL string
	srv *http.Server
	lis net.Listener

	// bytesPerSec caps the link (0: loopback speed); all connections
	// share it, as they share a runner's network.
	bytesPerSec atomic.Int64
	sent        atomic.Int64

	mu       sync.Mutex
	files    map[string][]byte // path → body
	requests []string
	next     time.Time // when the link is free again
}

func startReleaseServer(rel *release, tag string) (*releaseServer, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &releaseServer{lis: lis, files: map[string][]byte{}}
	prefix := "/" + releaseRepository + "/releases/download/" + tag + "/"
	s.files[prefix+linuxAsset] = rel.Archive
	s.files[prefix+checksumsTx] = rel.Checksums
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + lis.Addr().String()
	go func() { _ = s.srv.Serve(countingListener{lis, s}) }()
	return s, nil
}

func (s *releaseServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	body, ok := s.files[r.URL.Path]
	s.mu.Unlock()
	if r.Method != http.MethodGet || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	_, _ = w.Write(body)
}

// reset sets the link speed for the next round and returns the counters to
// zero.
func (s *releaseServer) reset(mbit int) {
	s.bytesPerSec.Store(int64(mbit) * 1_000_000 / 8)
	s.sent.Store(0)
	s.mu.Lock()
	s.requests = nil
	s.next = time.Time{}
	s.mu.Unlock()
}

// take returns what the server sent and was asked since the last reset.
func (s *releaseServer) take() (int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent.Load(), append([]string(nil), s.requests...)
}

// pace blocks until n more bytes have crossed the capped link.
func (s *releaseServer) pace(n int) {
	bps := s.bytesPerSec.Load()
	if bps <= 0 {
		return
	}
	s.mu.Lock()
	// A link idle for a while starts afresh; a sender only a little behind
	// (a sleep that overshot) catches up, so that oversleeping does not
	// slow the link down.
	if now := time.Now(); now.Sub(s.next) > paceSlack {
		s.next = now
	}
	s.next = s.next.Add(time.Duration(int64(n) * int64(time.Second) / bps))
	until := s.next
	s.mu.Unlock()
	time.Sleep(time.Until(until))
}

func (s *releaseServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

type countingListener struct {
	net.Listener
	s *releaseServer
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, s: l.s}, nil
}

// countingConn paces and counts what the server writes, in chunks small
// enough that a capped link sends at an even rate.
type countingConn struct {
	net.Conn
	s *releaseServer
}

// paceChunk is the most bytes written at once on a capped link; paceSlack
// how far behind its schedule a sender may be and still catch up.
const (
	paceChunk = 16 << 10
	paceSlack = 20 * time.Millisecond
)

func (c *countingConn) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), paceChunk)
		c.s.pace(n)
		m, err := c.Conn.Write(b[:n])
		written += m
		c.s.sent.Add(int64(m))
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// readOutputs reads the name=value lines a step wrote to GITHUB_OUTPUT.
func readOutputs(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return action.ParseOutputs(string(b))
}
