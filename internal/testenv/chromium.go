package testenv

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// ChromiumInstall is how the browser tests' Chromium is installed.
const ChromiumInstall = "apt-get install chromium (scripts/tools.sh does it when run as root)"

// ChromiumFlags returns the command-line flags (without their leading
// dashes) a test starts Chromium with: headless, and quiet on a closed
// network, which background networking would flood. Add a fresh
// user-data-dir.
func ChromiumFlags() []string {
	return []string{
		"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
		"disable-background-networking", "disable-component-update", "disable-sync",
	}
}

// chromiumChecked remembers, per binary, why it failed to start ("" when it
// ran), so each test process checks it once.
var chromiumChecked sync.Map

// Chromium returns the path of a Chromium (or Chrome) binary that runs
// (GANTRY_CHROMIUM_BIN overrides it); start it with ChromiumFlags.
func Chromium(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("GANTRY_CHROMIUM_BIN")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if bin != "" {
			break
		}
		bin, _ = exec.LookPath(name)
	}
	if bin == "" {
		Missing(t, "Chromium", ChromiumInstall)
		return ""
	}
	why, ok := chromiumChecked.Load(bin)
	if !ok {
		// Debian's chromium is a wrapper script; a broken install fails here
		// rather than in the middle of a browser test.
		out, err := exec.Command(bin, "--version").CombinedOutput()
		why = ""
		if err != nil {
			msg := err.Error()
			if o := strings.TrimSpace(string(out)); o != "" {
				msg += ": " + o
			}
			why = "a working Chromium (" + bin + " --version: " + msg + ")"
		}
		chromiumChecked.Store(bin, why)
	}
	if why != "" {
		Missing(t, why.(string), ChromiumInstall)
	}
	return bin
}
