package acceptance

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/testenv"
)

const swarmWorkflow = `name: consumer
on: push
env:
  DEPLOY_SSH_KEY: |
@KEY@
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: |
          cat > stack.yml <<'YAML'
          services:
            web:
              image: placeholder.invalid/web
              expose: ["8080"]
              healthcheck:
                test: ["CMD", "/app", "-health"]
                interval: 1s
                retries: 2
              deploy:
                replicas: 2
                update_config: { order: start-first, failure_action: rollback, monitor: 2s }
          YAML
      - id: deploy
        uses: ./actions/deploy-swarm
        with:
          host: 127.0.0.1
          port: @PORT@
          user: @USER@
          ssh-key: ${{ env.DEPLOY_SSH_KEY }}
          known-hosts: @KNOWN@
          stack: @STACK@
          compose-file: stack.yml
          images: web=@IMAGE@
          sha: @SHA@
          url: @URL@
          verify-timeout: 60s
      - run: echo "got result=${{ steps.deploy.outputs.result }} deployed=${{ steps.deploy.outputs.deployed-sha }}"
`

// TestDeploySwarmActionUnderAct runs actions/deploy-swarm from a workflow
// against this engine in swarm mode, over a real sshd with a pinned host key.
func TestDeploySwarmActionUnderAct(t *testing.T) {
	testenv.Swarm(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: true})
	stack := "ga" + strings.ToLower(strings.ReplaceAll(t.Name(), "Test", ""))[:6]
	ingress := testenv.SwarmIngress(t, stack+"_web", 8080)
	t.Cleanup(func() {
		_ = exec.Command("docker", "stack", "rm", stack).Run()
		if u, err := user.Lookup(sshd.User); err == nil {
			_ = os.RemoveAll(filepath.Join(u.HomeDir, "gantry", stack))
		}
	})
	const sha = "abcdef0123456789abcdef0123456789abcdef01"
	ref, err := name.ParseReference(testenv.AppImage(t, reg.Host, sha, "act"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	image := ref.Context().Digest(desc.Digest.String()).String()
	var key []string
	for _, l := range strings.Split(strings.TrimSpace(string(sshd.ClientKey)), "\n") {
		key = append(key, "    "+l)
	}
	wf := strings.NewReplacer("@KEY@", strings.Join(key, "\n"), "@PORT@", fmt.Sprint(sshd.Port), "@USER@", sshd.User,
		"@KNOWN@", fmt.Sprintf("%q", sshd.KnownHosts), "@STACK@", stack, "@IMAGE@", image, "@SHA@", sha,
		"@URL@", "http://"+ingress+"/health").Replace(swarmWorkflow)
	r := runAct(t, repoCopy(t, wf))
	if !r.OK() {
		t.Fatalf("workflow failed:\n%s", r)
	}
	for _, want := range []string{"got result=success deployed=" + sha, "verified: http://" + ingress + "/health serves " + sha} {
		if !strings.Contains(r.Log, want) {
			t.Errorf("act's log lacks %q:\n%s", want, r)
		}
	}
	if !strings.Contains(r.Summary(), "### ✅ deploy-swarm: success") {
		t.Errorf("no job summary:\n%s", r)
	}
}
