package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/testenv"
)

type swarmServiceOutput struct {
	Name, Image, State      string
	ReplicasBefore, Desired int
	Running                 int
	Errors                  []string
}

func swarmServices(t *testing.T, r run) map[string]swarmServiceOutput {
	t.Helper()
	var svcs []swarmServiceOutput
	if err := json.Unmarshal([]byte(r.outputs["services"]), &svcs); err != nil {
		t.Fatalf("services output %q: %v\n%s", r.outputs["services"], err, r.log)
	}
	out := map[string]swarmServiceOutput{}
	for _, s := range svcs {
		out[s.Name] = s
	}
	return out
}

// TestDeploySwarmReportsWhatRuns: after gantry's own rollback the services
// output and the summary name the image and task count that run at the end;
// a later swarm-scale does not repeat the failed deploy's task errors; a
// failed first deploy leaves no network behind.
func TestDeploySwarmReportsWhatRuns(t *testing.T) {
	h := startSwarmHost(t)
	workspace(t, map[string]string{"compose.yml": h.composeFile()})
	sha1, sha3 := "1111111"+strings.Repeat("a", 33), "3333333"+strings.Repeat("c", 33)
	v1 := digestRef(t, testenv.AppImage(t, h.reg.Host, sha1, "v1"))
	crashRef, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/crash", "v3", map[string][]byte{"/app": []byte("#!/bin/nowhere\n")}, []string{"/app"}, nil)
	crash := digestRef(t, crashRef)
	v1Digest, crashDigest := v1[strings.Index(v1, "@"):], crash[strings.Index(crash, "@"):]

	if r := h.deploy(t, sha1, v1); r.code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", r.code, r.log)
	}

	// Swarm pauses the failed update (failure-action pause); gantry rolls it back itself.
	r := h.deployJob(t, sha3, crash, v1, "--failure-action", "pause")
	if r.code != 1 || r.outputs["result"] != "rolled-back" || !strings.Contains(r.log, "the stack is back on its previous version") {
		t.Fatalf("crashing release: exit %d result %q\n%s\n%s", r.code, r.outputs["result"], r.log, r.summary)
	}
	web := swarmServices(t, r)["web"]
	if !strings.HasSuffix(web.Image, v1Digest) || web.Running != 2 || web.Desired != 2 || web.State != "rolled back" {
		t.Errorf("services output after gantry's rollback names %+v; want v1's image (%s) with 2/2 running, rolled back", web, v1Digest)
	}
	if strings.Contains(r.summary, crashDigest) || !strings.Contains(r.summary, v1Digest) {
		t.Errorf("summary after the rollback should name the image that runs (%s), not the failed one (%s):\n%s", v1Digest, crashDigest, r.summary)
	}
	if len(web.Errors) == 0 {
		t.Errorf("services output after the rollback lost the failed tasks' errors: %+v", web)
	}
	if got := served(t, h.url()); got != sha1 {
		t.Errorf("serves %q after the rollback, want %s", got, sha1)
	}

	// swarm-scale right after: the failed deploy's task errors are not this scale's.
	sc := runCLI(t, nil, nil, "swarm-scale", "--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts, "--stack", h.stack, "--scale", "web=3")
	if sc.code != 0 {
		t.Fatalf("swarm-scale: exit %d\n%s\n%s", sc.code, sc.log, sc.summary)
	}
	if w := swarmServices(t, sc)["web"]; len(w.Errors) != 0 || w.Running != 3 {
		t.Errorf("swarm-scale after a failed deploy reports %+v; want 3 running and none of the earlier deploy's errors", w)
	}
	if strings.Contains(sc.summary, "non-zero exit") || strings.Contains(sc.log, "task errors") {
		t.Errorf("swarm-scale repeats old task errors:\n%s\n%s", sc.log, sc.summary)
	}

	// An unknown service is named under the input the user set.
	sc = runCLI(t, nil, nil, "swarm-scale", "--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
		"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts, "--stack", h.stack, "--scale", "wbe=1")
	if sc.code != 1 || !strings.Contains(sc.log, `input "scale"`) || !strings.Contains(sc.log, "no service wbe (it has: job, web)") {
		t.Errorf("swarm-scale of an unknown service: exit %d\n%s", sc.code, sc.log)
	}

	// Swarm rolls web back itself (failure_action: rollback); the service
	// extra, which this deploy created, goes too, and the output is read back.
	withExtra := h.composeFile() + "  extra:\n    image: placeholder.invalid/extra\n"
	if err := os.WriteFile("extra.yml", []byte(withExtra), 0o644); err != nil {
		t.Fatal(err)
	}
	r = h.deployJob(t, sha3, crash, v1, "--compose-file", "extra.yml", "--images", "web="+crash+"\njob="+v1+"\nextra="+v1, "--services", "web")
	if r.code != 1 || r.outputs["result"] != "rolled-back" || !strings.Contains(r.log, "Swarm's rollback finished") {
		t.Fatalf("crashing release rolled back by Swarm: exit %d result %q\n%s\n%s", r.code, r.outputs["result"], r.log, r.summary)
	}
	web = swarmServices(t, r)["web"]
	if !strings.HasSuffix(web.Image, v1Digest) || web.Running != web.Desired || web.Running < 2 || web.State != "rolled back" {
		t.Errorf("services output after Swarm's rollback names %+v; want v1's image (%s), all its tasks running", web, v1Digest)
	}
	if out, err := exec.Command("docker", "service", "ls", "--quiet", "--filter", "name="+h.stack+"_extra").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("the service extra, created by the failed deploy, is left: %q (%v)\n%s", out, err, r.log)
	}

	// A failed first deploy of another stack: its services and its default network are removed.
	first := *h
	first.stack = "gs" + randHex(4)
	t.Cleanup(func() { _ = exec.Command("docker", "stack", "rm", first.stack).Run() })
	r = first.deployJob(t, sha3, crash, v1)
	if r.code != 1 || r.outputs["result"] != "rolled-back" || !strings.Contains(r.log, "new service web does not start") {
		t.Fatalf("failed first deploy: exit %d result %q\n%s\n%s", r.code, r.outputs["result"], r.log, r.summary)
	}
	if w := swarmServices(t, r)["web"]; w.State != "removed" || w.Running != 0 || w.Image != "" {
		t.Errorf("services output after a failed first deploy: %+v; want web removed", w)
	}
	for _, kind := range []string{"service", "network"} {
		// The swarm has removed them; the engine drops its local copy of a
		// network once the removed tasks' containers are gone.
		var out []byte
		var err error
		if !testenv.Eventually(30*time.Second, 200*time.Millisecond, func() bool {
			out, err = exec.Command("docker", kind, "ls", "--quiet", "--filter", "label=com.docker.stack.namespace="+first.stack).Output()
			return err == nil && strings.TrimSpace(string(out)) == ""
		}) {
			t.Errorf("a failed first deploy left %ss of stack %s: %q (%v)\n%s", kind, first.stack, out, err, r.log)
		}
	}
}

