package testenv

import (
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-dev/gantry/internal/loadtest/k6run"
)

// How the peers below are installed; scripts/tools.sh pins each version.
const (
	ComposeInstall = "scripts/tools.sh (builds github.com/docker/compose/v2@v2.40.3 into .bin/docker-compose, and installs it as the Docker CLI plugin where none is)"
	K6Install      = "scripts/tools.sh (builds go.k6.io/k6/v2@v" + k6run.DefaultVersion + " into .bin/k6)"
	K6V1Install    = "scripts/tools.sh (builds go.k6.io/k6@v1.8.1 into .bin/k6-v1)"
	CaddyInstall   = "scripts/tools.sh (builds edge/cmd/gantry-edge, Caddy v2.11.9 with gantry's upstreams module, as .bin/caddy)"
)

// composeChecked remembers, per version command, the check's failure (""
// when it passed), so each test process runs it once.
var composeChecked sync.Map

// Compose requires docker compose v2 both as the Docker CLI plugin ("docker
// compose", which a deploy runs on its host) and as the standalone binary,
// whose path it returns (GANTRY_COMPOSE_BIN overrides it); both take the
// same arguments. Debian's Python docker-compose 1.x does not count.
func Compose(t testing.TB) string {
	t.Helper()
	bin := Tool(t, "docker-compose", "GANTRY_COMPOSE_BIN", ComposeInstall)
	if _, err := exec.LookPath("docker"); err != nil {
		Missing(t, "the docker CLI (for the docker compose plugin)", "apt-get install docker.io")
	}
	for _, cmd := range [][]string{{bin, "version", "--short"}, {"docker", "compose", "version", "--short"}} {
		key := strings.Join(cmd, " ")
		v, ok := composeChecked.Load(key)
		if !ok {
			out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput()
			short := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
			switch {
			case err != nil:
				v = "docker compose v2 (" + key + ": " + err.Error() + ": " + strings.TrimSpace(string(out)) + ")"
			case !strings.HasPrefix(short, "2."):
				v = "docker compose v2 (" + key + " says " + short + ")"
			default:
				v = ""
			}
			composeChecked.Store(key, v)
		}
		if v != "" {
			Missing(t, v.(string), ComposeInstall)
		}
	}
	return bin
}

// K6 returns the path of the default pinned k6, the newest major (see
// K6Of). Run it with K6_NO_USAGE_REPORT=true.
func K6(t testing.TB) string {
	t.Helper()
	return K6Of(t, K6Majors[0]).Path
}

// Caddy returns the path of the pinned, statically linked caddy
// (GANTRY_CADDY_BIN overrides it).
func Caddy(t testing.TB) string {
	t.Helper()
	return Tool(t, "caddy", "GANTRY_CADDY_BIN", CaddyInstall)
}
