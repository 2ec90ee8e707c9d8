package compose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/verify"
)

// recreate updates services the classic way: docker compose up -d, which
// stops the old containers before the new ones serve. For stateful
// singletons; on failure the previous files are restored and brought up.
func (dp *deployer) recreate(ctx context.Context, services []string) error {
	var started []dockercli.Container
	err := dp.step(ctx, "start", func(ctx context.Context) error {
		args := append([]string{"up", "--detach", "--no-deps", "--remove-orphans"}, services...)
		if _, err := dp.d.Compose(ctx, args...); err != nil {
			return err
		}
		for _, s := range services {
			cs, err := dp.d.Containers(ctx, s)
			if err != nil {
				return err
			}
			started = append(started, cs...)
		}
		return dp.waitStarted(ctx, started)
	})
	if err == nil {
		err = dp.step(ctx, "verify", func(ctx context.Context) error {
			verified := 0
			var blind []string
			for _, c := range started {
				if !slices.Contains(dp.o.Services, c.Service) {
					continue
				}
				port := dp.port(c)
				if port == 0 {
					blind = append(blind, c.Name)
					continue
				}
				if err := dp.verifyDirect(ctx, c, port); err != nil {
					return err
				}
				verified++
			}
			if err := dp.verifyPublic(ctx); err != nil {
				return err
			}
			if dp.o.URL != "" {
				verified++
			}
			if len(blind) > 0 {
				what := "the deploy is not verified"
				if verified > 0 {
					what = "those containers are not verified"
				}
				dp.warnPhase(fmt.Sprintf("not verified: %s: no port is known for %s (no gantry.port label, ports or expose in the Compose file, none exposed by the image) and %s; add one, or a url", strings.Join(blind, ", "), plural(len(blind), "it", "them"), what))
			}
			return nil
		})
	}
	if err == nil {
		return nil
	}
	if !dp.o.AutoRollback {
		dp.res.Outcome = history.ResultAbandoned
		return fmt.Errorf("%w; auto-rollback is off, so the failed version was left in place for debugging", err)
	}
	var removed []string
	rerr := dp.step(ctx, "rollback", func(ctx context.Context) error {
		ctx = context.WithoutCancel(ctx)
		if err := dp.restoreFiles(ctx, nil); err != nil {
			return err
		}
		if !dp.restored {
			// A first deploy: no previous version to start again.
			var err error
			removed, err = dp.removeServices(ctx, services)
			return err
		}
		args := append([]string{"up", "--detach", "--no-deps"}, services...)
		_, err := dp.d.Compose(ctx, args...)
		return err
	})
	dp.res.Outcome = history.ResultRolledBack
	if rerr != nil {
		return fmt.Errorf("%w; rolling back also failed: %v", err, rerr)
	}
	if !dp.restored {
		dp.res.Outcome = history.ResultFailed
		return fmt.Errorf("%w; this was the project's first deploy, so its containers were removed (%s)", err, strings.Join(removed, ", "))
	}
	return fmt.Errorf("%w; the previous version was started again", err)
}

// removeServices removes every container of services, and the project's
// default network when nothing uses it any more, after a failed first
// deploy; it returns the names of the containers removed.
func (dp *deployer) removeServices(ctx context.Context, services []string) ([]string, error) {
	var cs []dockercli.Container
	for _, s := range services {
		more, err := dp.d.Containers(ctx, s)
		if err != nil {
			return nil, err
		}
		cs = append(cs, more...)
	}
	if err := dp.d.Remove(ctx, dockercli.IDs(cs)...); err != nil {
		return nil, fmt.Errorf("remove the failed containers: %w", err)
	}
	if left, err := dp.d.Containers(ctx, ""); err == nil && len(left) == 0 {
		// Best effort: a network another container still uses stays.
		_, _ = dp.d.Run(ctx, "network", "rm", dp.o.Project+"_default")
	}
	return dockercli.Names(cs), nil
}

