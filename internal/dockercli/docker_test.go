package dockercli

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// TestComposeArgv: docker compose runs as the CLI plugin, or as the
// standalone ComposeBinary with the same arguments, under the deploy's
// DOCKER_CONFIG either way.
func TestComposeArgv(t *testing.T) {
	t.Parallel()
	files := []string{"--project-name", "p", "--project-directory", "/srv/p", "--file", "/srv/p/compose.yml", "--file", "/srv/p/.gantry/override.yml", "--env-file", "/srv/p/.env", "up"}
	tests := []struct {
		name string
		d    Docker
		want []string
	}{
		{"plugin", Docker{}, append([]string{"docker", "compose"}, files...)},
		{"plugin with a login", Docker{ConfigDir: "/tmp/c"}, append([]string{"env", "DOCKER_CONFIG=/tmp/c", "docker", "compose"}, files...)},
		{"standalone", Docker{ComposeBinary: "/opt/docker-compose"}, append([]string{"/opt/docker-compose"}, files...)},
		{"standalone with a login", Docker{ComposeBinary: "/opt/docker-compose", ConfigDir: "/tmp/c"}, append([]string{"env", "DOCKER_CONFIG=/tmp/c", "/opt/docker-compose"}, files...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.Project, tc.d.Dir = "p", "/srv/p"
			if got := tc.d.ComposeArgv("up"); !slices.Equal(got, tc.want) {
				t.Errorf("ComposeArgv(up) = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestComposeBinaryRuns runs the real standalone docker compose through
// ComposeBinary on this machine (config needs no engine), and a missing one
// fails naming its path.
func TestComposeBinaryRuns(t *testing.T) {
	t.Parallel()
	bin := testenv.Compose(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yml"), []byte("services:\n  web:\n    image: demo/web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Docker{H: &remote.Local{}, Project: "p", Dir: dir, NoOverride: true, NoEnvFile: true, ComposeBinary: bin}
	out, err := d.Compose(context.Background(), "config", "--services")
	if err != nil || strings.TrimSpace(string(out)) != "web" {
		t.Fatalf("%s config --services = %q, %v; want web", bin, out, err)
	}
	d.ComposeBinary = filepath.Join(dir, "no-such-docker-compose")
	if _, err = d.Compose(context.Background(), "config", "--services"); err == nil || !strings.Contains(err.Error(), d.ComposeBinary) {
		t.Fatalf("a missing ComposeBinary gave %v, want an error naming it", err)
	}
}
