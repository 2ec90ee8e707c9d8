package k6run_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gantry-dev/gantry/internal/loadtest/k6run"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// releaseArchive returns a k6 release archive laid out as k6's own (a
// folder holding k6, LICENSE.md and README.md) around the real k6 binary at
// k6Path, built once. It is gzipped without compression: deflating ~70 MiB
// takes long under the race detector, and stored blocks are valid gzip.
func releaseArchive(k6Path string) ([]byte, error) {
	archiveOnce.Do(func() { archiveBytes, archiveErr = buildArchive(k6Path) })
	return archiveBytes, archiveErr
}

var (
	archiveOnce  sync.Once
	archiveBytes []byte
	archiveErr   error
)

func buildArchive(k6Path string) ([]byte, error) {
	k6, err := os.ReadFile(k6Path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	tw := tar.NewWriter(zw)
	dir := fmt.Sprintf("k6-v%s-linux-%s/", k6run.DefaultVersion, runtime.GOARCH)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{dir + "LICENSE.md", 0o644, []byte("license\n")},
		{dir + "k6", 0o755, k6},
		{dir + "README.md", 0o644, []byte("readme\n")},
	}
	if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// releaseServer serves k6 releases as GitHub does under
// /grafana/k6/releases/download, counting requests.
type releaseServer struct {
	*httptest.Server
	archive []byte
	files   map[string][]byte
	hits    atomic.Int64
}

// base is the server's Options.BaseURL.
func (s *releaseServer) base() string { return s.URL + "/download" }

func newReleaseServer(t *testing.T, archive []byte) *releaseServer {
	s := &releaseServer{archive: archive, files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		body, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// publish adds release version with archive (the real one when nil) for
// archs, listed in the release's checksums file with sum (the archive's own
// when empty).
func (s *releaseServer) publish(t *testing.T, version string, archive []byte, sum string, archs ...string) {
	t.Helper()
	if archive == nil {
		archive = s.archive
	}
	real := sha256.Sum256(archive)
	if sum == "" {
		sum = hex.EncodeToString(real[:])
	}
	var sums strings.Builder
	for _, arch := range []string{"amd64", "arm64"} {
		asset := fmt.Sprintf("k6-v%s-linux-%s.tar.gz", version, arch)
		fmt.Fprintf(&sums, "%s  %s\n", sum, asset)
		for _, a := range archs {
			if a == arch {
				s.files["/download/v"+version+"/"+asset] = archive
			}
		}
	}
	fmt.Fprintf(&sums, "%s  k6-v%s-windows-amd64.zip\n", strings.Repeat("0", 64), version)
	s.files["/download/v"+version+"/k6-v"+version+"-checksums.txt"] = []byte(sums.String())
}

func TestFind(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("gantry installs k6 on linux only")
	}
	k6 := testenv.K6(t)
	archive, err := releaseArchive(k6)
	if err != nil {
		t.Fatal(err)
	}
	archiveSum := sha256.Sum256(archive)
	wrongSum := strings.Repeat("ab", 32)
	// noK6 is an archive whose k6 is a link and a file one folder too deep.
	noK6 := tarGz(t, []tar.Header{
		{Name: "k6-v1.4.0-linux-amd64/k6", Typeflag: tar.TypeSymlink, Linkname: "/bin/sh"},
		{Name: "a/b/k6", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2},
	})
	v := k6run.DefaultVersion
	x64 := toolCacheArch[runtime.GOARCH]

	// onPath returns a PATH holding only k6 (a link to the real one).
	onPath := func(t *testing.T) string {
		dir := t.TempDir()
		if err := os.Symlink(k6, filepath.Join(dir, "k6")); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name     string
		opts     k6run.Options
		path     func(t *testing.T) string // PATH; none when nil
		setup    func(t *testing.T, srv *releaseServer, cache string)
		wantPath func(cache, path string) string
		wantHits int64
		wantErr  []string // all in the error; nil for success
		wantIs   error
		wantLog  string
		// keepsCache: a failure that leaves an earlier install in place.
		keepsCache bool
	}{
		{
			name:     "download, verify and install",
			opts:     k6run.Options{},
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", v, x64, "k6") },
			wantHits: 2,
			wantLog:  "verified sha256 " + hex.EncodeToString(archiveSum[:]),
		},
		{
			name: "cache hit re-hashes against the release checksums",
			setup: func(t *testing.T, srv *releaseServer, cache string) {
				if _, err := k6run.Find(t.Context(), k6run.Options{BaseURL: srv.base(), Getenv: envOf(map[string]string{"RUNNER_TOOL_CACHE": cache})}); err != nil {
					t.Fatal(err)
				}
				srv.hits.Store(0)
			},
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", v, x64, "k6") },
			wantHits: 1, // the checksums file only
			wantLog:  "re-hashed against the release checksums",
		},
		{
			name: "a replaced cached k6 is downloaded again",
			setup: func(t *testing.T, srv *releaseServer, cache string) {
				if _, err := k6run.Find(t.Context(), k6run.Options{BaseURL: srv.base(), Getenv: envOf(map[string]string{"RUNNER_TOOL_CACHE": cache})}); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(cache, "k6", v, x64, "k6"), []byte("#!/bin/sh\necho evil\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				srv.hits.Store(0)
			},
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", v, x64, "k6") },
			wantHits: 3, // the check, then a fresh install
			wantLog:  "the installed k6 is not the one in k6-v" + v,
		},
		{
			name: "a cache from before archives were kept is downloaded again",
			setup: func(t *testing.T, srv *releaseServer, cache string) {
				if _, err := k6run.Find(t.Context(), k6run.Options{BaseURL: srv.base(), Getenv: envOf(map[string]string{"RUNNER_TOOL_CACHE": cache})}); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(cache, "k6", v, x64, "k6-v"+v+"-linux-"+runtime.GOARCH+".tar.gz")); err != nil {
					t.Fatal(err)
				}
				srv.hits.Store(0)
			},
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", v, x64, "k6") },
			wantHits: 3,
			wantLog:  "the release archive is not kept beside it",
		},
		{
			name: "a cache hit that cannot be re-checked fails",
			setup: func(t *testing.T, srv *releaseServer, cache string) {
				if _, err := k6run.Find(t.Context(), k6run.Options{BaseURL: srv.base(), Getenv: envOf(map[string]string{"RUNNER_TOOL_CACHE": cache})}); err != nil {
					t.Fatal(err)
				}
				delete(srv.files, "/download/v"+v+"/k6-v"+v+"-checksums.txt")
				srv.hits.Store(0)
			},
			wantHits:   1,
			wantErr:    []string{"cannot re-check the cached k6 " + v, "against the release checksums"},
			keepsCache: true,
		},
		{
			name: "an install without its .complete marker is redone",
			setup: func(t *testing.T, _ *releaseServer, cache string) {
				dir := filepath.Join(cache, "k6", v, x64)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "k6"), []byte("half"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", v, x64, "k6") },
			wantHits: 2,
			wantLog:  "installed k6 " + v,
		},
		{
			name:     "v prefix and arm64",
			opts:     k6run.Options{Version: "v" + v, Arch: "arm64"},
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", v, "arm64", "k6") },
			wantHits: 2,
		},
		{
			name:     "wanted version on PATH",
			path:     onPath,
			wantPath: func(_, path string) string { return filepath.Join(path, "k6") },
			wantHits: 0,
			wantLog:  "k6 " + v + " on PATH",
		},
		{
			name:     "other version on PATH",
			opts:     k6run.Options{Version: "1.7.0"},
			path:     onPath,
			wantPath: func(cache, _ string) string { return filepath.Join(cache, "k6", "1.7.0", x64, "k6") },
			wantHits: 2,
			wantLog:  "is " + v + ", want 1.7.0",
		},
		{
			name:     "checksum mismatch installs nothing",
			opts:     k6run.Options{Version: "1.6.0"},
			wantHits: 2,
			wantErr:  []string{"k6-v1.6.0-linux-" + runtime.GOARCH + ".tar.gz", "k6-v1.6.0-checksums.txt", wrongSum, hex.EncodeToString(archiveSum[:]), "nothing installed"},
			wantIs:   k6run.ErrChecksumMismatch,
		},
		{
			name:     "unknown version",
			opts:     k6run.Options{Version: "1.99.0"},
			wantHits: 1,
			wantErr:  []string{"k6 1.99.0 (linux/" + runtime.GOARCH + ") not found", "HTTP 404", "set k6-version"},
			wantIs:   k6run.ErrNotFound,
		},
		{
			name:     "no archive for the arch",
			opts:     k6run.Options{Version: "1.5.0", Arch: "arm64"},
			wantHits: 2,
			wantErr:  []string{"k6 1.5.0 has no archive for linux/arm64", "k6-v1.5.0-linux-arm64.tar.gz: HTTP 404", "set k6-version"},
			wantIs:   k6run.ErrNotFound,
		},
		{
			name:     "archive without k6 installs nothing",
			opts:     k6run.Options{Version: "1.4.0"},
			wantHits: 2,
			wantErr:  []string{"unpacking k6-v1.4.0-linux-" + runtime.GOARCH + ".tar.gz of k6 1.4.0: no k6 executable in the archive; nothing installed"},
		},
		{
			name:    "not a version",
			opts:    k6run.Options{Version: "latest"},
			wantErr: []string{`input "k6-version": "latest" is not a k6 release version`},
		},
		{
			name:    "unsupported arch",
			opts:    k6run.Options{Arch: "386"},
			wantErr: []string{"linux/amd64 and linux/arm64 only, not linux/386"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newReleaseServer(t, archive)
			srv.publish(t, v, nil, "", "amd64", "arm64")
			srv.publish(t, "1.7.0", nil, "", runtime.GOARCH)
			srv.publish(t, "1.6.0", nil, wrongSum, runtime.GOARCH)
			srv.publish(t, "1.5.0", nil, "", "amd64")
			srv.publish(t, "1.4.0", noK6, "", runtime.GOARCH)
			cache := t.TempDir()
			path := t.TempDir() // no k6 in it
			if tc.path != nil {
				path = tc.path(t)
			}
			if tc.setup != nil {
				tc.setup(t, srv, cache)
			}
			var log syncBuffer
			o := tc.opts
			o.BaseURL = srv.base()
			o.Getenv = envOf(map[string]string{"RUNNER_TOOL_CACHE": cache, "PATH": path})
			o.Logf = log.logf

			got, err := k6run.Find(t.Context(), o)
			if n := srv.hits.Load(); n != tc.wantHits {
				t.Errorf("%d requests to the release server; want %d", n, tc.wantHits)
			}
			if !strings.Contains(log.String(), tc.wantLog) {
				t.Errorf("log does not mention %q:\n%s", tc.wantLog, log.String())
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Find = %s; want an error", got)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("error %q is not %v", err, tc.wantIs)
				}
				// Nothing was installed, and no staging folder is left.
				var left []string
				_ = filepath.Walk(cache, func(p string, info os.FileInfo, err error) error {
					if err == nil && !info.IsDir() {
						left = append(left, p)
					}
					return nil
				})
				if len(left) > 0 && !tc.keepsCache {
					t.Errorf("files left in the tool cache after a failed install: %v", left)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.wantPath(cache, path); got != want {
				t.Fatalf("Find = %s; want %s", got, want)
			}
			if strings.HasPrefix(got, cache) {
				if _, err := os.Stat(filepath.Dir(got) + ".complete"); err != nil {
					t.Errorf("no .complete marker beside %s: %v", filepath.Dir(got), err)
				}
				entries, _ := os.ReadDir(filepath.Dir(got))
				if len(entries) != 2 {
					t.Errorf("install folder holds %d entries; want k6 and its release archive", len(entries))
				}
				if gotSum, wantSum := fileSum(t, got), fileSum(t, k6); gotSum != wantSum {
					t.Errorf("installed k6 has sha256 %s, the release's has %s", gotSum, wantSum)
				}
				vdir, _ := os.ReadDir(filepath.Dir(filepath.Dir(got)))
				for _, e := range vdir {
					if strings.HasPrefix(e.Name(), ".stage") {
						t.Errorf("staging folder %s left behind", e.Name())
					}
				}
			}
			if filepath.Base(filepath.Dir(got)) == x64 {
				out, err := exec.Command(got, "version").Output()
				if err != nil || !strings.HasPrefix(string(out), "k6 v"+v+" ") {
					t.Errorf("%s version = %q, %v; want k6 v%s", got, out, err, v)
				}
			}
		})
	}
}

// tarGz builds a tar.gz of headers, each regular file holding Size bytes
// of "x".
func tarGz(t *testing.T, headers []tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range headers {
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte("x"), int(h.Size))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// toolCacheArch is how actions/tool-cache names architectures.
var toolCacheArch = map[string]string{"amd64": "x64", "arm64": "arm64"}

// envOf is a Getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// fileSum is the hex sha256 of the file at p.
func fileSum(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestFindOnPathEachMajor: a k6 of each supported major version on PATH is
// taken when it is the wanted version ("k6 version" reads the same) and not
// when another version is wanted.
func TestFindOnPathEachMajor(t *testing.T) {
	t.Parallel()
	testenv.EachK6(t, func(t *testing.T, k6 testenv.K6Build) {
		t.Parallel()
		dir := k6.PathDir(t)
		var log syncBuffer
		env := map[string]string{"PATH": dir, "RUNNER_TOOL_CACHE": t.TempDir()}
		got, err := k6run.Find(t.Context(), k6run.Options{Version: "v" + k6.Version, Getenv: func(k string) string { return env[k] }, Logf: log.logf})
		if err != nil || got != filepath.Join(dir, "k6") || !strings.Contains(log.String(), "k6 "+k6.Version+" on PATH") {
			t.Fatalf("Find = %q, %v; want the k6 %s on PATH\n%s", got, err, k6.Version, log.String())
		}
		// Another version is looked for in the tool cache, here offline.
		_, err = k6run.Find(t.Context(), k6run.Options{Version: "0.1.0", Getenv: func(k string) string { return env[k] }, Logf: log.logf,
			Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("offline") })})
		if err == nil || !strings.Contains(log.String(), "is "+k6.Version+", want 0.1.0") {
			t.Errorf("Find of another version: %v; want a miss on PATH\n%s", err, log.String())
		}
	})
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for out, want := range map[string]string{
		"k6 v1.8.1 (go1.26.8, linux/amd64)\n":                      "1.8.1",
		"k6 v2.2.0 (commit/devel, go1.26.8, linux/amd64)\n":        "2.2.0",
		"k6-v1 v1.8.1 (commit/devel, go1.26.8, linux/amd64)\n":     "1.8.1", // installed under another name
		"k6 v2.3.0-rc1 (commit/0123abcd, go1.26.8, linux/amd64)\n": "2.3.0-rc1",
		"k6 v2.2.0\nExtensions:\n  k6/x/foo v0.1.0\n":              "2.2.0",
		"k6 v2.2\n":            "",
		"k6 version unknown\n": "",
		"\nk6 v2.2.0 (...)\n":  "", // not the first line
		"":                     "",
	} {
		if got := k6run.ParseVersion([]byte(out)); got != want {
			t.Errorf("ParseVersion(%q) = %q; want %q", out, got, want)
		}
	}
}