// port is the port a new container is verified on: the Compose file's (label
// gantry.port, ports, expose), else the lowest its image exposes; 0 when
// neither names one.
func (dp *deployer) port(c dockercli.Container) int {
	if p := dp.o.File.Services[c.Service].Port; p != 0 {
		return p
	}
	if len(c.Exposed) == 0 {
		return 0
	}
	dp.o.Logf("%s: no port in the Compose file; verifying on %d, which its image exposes", c.Name, c.Exposed[0])
	return c.Exposed[0]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// waitStarted waits until every container runs (and is healthy, when it has
// a healthcheck), failing as soon as one exits or turns unhealthy.
func (dp *deployer) waitStarted(ctx context.Context, cs []dockercli.Container) error {
	ctx, cancel := context.WithTimeout(ctx, dp.o.StartTimeout)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		now, err := dp.d.Inspect(ctx, dockercli.IDs(cs)...)
		if err != nil {
			return err
		}
		ready := true
		for _, c := range now {
			switch {
			case c.Status == "exited" || c.Status == "dead" || c.Restarting || c.Health == "unhealthy":
				return fmt.Errorf("the new version failed to start: %s", dp.reason(ctx, []dockercli.Container{c}))
			case !c.Running || c.Health == "starting":
				ready = false
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the new containers did not start within %s: %s", dp.o.StartTimeout, dp.reason(ctx, now))
		case <-t.C:
		}
	}
}

// verifyDirect polls one new container at its own address until it serves
// the expected commit.
func (dp *deployer) verifyDirect(ctx context.Context, c dockercli.Container, port int) error {
	if c.IP == "" {
		return fmt.Errorf("container %s has no IP address on the project network", c.Name)
	}
	u := "http://" + net.JoinHostPort(c.IP, strconv.Itoa(port)) + dp.o.HealthPath
	// Only the new container answers at its address: a wrong commit there
	// is certain after a few answers, no need to wait for the timeout.
	res, err := verify.Wait(ctx, verify.Options{
		URL: u, SHA: dp.o.SHA, Client: dp.http, Interval: dp.o.VerifyInterval,
		Timeout: dp.o.VerifyTimeout, Consecutive: dp.o.Consecutive, Logf: dp.o.Logf, OwnAddress: true,
	})
	if err != nil {
		return fmt.Errorf("%s (container %s): %w", c.Service, c.Name, err)
	}
	dp.o.Logf("%s answers %s on %s", c.Name, commit.Short(res.ServedSHA), u)
	return nil
}

// verifyPublic checks the public URL, when one is set.
func (dp *deployer) verifyPublic(ctx context.Context) error {
	if dp.o.URL == "" {
		return nil
	}
	res, err := verify.Wait(ctx, verify.Options{
		URL: dp.o.URL, SHA: dp.o.SHA, Interval: dp.o.VerifyInterval,
		Timeout: dp.o.VerifyTimeout, Consecutive: dp.o.Consecutive, Logf: dp.o.Logf,
	})
	if err != nil {
		return fmt.Errorf("public URL: %w", err)
	}
	dp.o.Logf("%s answers %s", dp.o.URL, commit.Short(res.ServedSHA))
	return nil
}

// runChecks runs the contract checks against one new container.
func (dp *deployer) runChecks(ctx context.Context, c dockercli.Container, port int) error {
	if len(dp.o.Checks) == 0 {
		return nil
	}
	ck := verify.Checker{Client: dp.http, BaseURL: "http://" + net.JoinHostPort(c.IP, strconv.Itoa(port)), Execer: &execer{dp: dp, prefer: c}}
	results := ck.Run(ctx, dp.o.Checks)
	dp.res.Checks = results
	var failed []string
	for _, r := range results {
		if !r.OK() {
			failed = append(failed, r.String())
		}
	}
	if len(failed) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d of %d contract checks failed: %s", len(failed), len(results), failed[0])
	if dp.o.AllowFailure {
		dp.o.Warnf("%s (allow-failure: deploying anyway)", msg)
		dp.res.Warnings = append(dp.res.Warnings, msg)
		return nil
	}
	return errors.New(msg)
}

// execer runs exec checks in a container of the named service, preferring
// the new one.
type execer struct {
	dp     *deployer
	prefer dockercli.Container
}

func (e *execer) Exec(ctx context.Context, service string, argv []string) (string, int, error) {
	id := ""
	if e.prefer.Service == service {
		id = e.prefer.ID
	} else {
		cs, err := e.dp.d.Containers(ctx, service)
		if err != nil {
			return "", 0, err
		}
		for _, c := range cs {
			if c.Running {
				id = c.ID
			}
		}
	}
	if id == "" {
		return "", 0, fmt.Errorf("no running container of service %s", service)
	}
	return e.dp.d.Exec(ctx, id, argv)
}

// edgeClient returns a client for the edge's admin API, starting the edge
// when it is not running. The API listens only inside the edge's container
// (edge.AdminListen); every request goes through docker exec.
func (dp *deployer) edgeClient(ctx context.Context) (*edge.Client, dockercli.Container, error) {
	c, ec, err := dp.startEdge(ctx)
	if errors.Is(err, edge.ErrNoStdioCommand) {
		// The host's copy of the image may predate the command: pull it once.
		dp.o.Logf("the edge image %s on %s has no %s command; pulling it", dp.o.EdgeImage, dp.d.H, edge.StdioCommand)
		if _, perr := dp.d.Compose(ctx, "pull", "--quiet", composefile.EdgeService); perr != nil {
			return nil, dockercli.Container{}, fmt.Errorf("pull the edge image: %w", perr)
		}
		c, ec, err = dp.startEdge(ctx)
	}
	if errors.Is(err, edge.ErrNoStdioCommand) {
		return nil, dockercli.Container{}, fmt.Errorf("input edge-image: %s: %w; use gantry's edge image %s (or one built from edge/ in gantry's repository)", dp.o.EdgeImage, err, edge.DefaultImage)
	}
	if err != nil {
		return nil, dockercli.Container{}, err
	}
	closed, err := c.CloseAdmin(ctx)
	if err != nil {
		return nil, dockercli.Container{}, err
	}
	if closed {
		dp.o.Logf("the edge's admin API listened beyond its container (an edge set up by an older gantry); it now listens on %s inside it only", edge.AdminListen)
	}
	return c, ec, nil
}

// startEdge starts the edge when it is not running and waits briefly for
// its admin API.
func (dp *deployer) startEdge(ctx context.Context) (*edge.Client, dockercli.Container, error) {
	before, err := dp.d.Containers(ctx, composefile.EdgeService)
	if err != nil {
		return nil, dockercli.Container{}, err
	}
	for _, c := range before {
		if c.Running && c.Image != dp.o.EdgeImage {
			// docker compose up will replace this edge: try the new image
			// first, so an image that cannot start leaves it serving.
			if err := dp.tryEdgeImage(ctx); err != nil {
				return nil, dockercli.Container{}, err
			}
			break
		}
	}
	_, upErr := dp.d.Compose(ctx, "up", "--detach", "--no-deps", composefile.EdgeService)
	cs, err := dp.d.Containers(ctx, composefile.EdgeService)
	if err != nil {
		return nil, dockercli.Container{}, errors.Join(upErr, err)
	}
	if err := dp.checkEdgeStarted(ctx, before, cs); err != nil {
		return nil, dockercli.Container{}, err
	}
	if upErr != nil {
		return nil, dockercli.Container{}, fmt.Errorf("start the edge: %w", upErr)
	}
	if len(cs) == 0 || cs[0].IP == "" {
		return nil, dockercli.Container{}, fmt.Errorf("the edge container of project %s has no address on the project's network", dp.o.Project)
	}
	c := edge.ExecClient(dp.d.H, dp.d.Argv(append([]string{"exec", "-i", cs[0].ID}, edge.ExecArgv()...)...))
	// The admin API answers once Caddy is up; wait briefly for it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Detect finds gantry-edge's upstreams module, which an image with
		// the relay command has.
		_, err := c.Detect(ctx)
		if err == nil {
			return c, cs[0], nil
		}
		if errors.Is(err, edge.ErrNoStdioCommand) {
			return nil, dockercli.Container{}, err
		}
		if now, ierr := dp.d.Inspect(ctx, cs[0].ID); ierr == nil {
			if serr := dp.checkEdgeStarted(ctx, before, now); serr != nil {
				return nil, dockercli.Container{}, serr
			}
		}
		if time.Now().After(deadline) {
			return nil, dockercli.Container{}, fmt.Errorf("edge admin API in container %s: %w", cs[0].Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, dockercli.Container{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkEdgeStarted fails when an edge container is not running after
// docker compose up: it removes the containers this deploy created (never
// one that was there before) and names the engine's reason, in one line.
// A running edge that up replaced is marked for a restart with the previous
// files (dp.edgeReplaced).
func (dp *deployer) checkEdgeStarted(ctx context.Context, before, now []dockercli.Container) error {
	var down []dockercli.Container
	for _, c := range now {
		if !c.Running || c.Restarting {
			down = append(down, c)
		}
	}
	if len(down) == 0 {
		return nil
	}
	c := down[0]
	why := edgeReason(c)
	if logs := dp.d.Logs(context.WithoutCancel(ctx), c.ID, 10); logs != "" && c.Status != "created" {
		why += "; last output: " + verify.Text(strings.Join(strings.Fields(lastLines(logs, 5)), " "), 400)
	}
	existed := map[string]bool{}
	for _, b := range before {
		existed[b.ID] = true
	}
	var created []dockercli.Container
	for _, c := range down {
		if !existed[c.ID] {
			created = append(created, c)
		}
	}
	for _, b := range before {
		if b.Running && !slices.Contains(dockercli.IDs(now), b.ID) {
			dp.edgeReplaced = true
		}
	}
	cleanup := ""
	if len(created) > 0 {
		if err := dp.d.Remove(context.WithoutCancel(ctx), dockercli.IDs(created)...); err != nil {
			cleanup = fmt.Sprintf("; removing it also failed: %v", err)
		} else {
			cleanup = "; it was removed"
		}
	}
	return fmt.Errorf("the edge container %s of project %s did not start: %s%s; check edge-image (%s): %s",
		c.Name, dp.o.Project, why, cleanup, dp.o.EdgeImage, edge.ImageHint())
}

// tryEdgeImage runs the edge image's caddy once (caddy version), in a
// container of its own with no network, and fails as checkEdgeStarted does
// when it cannot.
func (dp *deployer) tryEdgeImage(ctx context.Context) error {
	name := dp.o.Project + "-gantry-edge-try"
	// A trial a killed deploy left behind would hold the name.
	_, _ = dp.d.Run(ctx, "rm", "--force", name)
	_, err := dp.d.Run(ctx, "run", "--name", name, "--network", "none", "--entrypoint", "caddy", dp.o.EdgeImage, "version")
	// The container stays when it could not start, even with --rm.
	_, _ = dp.d.Run(context.WithoutCancel(ctx), "rm", "--force", name)
	if err == nil {
		return nil
	}
	// Only an engine error counts: caddy that ran and exited non-zero (a
	// stand-in without "version") started, which is what this checks.
	var ee *remote.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	why := ""
	for _, line := range strings.Split(ee.Stderr, "\n") {
		if _, after, ok := strings.Cut(line, "Error response from daemon: "); ok {
			why = edge.EngineReason(after)
			break
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("the edge of project %s did not start with the new edge-image: %s; the running edge was left as it was; check edge-image (%s): %s",
		dp.o.Project, strings.Join(strings.Fields(why), " "), dp.o.EdgeImage, edge.ImageHint())
}

// edgeReason is the engine's reason a container is not running.
func edgeReason(c dockercli.Container) string {
	msg := edge.EngineReason(c.Error)
	switch {
	case msg != "":
		return msg
	case c.Restarting:
		return fmt.Sprintf("it keeps exiting (exit code %d)", c.ExitCode)
	case c.Status == "exited" || c.Status == "dead":
		return fmt.Sprintf("it exited with code %d", c.ExitCode)
	default:
		return "it is " + c.Status
	}
}
