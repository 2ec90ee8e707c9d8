package compose

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/remote"
)

// TestRestoreFilesExactly: after a failed deploy the project directory holds
// exactly the files it held before (an absent one absent again), over any
// sequence of deploys, and Compose is told which files there are.
func TestRestoreFilesExactly(t *testing.T) {
	t.Parallel()
	files := []string{"compose.yml", ".env", ".gantry/override.yml"}
	tests := []struct {
		name string
		// deploys are the file sets of earlier successful deploys, oldest
		// first; nil is no deploy yet. The failed deploy writes every file.
		deploys []map[string]string
		// wantNoEnv and wantRestored are what Compose is told afterwards.
		wantNoEnv, wantRestored bool
	}{
		{name: "first deploy", wantNoEnv: true},
		{name: "no env file, then a failed deploy", deploys: []map[string]string{{"compose.yml": "v1", ".gantry/override.yml": "o1"}}, wantNoEnv: true, wantRestored: true},
		{name: "a first deploy with an env file, then a failed one", deploys: []map[string]string{{"compose.yml": "v1", ".env": "A=1\n", ".gantry/override.yml": "o1"}}, wantRestored: true},
		// The first deploy's backup recorded .env as absent; a stale marker
		// must not remove the .env the second deploy wrote.
		{name: "two deploys with an env file, then a failed one", deploys: []map[string]string{
			{"compose.yml": "v1", ".env": "A=1\n", ".gantry/override.yml": "o1"},
			{"compose.yml": "v2", ".env": "A=2\n", ".gantry/override.yml": "o2"},
		}, wantRestored: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			h := &remote.Local{}
			write := func(set map[string]string) {
				for _, f := range files {
					p := filepath.Join(dir, f)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if v, ok := set[f]; ok {
						if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
							t.Fatal(err)
						}
					} else if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			}
			// As upload does: the backup directory exists, then the backup runs.
			backup := func() {
				if err := os.MkdirAll(filepath.Join(dir, ".gantry", "previous"), 0o755); err != nil {
					t.Fatal(err)
				}
				if _, err := h.Run(ctx, []string{"sh", "-c", backupScript, "sh", dir}, nil); err != nil {
					t.Fatal(err)
				}
			}
			// Each deploy backs up what was there, then writes its files.
			for _, set := range tc.deploys {
				backup()
				write(set)
			}
			var before map[string]string
			if n := len(tc.deploys); n > 0 {
				before = tc.deploys[n-1]
			}
			backup()
			write(map[string]string{"compose.yml": "broken", ".env": "", ".gantry/override.yml": "broken"})
			dp := &deployer{o: Options{Dir: dir}, h: h, d: &dockercli.Docker{H: h, Dir: dir}, stored: true}
			if err := dp.restoreFiles(ctx, nil); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				data, err := os.ReadFile(filepath.Join(dir, f))
				want, ok := before[f]
				switch {
				case !ok && !os.IsNotExist(err):
					t.Errorf("%s is %q (%v), want it absent as before", f, data, err)
				case ok && (err != nil || string(data) != want):
					t.Errorf("%s is %q (%v), want %q", f, data, err, want)
				}
			}
			if dp.d.NoEnvFile != tc.wantNoEnv || dp.restored != tc.wantRestored {
				t.Errorf("NoEnvFile %v, restored %v; want %v, %v", dp.d.NoEnvFile, dp.restored, tc.wantNoEnv, tc.wantRestored)
			}
		})
	}
}
