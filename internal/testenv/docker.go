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

// Swarm requires the Docker engine in swarm mode, initializing a single-node
// swarm on loopback when it is not in one; the engine stays a manager (tests
// remove their own stacks). An engine that refuses swarm mode fails the test
// with its error.
func Swarm(t testing.TB) {
	t.Helper()
	Docker(t)
	state, err := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").Output()
	if err != nil {
		t.Fatalf("testenv: docker info: %v", err)
	}
	switch strings.TrimSpace(string(state)) {
	case "active":
		return
	case "inactive":
		if out, err := exec.Command("docker", "swarm", "init", "--advertise-addr", "127.0.0.1").CombinedOutput(); err != nil {
			if again, _ := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").Output(); strings.TrimSpace(string(again)) == "active" {
				return // another test process initialized it meanwhile
			}
			t.Fatalf("testenv: the engine refuses swarm mode: docker swarm init: %v: %s", err, out)
		}
	default:
		t.Fatalf("testenv: the engine's swarm state is %q; want active or inactive", strings.TrimSpace(string(state)))
	}
}
