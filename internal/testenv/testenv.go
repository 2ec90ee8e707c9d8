// Package testenv starts the real programs gantry's tests run against (a
// registry server, sshd, the Docker engine, k6), each on loopback. A missing
// program fails the test in CI (CI=true) and skips it elsewhere, naming the
// command that installs it.
package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startDir is the test binary's working directory when it started, before
// any test changed directory.
var startDir, startDirErr = os.Getwd()

// RepoRoot returns the directory holding gantry's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := startDir, startDirErr
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Missing fails (in CI) or skips (elsewhere) a test whose peer is not installed.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: %s is missing and CI=true; install it with: %s", what, install)
	}
	t.Skipf("testenv: %s is missing; install it with: %s", what, install)
}

// Tool finds a tool by its environment override, the project's .bin folder
// (where scripts/tools.sh installs pinned tools), then PATH.
func Tool(t testing.TB, name, envVar, install string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	if p := filepath.Join(RepoRoot(t), ".bin", name); isExec(p) {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Missing(t, name, install)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FreePort returns a TCP port, free on every interface a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	// Below Linux's ephemeral range (32768-60999 by default): a port the
	// kernel hands out for another listener on :0 or an outgoing connection
	// cannot take it between this check and the test's own bind (seen: an
	// edge's host port taken by a parallel test package).
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("testenv: no free port between 20000 and 32000")
	return 0
}

// Eventually checks cond every interval until it holds, for at most timeout,
// and reports whether it did: waiting on a condition, never on a fixed time.
func Eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}
