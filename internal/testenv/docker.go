package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// Docker requires a reachable Docker engine through the docker CLI.
func Docker(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		Missing(t, "the docker CLI", "apt-get install docker.io")
		return
	}
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		Missing(t, "a running Docker engine ("+strings.TrimSpace(string(out))+")", "start dockerd")
	}
}
