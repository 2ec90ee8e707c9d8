package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/ghdeploy"
	"github.com/gantry-dev/gantry/internal/githubapi"
)

// snapshotDir records every file and directory under dir with its mode, time and content, so
// that a test sees any change: a lock taken and released still changes its parent's time.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d", info.Mode(), info.ModTime().UnixNano())
		if !d.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(data)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRollbackRefusesPlantedGitHubDeployment: a Compose host whose history has no previous deploy
// rolls back to the last successful GitHub Deployment only when its payload's images are the
// target's own repositories pinned by digest. A planted one is refused with nothing on the host
// touched; a legitimate one still rolls back, recorded as the one who runs the rollback.
func TestRollbackRefusesPlantedGitHubDeployment(t *testing.T) {
	h := startComposeHost(t)
	workspace(t, map[string]string{"compose.yml": appCompose})
	v1, v2 := h.app(t, sha1, "v1"), h.app(t, sha2, "v2")
	// The host's history knows only v2: rollback --to previous asks GitHub.
	if r := h.deploy(t, sha2, v2); r.code != 0 {
		t.Fatalf("deploy v2: exit %d\n%s", r.code, r.log)
	}
	gh := githubfake.Start(t, githubfake.Options{})
	client, err := githubapi.NewClient(gh.APIURL(), gh.APIToken(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &ghdeploy.Recorder{Client: client, Owner: "gantry-dev", Repo: "app"}
	ctx := context.Background()
	// plant records, in environment env, a successful deploy of sha1 with images (claimed by
	// mallory), then the serving one of sha2.
	plant := func(env string, images map[string]string) int64 {
		d := rec.Start(ctx, ghdeploy.Deploy{Environment: env, SHA: sha1, Actor: "mallory", Images: images})
		d.Finish(ctx, true, "", "")
		rec.Start(ctx, ghdeploy.Deploy{Environment: env, SHA: sha2, Actor: "tester", Images: map[string]string{"web": v2}}).Finish(ctx, true, "", "")
		return d.ID()
	}
	u, err := user.Lookup(h.sshd.User)
	if err != nil {
		t.Fatal(err)
	}
	projectDir := filepath.Join(u.HomeDir, "gantry", h.project)
	repo, _, _ := strings.Cut(v1, "@")
	rollback := func(env string, vars map[string]string) run {
		for k, v := range gh.Env() {
			vars[k] = v
		}
		return runCLI(t, vars, nil, "rollback",
			"--host", h.sshd.Host, "--port", fmt.Sprint(h.sshd.Port), "--user", h.sshd.User,
			"--ssh-key", string(h.sshd.ClientKey), "--known-hosts", h.sshd.KnownHosts,
			"--project", h.project, "--edge-image", h.edge, "--edge-ports", fmt.Sprintf("127.0.0.1:%d:80", h.edgePort),
			"--url", h.url(), "--drain", "5s", "--stop-timeout", "5s",
			"--github-token", gh.APIToken(), "--github-environment", env)
	}

	for i, tc := range []struct {
		name   string
		images map[string]string
		want   string
	}{
		{"another repository by tag", map[string]string{"web": "attacker.example/evil:latest"}, `its payload's image for service web, "attacker.example/evil:latest", is not pinned by digest`},
		{"the target's repository by tag", map[string]string{"web": repo + ":v1"}, "is not pinned by digest"},
		{"another repository by digest", map[string]string{"web": "attacker.example/evil@sha256:" + strings.Repeat("e", 64)}, "is from repository attacker.example/evil, which the target does not use"},
		{"a service not in the file", map[string]string{"web": v1, "miner": v1}, `names service "miner", which is not in the target's Compose file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := fmt.Sprintf("planted-%d", i)
			id := plant(env, tc.images)
			before := snapshotDir(t, projectDir)
			r := rollback(env, map[string]string{"GITHUB_ACTOR": "tester"})
			head := fmt.Sprintf("GitHub Deployment %d (commit 1111111) refused: ", id)
			if r.code != 1 || !strings.Contains(r.log, head) || !strings.Contains(r.log, tc.want) {
				t.Fatalf("exit %d, want 1 and %q … %q\n%s", r.code, head, tc.want, r.log)
			}
			if strings.Contains(r.log, "mallory") {
				t.Errorf("the payload's actor is shown:\n%s", r.log)
			}
			after := snapshotDir(t, projectDir)
			for p, v := range before {
				if after[p] != v {
					t.Errorf("%s changed on the host", p)
				}
			}
			for p := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("%s appeared on the host", p)
				}
			}
			if imgs := h.images(t, "web"); len(imgs) != 1 || imgs[0] != v2 || h.served(t) != sha2 {
				t.Errorf("containers %q serving %s, want v2 alone", imgs, h.served(t))
			}
		})
	}

	// The target's repository pinned by digest is what a real deploy recorded: it rolls back.
	plant("legit", map[string]string{"web": v1})
	r := rollback("legit", map[string]string{})
	if r.code != 0 || h.served(t) != sha1 || r.outputs["deployed-sha"] != sha1 {
		t.Fatalf("legitimate rollback: exit %d, serving %s\n%s", r.code, h.served(t), r.log)
	}
	// Without GITHUB_ACTOR the OS user runs it, never the payload's actor, never "someone".
	data, err := os.ReadFile(filepath.Join(projectDir, ".gantry", "history.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var last struct {
		Actor    string `json:"actor"`
		Rollback bool   `json:"rollback"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || !last.Rollback || last.Actor == "" || last.Actor == "mallory" || last.Actor == "someone" {
		t.Errorf("history entry of the rollback: %+v, %v", last, err)
	}
	if strings.Contains(r.log, "mallory") || !strings.Contains(r.log, last.Actor+" rolls back project "+h.project+" to 1111111 (GitHub Deployment ") {
		t.Errorf("the log does not name %s as the one rolling back:\n%s", last.Actor, r.log)
	}
}
