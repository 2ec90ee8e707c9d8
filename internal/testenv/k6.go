package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest/k6run"
)

// K6Majors are the k6 major versions gantry supports, the default pin's
// first. The loadtest tests whose outcome depends on k6's behaviour run
// against each (EachK6).
var K6Majors = []int{2, 1}

// k6Pins says where each major's pinned k6 is: its .bin name, the
// variables that override it and how scripts/tools.sh installs it.
var k6Pins = map[int]struct {
	bin     string
	envVars []string
	install string
}{
	2: {"k6", []string{"GANTRY_K6_V2", "GANTRY_K6_BIN"}, K6Install},
	1: {"k6-v1", []string{"GANTRY_K6_V1"}, K6V1Install},
}

// K6Build is a k6 executable the tests run, with its version.
type K6Build struct {
	Path    string // the executable
	Version string // what "k6 version" reports, without the v: 2.2.0
	Major   int
}

// Name is the subtest name of the build's major: k6v2.
func (k K6Build) Name() string { return "k6v" + strconv.Itoa(k.Major) }

// PathDir returns a directory holding only this k6, named k6, for PATH
// (gantry looks for "k6" there, whatever the .bin name).
func (k K6Build) PathDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(k.Path, filepath.Join(dir, "k6")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// k6Versions remembers each executable's version ("" when unreadable), so a
// test process asks every k6 once.
var k6Versions sync.Map

func k6Version(path string) string {
	if v, ok := k6Versions.Load(path); ok {
		return v.(string)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true")
	out, _ := cmd.Output()
	v := k6run.ParseVersion(out)
	k6Versions.Store(path, v)
	return v
}

// K6Of returns the pinned k6 of a major version (K6Majors): .bin/k6 for 2
// and .bin/k6-v1 for 1, or the path in GANTRY_K6_V2 (GANTRY_K6_BIN) or
// GANTRY_K6_V1. An absent k6, or one of another major, fails the test in CI
// and skips it elsewhere.
func K6Of(t testing.TB, major int) K6Build {
	t.Helper()
	pin, ok := k6Pins[major]
	if !ok {
		t.Fatalf("testenv: no pinned k6 of major version %d", major)
	}
	path := ""
	for _, v := range pin.envVars {
		if path = os.Getenv(v); path != "" {
			break
		}
	}
	if path == "" {
		if p := filepath.Join(RepoRoot(t), ".bin", pin.bin); isExec(p) {
			path = p
		} else if major == K6Majors[0] {
			if p, err := exec.LookPath("k6"); err == nil {
				path = p
			}
		}
	}
	if path == "" {
		Missing(t, "k6 "+strconv.Itoa(major)+".x (.bin/"+pin.bin+")", pin.install)
	}
	v := k6Version(path)
	if !strings.HasPrefix(v, strconv.Itoa(major)+".") {
		Missing(t, "k6 "+strconv.Itoa(major)+".x ("+path+" reports version "+strconv.Quote(v)+")", pin.install)
	}
	return K6Build{Path: path, Version: v, Major: major}
}

// EachK6 runs f as a subtest per supported k6 major version (k6v2, k6v1),
// for the tests whose outcome depends on how k6 behaves.
func EachK6(t *testing.T, f func(t *testing.T, k6 K6Build)) {
	t.Helper()
	for _, m := range K6Majors {
		t.Run("k6v"+strconv.Itoa(m), func(t *testing.T) { f(t, K6Of(t, m)) })
	}
}
