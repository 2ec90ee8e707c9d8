// Package k6run finds or installs k6, writes the built-in smoke script and
// runs k6, in the foreground or in the background while a deploy goes on.
// gantry summarizes k6's raw JSON output itself (package loadtest); this
// package only gets k6 to write it.
package k6run

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/input"
)

// DefaultVersion is the k6 release gantry installs unless told otherwise;
// k6 1.x (1.8.1 is tested) still works when chosen.
const DefaultVersion = "2.2.0"

// DefaultBaseURL is where k6's GitHub releases are downloaded from: public
// assets, fetched without a token.
const DefaultBaseURL = "https://github.com/grafana/k6/releases/download"

// Limits of an install: the whole download, the k6 binary unpacked from it
// (the release's is about 60 MiB) and how long "k6 version" may take.
const (
	downloadTimeout = 10 * time.Minute
	maxBinaryBytes  = 512 << 20
	versionTimeout  = 30 * time.Second
)

// ErrNotFound means the k6 release, or its archive for this platform, does
// not exist.
var ErrNotFound = errors.New("k6 release not found")

// ErrChecksumMismatch means a downloaded archive does not have the SHA-256
// the release's checksums file lists; nothing was installed.
var ErrChecksumMismatch = errors.New("k6 archive checksum mismatch")

// Options says which k6 Find wants and where it may look.
type Options struct {
	// Version is the k6 release, as 2.2.0 or v2.2.0; empty means
	// DefaultVersion.
	Version string
	// BaseURL replaces DefaultBaseURL; the archive is fetched from
	// BaseURL/v<version>/k6-v<version>-linux-<arch>.tar.gz.
	BaseURL string
	// Arch is the GOARCH to install for (amd64 or arm64); empty means the
	// running one.
	Arch string
	// Getenv reads PATH, RUNNER_TOOL_CACHE and, outside Actions,
	// XDG_CACHE_HOME and HOME; nil means os.Getenv.
	Getenv func(string) string
	// Transport carries the download; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Logf, when set, receives one line per step (found, cache hit,
	// downloading, verified, installed).
	Logf func(format string, args ...any)
}

