package cli

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// recreateCompose is a recreate service published on port, with no env-file
// anywhere; expose adds its port to the file.
func recreateCompose(port int, expose bool) string {
	s := "services:\n  web:\n    image: placeholder.invalid/web\n    ports: [\"127.0.0.1:" + fmt.Sprint(port) + ":8080\"]\n"
	if !expose {
		s = "services:\n  web:\n    image: placeholder.invalid/web\n"
	}
	return s
}

// TestDeployComposeRollbackWithoutEnvFile: a failed deploy without an
// env-file rolls back, by recreate and through the edge, on a first deploy
// (its containers removed) and on a later one (the previous version serves
// again), with the files on the host exactly as before the failed deploy.
func TestDeployComposeRollbackWithoutEnvFile(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		first    bool
		// want is in the summary; result is the result output.
		want, result string
	}{
		{"recreate", true, "this was the project's first deploy, so its containers were removed", "failed"},
		{"recreate", false, "the previous version was started again", "rolled-back"},
		{"blue-green", true, "failed to start", "failed"},
		{"blue-green", false, "the previous version kept serving", "failed"},
	} {
		name := tc.strategy + " later deploy"
		if tc.first {
			name = tc.strategy + " first deploy"
		}
		t.Run(name, func(t *testing.T) {
			h := startComposeHost(t)
			compose := appCompose
			if tc.strategy == "recreate" {
				compose = recreateCompose(h.edgePort, true)
			}
			workspace(t, map[string]string{"compose.yml": compose})
			crash, _ := testenv.BuildImage(t, h.reg.Host, "gantry-test/crash", "v1", map[string][]byte{"/bin/app": []byte("not an executable program")}, []string{"/bin/app"}, nil)
			v1 := h.app(t, sha1, "v1")
			u, _ := user.Lookup(h.sshd.User)
			dir := filepath.Join(u.HomeDir, "gantry", h.project)
			var before map[string]string
			if !tc.first {
				if r := h.deploy(t, sha1, v1, "--strategy", tc.strategy); r.code != 0 || h.served(t) != sha1 {
					t.Fatalf("first deploy: exit %d\n%s", r.code, r.log)
				}
				before = projectFiles(t, dir)
			}
			r := h.deploy(t, sha2, digestRef(t, crash), "--strategy", tc.strategy, "--start-timeout", "20s")
			if r.code != 1 || strings.Contains(r.log, "rolling back also failed") || !strings.Contains(r.log, "failed to start") {
				t.Fatalf("failed deploy: exit %d\n%s", r.code, r.log)
			}
			if !strings.Contains(r.summary, tc.want) || r.outputs["result"] != tc.result {
				t.Errorf("summary lacks %q or result %q is not %s:\n%s", tc.want, r.outputs["result"], tc.result, r.summary)
			}
			if after := projectFiles(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("files after the rollback differ:\nbefore %v\nafter  %v", before, after)
			}
			imgs := h.images(t, "web")
			if tc.first {
				if len(imgs) != 0 {
					t.Errorf("containers left after a failed first deploy: %q", imgs)
				}
				return
			}
			if got := h.served(t); got != sha1 {
				t.Errorf("serving %s after the rollback, want %s", got, sha1)
			}
			if len(imgs) != 1 || imgs[0] != v1 {
				t.Errorf("containers %q, want the v1 one alone", imgs)
			}
		})
	}
}

// projectFiles are the files gantry deploys from in a project directory
// (compose.yml, .env, the override), with their content; absent ones are left out.
func projectFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"compose.yml", ".env", ".gantry/override.yml"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(data)
	}
	return out
}

// TestDeployComposeRecreatePortFromImage: a recreate service whose port the
// Compose file does not name is verified on the port its image exposes (a
// wrong commit is caught); with no port anywhere and no url the timeline
// and the summary say "not verified", with a warning, never a green verify.
func TestDeployComposeRecreatePortFromImage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		image   func(h *composeHost) string
		sha     string
		code    int
		want    []string // in the log
		verify  string   // the verify row of the timeline starts with this result
		warning bool
	}{
		{name: "the image's port verifies the commit", image: func(h *composeHost) string { return h.app(t, sha1, "v1") }, sha: sha1,
			want: []string{"no port in the Compose file; verifying on 8080, which its image exposes"}, verify: "✅"},
		{name: "the image's port catches a wrong commit", image: func(h *composeHost) string { return h.app(t, sha1, "v1") }, sha: sha2, code: 1,
			want: []string{"serves 1111111", "not 2222222"}, verify: "❌"},
		{name: "no port anywhere: not verified", image: func(h *composeHost) string {
			return digestRef(t, testenv.AppImageExposing(t, h.reg.Host, sha1, "v1-no-port"))
		}, sha: sha1, want: []string{"::warning", "not verified: "}, verify: "⚠️ not verified", warning: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startComposeHost(t)
			workspace(t, map[string]string{"compose.yml": recreateCompose(h.edgePort, false)})
			r := h.deploy(t, tc.sha, tc.image(h), "--strategy", "recreate", "--url", "", "--verify-timeout", "10s")
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r.log)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.log, w) {
					t.Errorf("log lacks %q:\n%s", w, r.log)
				}
			}
			row := ""
			for _, line := range strings.Split(r.summary, "\n") {
				if strings.HasPrefix(line, "| verify |") {
					row = line
				}
			}
			cells := strings.Split(row, "|")
			if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[3]), tc.verify) {
				t.Errorf("timeline's verify row %q, want %s:\n%s", row, tc.verify, r.summary)
			}
			if got := strings.Contains(r.summary, "\n⚠️ not verified"); got != tc.warning {
				t.Errorf("summary warns not verified: %v, want %v:\n%s", got, tc.warning, r.summary)
			}
		})
	}
}
