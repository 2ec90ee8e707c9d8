// Package dockercli runs the docker and docker compose command lines on a
// remote.Host, for the deploy targets that work through the Docker engine
// (Compose and Swarm): fixed argv, a private DOCKER_CONFIG for a deploy's
// registry logins, and the parts of docker inspect a deploy reads.
package dockercli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/remote"
)

// Docker runs docker and docker compose for one project on a host. Every
// command is fixed argv: inputs are arguments, never shell text.
type Docker struct {
	H       remote.Host
	Project string
	// Dir is the project directory on the host.
	Dir string
	// ConfigDir, when set, is a private DOCKER_CONFIG holding the registry
	// login for this deploy only.
	ConfigDir string
	// NoEnvFile and NoOverride leave out the project's .env and gantry's
	// override file, when the files restored after a failure have none.
	NoEnvFile, NoOverride bool
	// ComposeBinary, when set, is a standalone docker compose v2 binary on
	// the host that runs instead of the "docker compose" CLI plugin.
	ComposeBinary string
}

// Paths of gantry's files inside the project directory.
func (d *Docker) composeFile() string  { return path.Join(d.Dir, "compose.yml") }
func (d *Docker) overrideFile() string { return path.Join(d.Dir, ".gantry", "override.yml") }
func (d *Docker) envFile() string      { return path.Join(d.Dir, ".env") }

func (d *Docker) docker(args ...string) []string { return d.command("docker", args...) }

// command is argv for program with args, under this deploy's DOCKER_CONFIG.
func (d *Docker) command(program string, args ...string) []string {
	argv := []string{program}
	if d.ConfigDir != "" {
		argv = []string{"env", "DOCKER_CONFIG=" + d.ConfigDir, program}
	}
	return append(argv, args...)
}

// Compose runs docker compose with the project's files.
func (d *Docker) Compose(ctx context.Context, args ...string) ([]byte, error) {
	return d.H.Run(ctx, d.ComposeArgv(args...), nil)
}

// ComposeArgv is the command line of docker compose with the project's files
// and args: the CLI plugin, or ComposeBinary when set.
func (d *Docker) ComposeArgv(args ...string) []string {
	project := []string{"--project-name", d.Project, "--project-directory", d.Dir, "--file", d.composeFile()}
	argv := d.docker(append([]string{"compose"}, project...)...)
	if d.ComposeBinary != "" {
		argv = d.command(d.ComposeBinary, project...)
	}
	if !d.NoOverride {
		argv = append(argv, "--file", d.overrideFile())
	}
	if !d.NoEnvFile {
		argv = append(argv, "--env-file", d.envFile())
	}
	return append(argv, args...)
}

// Run runs docker with args.
func (d *Docker) Run(ctx context.Context, args ...string) ([]byte, error) {
	return d.H.Run(ctx, d.docker(args...), nil)
}

// Login logs in to registry for this deploy's pulls; the password goes on
// stdin, never on a command line.
func (d *Docker) Login(ctx context.Context, registry, user string, password io.Reader) error {
	_, err := d.H.Run(ctx, d.docker("login", "--username", user, "--password-stdin", registry), password)
	return err
}

// Login is a registry to log in to before pulling; the password never
// reaches a command line.
type Login struct {
	Registry, Username, Password string
}

// Container is the part of `docker inspect` a deploy reads.
type Container struct {
	ID      string
	Name    string
	Service string
	Number  int
	Image   string // as configured, e.g. repo@sha256:...
	Status  string // created, running, exited, ...
	Running bool
	// ExitCode and Error are set once the container has stopped.
	ExitCode int
	Error    string
	// Health is "", starting, healthy or unhealthy.
	Health     string
	StartedAt  time.Time
	IP         string // address on the project's network
	Restarting bool
	// Exposed are the TCP ports the container exposes (its image's EXPOSE
	// and the Compose file's expose), lowest first.
	Exposed []int
}