// TestDeploySwarmUnknownServiceNamesTheInput: a service in images or scale
// that the Compose file lacks is reported under that input, before any
// connection.
func TestDeploySwarmUnknownServiceNamesTheInput(t *testing.T) {
	workspace(t, map[string]string{"compose.yml": "services:\n  web:\n    image: x\n"})
	img := "127.0.0.1:5000/app@sha256:" + strings.Repeat("1", 64)
	for _, tc := range []struct {
		input string
		args  []string
	}{
		{"images", []string{"--images", "wbe=" + img}},
		{"scale", []string{"--images", "web=" + img, "--scale", "wbe=2"}},
		{"services", []string{"--images", "web=" + img, "--services", "wbe"}},
	} {
		t.Run(tc.input, func(t *testing.T) {
			// Port 1 has no server: reaching it would fail differently.
			args := append([]string{"deploy-swarm", "--host", "127.0.0.1", "--port", "1", "--user", "u", "--ssh-key", "k",
				"--insecure-ignore-host-key", "true", "--stack", "s" + randHex(3), "--sha", testSHA}, tc.args...)
			r := runCLI(t, nil, nil, args...)
			if r.code != 1 || !strings.Contains(r.log, `input "`+tc.input+`"`) || !strings.Contains(r.log, `service "wbe" is not in compose.yml`) {
				t.Errorf("unknown service in %s: exit %d\n%s", tc.input, r.code, r.log)
			}
		})
	}
}

// TestDeployComposeUnknownEdgeServiceNamesTheInput: a service in edge that
// the Compose file lacks is reported under edge, not services.
func TestDeployComposeUnknownEdgeServiceNamesTheInput(t *testing.T) {
	workspace(t, map[string]string{"compose.yml": "services:\n  web:\n    image: x\n"})
	r := runCLI(t, nil, nil, "deploy-compose", "--host", "127.0.0.1", "--port", "1", "--user", "u", "--ssh-key", "k",
		"--insecure-ignore-host-key", "true", "--project", "p"+randHex(3), "--sha", testSHA, "--edge", "wbe")
	if r.code != 1 || !strings.Contains(r.log, `input "edge"`) || !strings.Contains(r.log, `service "wbe" is not in compose.yml`) {
		t.Errorf("unknown edge service: exit %d\n%s", r.code, r.log)
	}
}