func (o *Options) getenv(k string) string {
	if o.Getenv == nil {
		return os.Getenv(k)
	}
	return o.Getenv(k)
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// versionRE is a k6 release version without its leading v.
var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$`)

// NormalizeVersion returns v without a leading "v" (2.2.0 for v2.2.0), or
// an InputError for k6-version when it is not a release version.
func NormalizeVersion(v string) (string, error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	if v == "" {
		return DefaultVersion, nil
	}
	if !versionRE.MatchString(v) {
		return "", &input.Error{Input: "k6-version", Msg: fmt.Sprintf("%q is not a k6 release version (want one like %s; see https://github.com/grafana/k6/releases)", v, DefaultVersion)}
	}
	return v, nil
}

// toolCacheArch names an architecture the way actions/tool-cache does
// (Node's os.arch()), so a later tc.find("k6", version) finds gantry's copy.
var toolCacheArch = map[string]string{"amd64": "x64", "arm64": "arm64"}

// Find returns the path of the k6 executable of the wanted version: the k6 on
// PATH when "k6 version" reports that version, else the copy in the Actions
// tool cache ($RUNNER_TOOL_CACHE/k6/<version>/<x64|arm64>/k6), which it first
// downloads from k6's release, checks against the release's checksums file
// and unpacks when it is not there yet. A cached copy is re-hashed against
// the checksums file on every hit and downloaded again when it fails.
func Find(ctx context.Context, o Options) (string, error) {
	version, err := NormalizeVersion(o.Version)
	if err != nil {
		return "", err
	}
	arch := o.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	if p, got, ok := k6OnPath(ctx, &o); ok {
		if got == version {
			o.logf("k6 %s on PATH: %s", version, p)
			return p, nil
		}
		o.logf("k6 on PATH (%s) is %s, want %s; using the tool cache", p, orUnknown(got), version)
	}

	tcArch, ok := toolCacheArch[arch]
	if !ok || runtime.GOOS != "linux" {
		return "", fmt.Errorf("k6 install: gantry installs k6 on linux/amd64 and linux/arm64 only, not %s/%s; put k6 %s on PATH", runtime.GOOS, arch, version)
	}
	root, err := toolCacheRoot(&o)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "k6", version, tcArch)
	exe := filepath.Join(dir, "k6")
	if installed(dir) {
		err := verifyCached(ctx, &o, version, arch, dir)
		if err == nil {
			o.logf("cache hit: k6 %s (linux/%s) in %s; re-hashed against the release checksums", version, arch, dir)
			return exe, nil
		}
		if !errors.Is(err, ErrChecksumMismatch) {
			return "", fmt.Errorf("k6 install: cannot re-check the cached k6 %s in %s against the release checksums: %w", version, dir, err)
		}
		o.logf("the cached k6 %s in %s does not match the release checksums (%v); downloading it again", version, dir, err)
		if err := errors.Join(os.Remove(dir+".complete"), os.RemoveAll(dir)); err != nil {
			return "", fmt.Errorf("k6 install: removing the cached k6 that failed its check: %w", err)
		}
	}
	if err := install(ctx, &o, version, arch, dir); err != nil {
		return "", err
	}
	return exe, nil
}

func orUnknown(v string) string {
	if v == "" {
		return "of an unknown version"
	}
	return v
}

// k6OnPath finds k6 in the PATH of o and asks it its version; got is empty
// when the answer cannot be read.
func k6OnPath(ctx context.Context, o *Options) (p, got string, ok bool) {
	for _, dir := range filepath.SplitList(o.getenv("PATH")) {
		if dir == "" {
			continue
		}
		cand := filepath.Join(dir, "k6")
		if st, err := os.Stat(cand); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			continue
		}
		p = cand
		break
	}
	if p == "" {
		return "", "", false
	}
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p, "version")
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true")
	out, err := cmd.Output()
	if err != nil {
		return p, "", true
	}
	return p, ParseVersion(out), true
}

// k6VersionRE matches the first line of "k6 version", which starts with
// the name of k6's executable (after symlinks): k6 v1.8.1 (go1.26.8,
// linux/amd64), k6 v2.2.0 (commit/devel, go1.26.8, linux/amd64), or
// k6-v1 v1.8.1 (...) for a k6 installed under that name.
var k6VersionRE = regexp.MustCompile(`\A\S+ v([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.]+)?)[ \n]`)

// ParseVersion reads the version (2.2.0) from the output of "k6 version";
// "" when it is not there.
func ParseVersion(out []byte) string {
	m := k6VersionRE.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// toolCacheRoot is $RUNNER_TOOL_CACHE, or outside Actions the user's cache
// directory, as scripts/install.sh does for gantry itself.
func toolCacheRoot(o *Options) (string, error) {
	if d := o.getenv("RUNNER_TOOL_CACHE"); d != "" {
		return d, nil
	}
	if d := o.getenv("XDG_CACHE_HOME"); d != "" {
		return d, nil
	}
	if h := o.getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache"), nil
	}
	return "", errors.New("k6 install: no tool cache: RUNNER_TOOL_CACHE, XDG_CACHE_HOME and HOME are all unset")
}

// installed reports whether dir holds a complete install: the marker file
// next to it, written last, and the executable.
func installed(dir string) bool {
	if _, err := os.Stat(dir + ".complete"); err != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, "k6"))
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// verifyCached re-hashes a cached install against the release's checksums
// file: the kept archive must have the listed sha256 and the installed k6
// must be the one in it. A failed check wraps ErrChecksumMismatch; other
// errors (the checksums cannot be fetched) say the check could not run.
func verifyCached(ctx context.Context, o *Options, version, arch, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	defer cancel()
	base := strings.TrimRight(o.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	asset := fmt.Sprintf("k6-v%s-linux-%s.tar.gz", version, arch)
	var sums bytes.Buffer
	if err := download(ctx, &http.Client{Transport: o.Transport}, base+"/v"+version+"/"+fmt.Sprintf("k6-v%s-checksums.txt", version), &sums, 1<<20); err != nil {
		return err
	}
	want, err := checksumFor(sums.Bytes(), asset)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dir, asset))
	if err != nil {
		return fmt.Errorf("%w: the release archive is not kept beside it", ErrChecksumMismatch)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: %s has sha256 %s, the release lists %s", ErrChecksumMismatch, asset, got, want)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	inArchive := sha256.New()
	if err := copyK6(f, func() (io.Writer, error) { return inArchive, nil }); err != nil {
		return fmt.Errorf("%w: %v", ErrChecksumMismatch, err)
	}
	bin, err := os.Open(filepath.Join(dir, "k6"))
	if err != nil {
		return err
	}
	defer bin.Close()
	installed := sha256.New()
	if _, err := io.Copy(installed, bin); err != nil {
		return err
	}
	if !bytes.Equal(installed.Sum(nil), inArchive.Sum(nil)) {
		return fmt.Errorf("%w: the installed k6 is not the one in %s", ErrChecksumMismatch, asset)
	}
	return nil
}

// install downloads and verifies the release archive, unpacks its k6 into a
// staging directory beside dir and moves it into place, then writes the
// .complete marker.
func install(ctx context.Context, o *Options, version, arch, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	defer cancel()
	base := strings.TrimRight(o.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	releaseURL := base + "/v" + version
	asset := fmt.Sprintf("k6-v%s-linux-%s.tar.gz", version, arch)
	sumsName := fmt.Sprintf("k6-v%s-checksums.txt", version)
	client := &http.Client{Transport: o.Transport}

	var sums bytes.Buffer
	if err := download(ctx, client, releaseURL+"/"+sumsName, &sums, 1<<20); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("k6 install: k6 %s (linux/%s) not found: %s: HTTP 404; set k6-version to a released k6 version (see https://github.com/grafana/k6/releases): %w", version, arch, releaseURL+"/"+sumsName, ErrNotFound)
		}
		return fmt.Errorf("k6 install: %w", err)
	}
	want, err := checksumFor(sums.Bytes(), asset)
	if err != nil {
		return fmt.Errorf("k6 install: %s of k6 %s: %w", sumsName, version, err)
	}

	vdir := filepath.Dir(dir)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	stage, err := os.MkdirTemp(vdir, ".stage-")
	if err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	defer os.RemoveAll(stage)

	archive, err := os.Create(filepath.Join(stage, asset))
	if err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	defer archive.Close()
	h := sha256.New()
	o.logf("downloading %s/%s", releaseURL, asset)
	if err := download(ctx, client, releaseURL+"/"+asset, io.MultiWriter(archive, h), 1<<30); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("k6 install: k6 %s has no archive for linux/%s: %s/%s: HTTP 404; set k6-version to a release that has one: %w", version, arch, releaseURL, asset, ErrNotFound)
		}
		return fmt.Errorf("k6 install: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		return fmt.Errorf("k6 install: %w for %s of k6 %s: %s lists sha256 %s, the download has sha256 %s; nothing installed", ErrChecksumMismatch, asset, version, sumsName, want, got)
	}
	o.logf("verified sha256 %s of %s", got, asset)

	if _, err := archive.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	staged := filepath.Join(stage, "k6-dir")
	if err := os.Mkdir(staged, 0o755); err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	if err := extractK6(archive, filepath.Join(staged, "k6")); err != nil {
		return fmt.Errorf("k6 install: unpacking %s of k6 %s: %w; nothing installed", asset, version, err)
	}
	// The archive stays with its k6, so that every later cache hit can be
	// re-hashed against the release's checksums.
	if err := os.Rename(archive.Name(), filepath.Join(staged, asset)); err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}

	if installed(dir) {
		o.logf("another job installed k6 %s in %s meanwhile; using it", version, dir)
		return nil
	}
	// A directory without its marker is a crashed install's leftover.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	if err := os.Rename(staged, dir); err != nil {
		if installed(dir) {
			return nil
		}
		return fmt.Errorf("k6 install: %w", err)
	}
	marker := fmt.Sprintf("source=%s/%s\nsha256=%s\n", releaseURL, asset, got)
	if err := os.WriteFile(dir+".complete", []byte(marker), 0o644); err != nil {
		return fmt.Errorf("k6 install: %w", err)
	}
	o.logf("installed k6 %s (linux/%s) in %s", version, arch, dir)
	return nil
}

// download GETs url into w, at most limit bytes. A 404 is ErrNotFound.
func download(ctx context.Context, client *http.Client, url string, w io.Writer, limit int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "gantry-k6-install")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("download %s: HTTP %s", url, resp.Status)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if n > limit {
		return fmt.Errorf("download %s: larger than %d bytes", url, limit)
	}
	return nil
}

// checksumFor finds the one SHA-256 that sums (sha256sum format: "<hex>
// <name>" or "<hex> *<name>") lists for name.
func checksumFor(sums []byte, name string) (string, error) {
	var found []string
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || strings.TrimPrefix(f[1], "*") != name {
			continue
		}
		sum := strings.ToLower(f[0])
		if len(sum) != sha256.Size*2 || strings.Trim(sum, "0123456789abcdef") != "" {
			return "", fmt.Errorf("malformed sha256 %q for %s", f[0], name)
		}
		if len(found) == 0 || found[0] != sum {
			found = append(found, sum)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no entry for %s; refusing to install an unverified k6", name)
	case 1:
		return found[0], nil
	default:
		return "", fmt.Errorf("%s is listed with %d different sums; refusing to install", name, len(found))
	}
}

// extractK6 writes the k6 executable of a release archive (k6-v<ver>-linux-
// <arch>/k6, or k6 at the top) to dst. Nothing else is unpacked, and entry
// names are never used as paths.
func extractK6(r io.Reader, dst string) error {
	var f *os.File
	err := copyK6(r, func() (io.Writer, error) {
		var err error
		f, err = os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
		return f, err
	})
	if f != nil {
		return errors.Join(err, f.Close())
	}
	return err
}

// copyK6 copies the k6 executable of a release archive to the writer open
// returns.
func copyK6(r io.Reader, open func() (io.Writer, error)) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return errors.New("no k6 executable in the archive")
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if hdr.Typeflag != tar.TypeReg || path.Base(name) != "k6" || strings.Count(name, "/") > 1 {
			continue
		}
		if hdr.Size > maxBinaryBytes {
			return fmt.Errorf("%s is %d bytes, more than a k6 binary can be", hdr.Name, hdr.Size)
		}
		w, err := open()
		if err != nil {
			return err
		}
		_, err = io.Copy(w, tr)
		return err
	}
}