type inspectJSON struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Config struct {
		Image        string              `json:"Image"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	} `json:"Config"`
	State struct {
		Status     string `json:"Status"`
		Running    bool   `json:"Running"`
		Restarting bool   `json:"Restarting"`
		ExitCode   int    `json:"ExitCode"`
		Error      string `json:"Error"`
		StartedAt  string `json:"StartedAt"`
		Health     *struct {
			Status string `json:"Status"`
		} `json:"Health"`
	} `json:"State"`
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress string `json:"IPAddress"`
		} `json:"Networks"`
	} `json:"NetworkSettings"`
}

// Containers returns the project's containers of service (all services when
// empty), running or not, ordered by container number.
func (d *Docker) Containers(ctx context.Context, service string) ([]Container, error) {
	args := []string{"ps", "--all", "--quiet", "--no-trunc", "--filter", "label=com.docker.compose.project=" + d.Project}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	out, err := d.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	return d.Inspect(ctx, strings.Fields(string(out))...)
}

// Inspect reads containers by ID.
func (d *Docker) Inspect(ctx context.Context, ids ...string) ([]Container, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := d.Run(ctx, append([]string{"inspect", "--type", "container"}, ids...)...)
	if err != nil {
		return nil, err
	}
	var raw []inspectJSON
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("docker inspect on %s: %w", d.H, err)
	}
	cs := make([]Container, 0, len(raw))
	for _, r := range raw {
		c := Container{
			ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"),
			Service: r.Config.Labels["com.docker.compose.service"],
			Image:   r.Config.Image, Status: r.State.Status, Running: r.State.Running, Restarting: r.State.Restarting,
			ExitCode: r.State.ExitCode, Error: r.State.Error,
		}
		c.Number, _ = strconv.Atoi(r.Config.Labels["com.docker.compose.container-number"])
		for p := range r.Config.ExposedPorts {
			n, proto, _ := strings.Cut(p, "/")
			if port, err := strconv.Atoi(n); err == nil && port > 0 && (proto == "" || proto == "tcp") {
				c.Exposed = append(c.Exposed, port)
			}
		}
		sort.Ints(c.Exposed)
		if r.State.Health != nil {
			c.Health = r.State.Health.Status
		}
		c.StartedAt, _ = time.Parse(time.RFC3339Nano, r.State.StartedAt)
		if n, ok := r.NetworkSettings.Networks[d.Project+"_default"]; ok {
			c.IP = n.IPAddress
		} else {
			for _, n := range r.NetworkSettings.Networks {
				if n.IPAddress != "" {
					c.IP = n.IPAddress
					break
				}
			}
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Number < cs[j].Number })
	return cs, nil
}

// logsScript prints a container's last lines, stdout and stderr together.
const logsScript = `docker logs --tail "$2" "$1" 2>&1`

// Logs returns the last n lines a container printed.
func (d *Docker) Logs(ctx context.Context, id string, n int) string {
	argv := []string{"sh", "-c", logsScript, "sh", id, strconv.Itoa(n)}
	if d.ConfigDir != "" {
		argv = append([]string{"env", "DOCKER_CONFIG=" + d.ConfigDir}, argv...)
	}
	out, err := d.H.Run(ctx, argv, nil)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// Stop stops containers, giving each timeout to finish in-flight requests.
func (d *Docker) Stop(ctx context.Context, timeout time.Duration, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := d.Run(ctx, append([]string{"stop", "--time", strconv.Itoa(int(timeout.Seconds()))}, ids...)...)
	return err
}

// Remove force-removes containers.
func (d *Docker) Remove(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := d.Run(ctx, append([]string{"rm", "--force"}, ids...)...)
	return err
}

// Exec runs argv in a container and returns its output and exit code.
func (d *Docker) Exec(ctx context.Context, id string, argv []string) (string, int, error) {
	out, err := d.Run(ctx, append([]string{"exec", id}, argv...)...)
	if ee, ok := err.(*remote.ExitError); ok {
		return string(out) + ee.Stderr, ee.Code, nil
	}
	return string(out), 0, err
}

// IDs returns the containers' IDs.
func IDs(cs []Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// Names returns the containers' names.
func Names(cs []Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

// Argv is the argv of docker with args, with this deploy's private DOCKER_CONFIG.
func (d *Docker) Argv(args ...string) []string { return d.docker(args...) }
