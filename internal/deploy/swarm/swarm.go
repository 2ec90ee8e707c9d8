// Package swarm deploys a stack to a Docker Swarm manager over SSH: the
// Compose file validated locally, images pinned by digest, `docker stack
// deploy` run on the manager, then every updated service watched until Swarm
// reports its update completed. A rollback, a pause or a task that keeps
// failing is a failed deploy with the tasks' errors, never a success.
//
// The stack is deployed with the docker CLI on the manager, not by
// converting the Compose file to service specs here: that conversion
// (networks, configs, secrets, ports, update and restart policies) exists only
// in the docker CLI, and running it there deploys exactly what `docker stack
// deploy` would. The watch reads the Engine API's own JSON (docker service
// inspect, docker inspect of tasks) into github.com/moby/moby/api types.
package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	mswarm "github.com/moby/moby/api/types/swarm"

	"github.com/gantry-dev/gantry/internal/clock"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/onhost"
	"github.com/gantry-dev/gantry/internal/remote"
)

// Defaults.
const (
	DefaultTimeout      = 10 * time.Minute
	DefaultPollInterval = time.Second
)

// Options is one stack deploy.
type Options struct {
	Stack string
	// Dir is the stack's directory on the manager (relative paths are under
	// the SSH user's home): the files, the lock and the history.
	Dir     string
	File    *composefile.File
	EnvFile []byte
	// Images pins services to images: service → repo@digest.
	Images map[string]string
	// Services are the services watched; default: those in Images, else all.
	Services []string
	SHA      string
	Logins   []dockercli.Login
	Prune    bool
	// Update overrides the file's deploy.update_config of the deployed services.
	Update UpdateConfig
	// Scale sets services' replicas (deploy.replicas), service → count.
	Scale map[string]uint64

	Timeout, PollInterval time.Duration
	// URL is verified to serve SHA once every service converged.
	URL    string
	Verify func(ctx context.Context, url string) error
	// AutoRollback rolls back the services Swarm left updated or paused
	// after a failure (Swarm's own failure_action: rollback does it first).
	AutoRollback bool
	Rollback     bool // this deploy is a rollback

	// Strategy is Rolling, BlueGreen or Canary; default BlueGreen when the
	// file has services labelled gantry.edge, else Rolling.
	Strategy string
	// EdgeImage and EdgePorts ("80:80") are the edge proxy's; empty keeps
	// those of the running edge.
	EdgeImage string
	EdgePorts []string
	// CanarySteps are rising traffic percentages; CanaryInterval is the
	// probing time at each, failing above CanaryMaxErrorRate.
	CanarySteps        []int
	CanaryInterval     time.Duration
	CanaryMaxErrorRate float64
	// HealthPath is where a new task is verified (DefaultHealthPath).
	HealthPath string
	// Drain bounds the wait for requests in flight on the old color.
	Drain time.Duration
	// VerifyTimeout bounds the wait for each new task to report SHA.
	VerifyTimeout time.Duration

	Lock  lock.Options
	Who   lock.Info
	Clock clock.Clock
	Logf  func(string, ...any)
	Warnf func(string, ...any)
}

// UpdateConfig is a rolling update's settings, as in a Compose file's
// deploy.update_config; zero values keep the file's.
type UpdateConfig struct {
	Parallelism   *int
	Order         string // start-first or stop-first
	Delay         time.Duration
	Monitor       time.Duration
	FailureAction string // rollback, pause or continue
}

func (u UpdateConfig) compose() map[string]any {
	m := map[string]any{}
	if u.Parallelism != nil {
		m["parallelism"] = *u.Parallelism
	}
	if u.Order != "" {
		m["order"] = u.Order
	}
	if u.Delay > 0 {
		m["delay"] = u.Delay.String()
	}
	if u.Monitor > 0 {
		m["monitor"] = u.Monitor.String()
	}
	if u.FailureAction != "" {
		m["failure_action"] = u.FailureAction
	}
	return m
}

// override pins the images and sets the update settings of the deployed
// services, as JSON (which is YAML); no user text is spliced in by hand.
func (o Options) override() ([]byte, error) {
	services := map[string]any{}
	uc := o.Update.compose()
	names := append([]string{}, o.Services...)
	for name := range o.Scale {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		if o.usesEdge() && o.File != nil && o.File.Services[name].Edge {
			continue // rendered into the stack file as its colors
		}
		svc := map[string]any{}
		if img, ok := o.Images[name]; ok {
			svc["image"] = img
		}
		deploy := map[string]any{}
		if len(uc) > 0 && slices.Contains(o.Services, name) {
			deploy["update_config"] = uc
		}
		if n, ok := o.Scale[name]; ok {
			deploy["replicas"] = n
		}
		if len(deploy) > 0 {
			svc["deploy"] = deploy
		}
		if len(svc) > 0 {
			services[name] = svc
		}
	}
	return json.MarshalIndent(map[string]any{"services": services}, "", "  ")
}

// ServiceResult is what happened to one service.
type ServiceResult struct {
	Name                    string // the service's name in the stack (web)
	Image                   string
	ReplicasBefore, Desired uint64
	Running                 uint64
	State                   string // completed, created, unchanged, paused, rollback_completed, ...
	Message                 string
	Errors                  []string // task errors, newest first
}

// Result is what a deploy did, filled in even when it failed.
type Result struct {
	Outcome     string
	Strategy    string // Rolling, BlueGreen or Canary
	PreviousSHA string
	Services    []ServiceResult
	Phases      []history.Phase
	Warnings    []string
	Verified    bool
}

type deployer struct {
	o       Options
	h       remote.Host
	d       *dockercli.Docker
	res     *Result
	steps   deploy.Steps               // times the steps into res.Phases
	before  map[string]*mswarm.Service // full name → service before the deploy
	updated []string                   // full names of services that changed
	seen    map[string]string          // task ID → last state logged
	// since is the engine's clock when the operation began: task errors
	// older than that are an earlier operation's and are not reported.
	since time.Time
	// objects are the stack's networks, configs and secrets before the
	// deploy ("network NAME"), so a rollback can remove those it created.
	objects map[string]bool
	// waitStopped: converged only once the tasks Swarm is stopping are gone
	// (a scale down is done when the surplus replicas have stopped).
	waitStopped bool

	// Edge strategies only.
	stack  []byte            // the rendered stack file
	routed map[string]string // edge service → color the edge sends it to
	http   *http.Client      // dials from the manager
}

// Deploy runs one stack deploy on the manager h.
func Deploy(ctx context.Context, h remote.Host, o Options) (*Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	if len(o.Services) == 0 {
		for s := range o.Images {
			o.Services = append(o.Services, s)
		}
		if len(o.Services) == 0 && o.File != nil {
			o.Services = o.File.Names()
		}
		sort.Strings(o.Services)
	}
	if o.Strategy == "" {
		o.Strategy = Rolling
		if len(o.edgeServices()) > 0 {
			o.Strategy = BlueGreen
		}
	}
	dp := &deployer{o: o, h: h, d: &dockercli.Docker{H: h, Project: o.Stack, Dir: o.Dir}, res: &Result{Strategy: o.Strategy}, seen: map[string]string{}, routed: map[string]string{}}
	dp.steps = deploy.Steps{Phases: &dp.res.Phases, Logf: o.Logf}
	started := time.Now().UTC()
	sess, ctx, err := onhost.Start(ctx, h, onhost.Options{
		Scope: lock.SwarmStack(o.Stack), Lock: o.Lock, Who: o.Who,
		HistoryPath: dp.historyPath(), Steps: &dp.steps, Logf: o.Logf, Warnf: o.Warnf,
	})
	if err != nil {
		dp.res.Outcome = deploy.Failed
		return dp.res, err
	}
	if sess.Current != nil {
		dp.res.PreviousSHA = sess.Current.SHA
	}

	err = dp.run(ctx)
	if dp.d.ConfigDir != "" {
		if _, cerr := h.Run(sess.Cleanup, []string{"rm", "-rf", dp.d.ConfigDir}, nil); cerr != nil {
			dp.warn("removing the registry login: %v", cerr)
		}
	}
	dp.res.Outcome = deploy.Outcome(err, dp.res.Outcome)
	err = sess.Finish(ctx, history.Entry{
		Project: o.Stack, SHA: o.SHA, Images: o.Images,
		Actor: o.Who.Actor, Reason: o.Who.Reason, RunURL: o.Who.RunURL, Strategy: "swarm-" + o.Strategy,
		Result: dp.res.Outcome, PreviousSHA: dp.res.PreviousSHA, Rollback: o.Rollback,
		Started: started, Phases: dp.res.Phases,
	}, err)
	return dp.res, err
}

func (dp *deployer) historyPath() string { return history.PathIn(dp.o.Dir) }

func (dp *deployer) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	dp.res.Warnings = append(dp.res.Warnings, msg)
	dp.o.Warnf("%s", msg)
}

// step runs fn as a named, timed phase of the timeline.
func (dp *deployer) step(ctx context.Context, name string, fn func(context.Context) error) error {
	return dp.steps.Run(ctx, name, fn)
}

func (dp *deployer) full(svc string) string { return dp.o.Stack + "_" + svc }

func (dp *deployer) run(ctx context.Context) error {
	o := dp.o
	if o.usesEdge() {
		return dp.runEdge(ctx)
	}
	for _, s := range o.Services {
		if sv, ok := o.File.Services[s]; ok && !sv.HasHealthcheck {
			dp.warn("service %s has no healthcheck in %s (an image HEALTHCHECK still counts): Swarm then treats a task as ready once it runs, so start-first is not health-gated", s, o.File.Path)
		}
	}
	if err := dp.step(ctx, "upload", dp.upload); err != nil {
		return err
	}
	if err := dp.step(ctx, "inspect", dp.snapshot); err != nil {
		return err
	}
	if err := dp.step(ctx, "stack deploy", dp.deploy); err != nil {
		return err
	}
	werr := dp.step(ctx, "converge", dp.watch)
	if werr == nil && o.URL != "" && o.Verify != nil {
		werr = dp.step(ctx, "verify", func(ctx context.Context) error { return o.Verify(ctx, o.URL) })
		dp.res.Verified = werr == nil
	}
	if werr == nil {
		return nil
	}
	return dp.recover(ctx, werr)
}

// stackFiles are the files of the stack directory.
func (dp *deployer) composePath() string  { return path.Join(dp.o.Dir, "compose.yml") }
func (dp *deployer) overridePath() string { return path.Join(dp.o.Dir, ".gantry", "override.yml") }
func (dp *deployer) envPath() string      { return path.Join(dp.o.Dir, ".env") }

func (dp *deployer) upload(ctx context.Context) error {
	o := dp.o
	if _, err := dp.h.Run(ctx, []string{"mkdir", "-p", path.Join(o.Dir, ".gantry")}, nil); err != nil {
		return err
	}
	override, err := o.override()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		p    string
		data []byte
		mode os.FileMode
	}{{dp.composePath(), o.File.Data, 0o644}, {dp.overridePath(), override, 0o644}, {dp.envPath(), o.EnvFile, 0o600}, {dp.stackPath(), dp.stack, 0o644}} {
		if f.p == dp.stackPath() && dp.stack == nil {
			continue
		}
		if err := remote.WriteFile(ctx, dp.h, f.p, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// snapshot records the stack's services, networks, configs and secrets as
// they were, and the engine's clock.
func (dp *deployer) snapshot(ctx context.Context) error {
	out, err := dp.read(ctx, "info", "--format", "{{json .SystemTime}}")
	if err != nil {
		return fmt.Errorf("reading the manager's clock: %w", err)
	}
	var now string
	if err := json.Unmarshal(out, &now); err != nil {
		return fmt.Errorf("reading the manager's clock from docker info (%q): %w", strings.TrimSpace(string(out)), err)
	}
	if dp.since, err = time.Parse(time.RFC3339Nano, now); err != nil {
		return fmt.Errorf("reading the manager's clock from docker info: %w", err)
	}
	svcs, err := dp.inspect(ctx)
	if err != nil {
		return err
	}
	dp.before = svcs
	if !dp.waitStopped { // a scale creates no objects
		if dp.objects, err = dp.stackObjects(ctx); err != nil {
			return err
		}
	}
	return nil
}

// objectKinds are what a stack deploy creates besides services, in the order
// they can be removed once no service uses them.
var objectKinds = []string{"network", "config", "secret"}

// stackObjects lists the stack's networks, configs and secrets as "KIND NAME".
func (dp *deployer) stackObjects(ctx context.Context) (map[string]bool, error) {
	objs := map[string]bool{}
	for _, kind := range objectKinds {
		out, err := dp.read(ctx, kind, "ls", "--filter", "label=com.docker.stack.namespace="+dp.o.Stack, "--format", "{{.Name}}")
		if err != nil {
			return nil, fmt.Errorf("listing the stack's %ss: %w", kind, err)
		}
		for _, name := range strings.Fields(string(out)) {
			objs[kind+" "+name] = true
		}
	}
	return objs, nil
}

// read runs a docker command that changes nothing, again after a lost
// connection (the host reconnects), so a cut mid-watch does not end the watch.
func (dp *deployer) read(ctx context.Context, args ...string) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		out, err := dp.d.Run(ctx, args...)
		if err == nil || !errors.Is(err, remote.ErrConnectionLost) || attempt == 3 || ctx.Err() != nil {
			return out, err
		}
		dp.o.Warnf("%v; reading again", err)
	}
}

// inspect reads the stack's services, keyed by full name.
func (dp *deployer) inspect(ctx context.Context) (map[string]*mswarm.Service, error) {
	out, err := dp.read(ctx, "service", "ls", "--quiet", "--filter", "label=com.docker.stack.namespace="+dp.o.Stack)
	if err != nil {
		return nil, fmt.Errorf("listing the stack's services: %w", err)
	}
	ids := strings.Fields(string(out))
	res := map[string]*mswarm.Service{}
	if len(ids) == 0 {
		return res, nil
	}
	out, err = dp.read(ctx, append([]string{"service", "inspect"}, ids...)...)
	if err != nil {
		return nil, fmt.Errorf("inspecting the stack's services: %w", err)
	}
	var svcs []mswarm.Service
	if err := json.Unmarshal(out, &svcs); err != nil {
		return nil, fmt.Errorf("reading docker service inspect: %w", err)
	}
	for i := range svcs {
		res[svcs[i].Spec.Name] = &svcs[i]
	}
	return res, nil
}

// envScript exports each KEY=VALUE line of the env file, then runs the rest of
// argv: docker stack deploy reads variables only from its environment. Each
// line is data for `export`, never shell code.
const envScript = `f="$1"; shift
if [ -f "$f" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    export "$line"
  done < "$f"
fi
exec "$@"`

func (dp *deployer) deploy(ctx context.Context) error {
	o := dp.o
	if len(o.Logins) > 0 {
		out, err := dp.h.Run(ctx, []string{"mktemp", "-d"}, nil)
		if err != nil {
			return err
		}
		dp.d.ConfigDir = strings.TrimSpace(string(out))
		for _, l := range o.Logins {
			if err := dp.d.Login(ctx, l.Registry, l.Username, strings.NewReader(l.Password)); err != nil {
				return fmt.Errorf("docker login %s on %s: %w", l.Registry, dp.h, err)
			}
		}
	}
	file := dp.composePath()
	if dp.stack != nil {
		file = dp.stackPath()
	}
	args := []string{"stack", "deploy", "--with-registry-auth", "--compose-file", file, "--compose-file", dp.overridePath()}
	if o.Prune {
		args = append(args, "--prune")
	}
	argv := append([]string{"sh", "-c", envScript, "sh", dp.envPath()}, dp.d.Argv(append(args, o.Stack)...)...)
	out, err := dp.h.Run(ctx, argv, nil)
	if err != nil {
		return fmt.Errorf("docker stack deploy: %w", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "--detach") {
			o.Logf("%s", l)
		}
	}
	return nil
}

// Scale sets the replicas of stack services (service → count) on the manager h
// under the stack's lock, as `docker service scale` does, and waits until they
// run; o.Scale says what, the rest of o where and how long.
func Scale(ctx context.Context, h remote.Host, o Options) (*Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Warnf == nil {
		o.Warnf = o.Logf
	}
	o.Services = sortedKeys(o.Scale)
	dp := &deployer{o: o, h: h, d: &dockercli.Docker{H: h, Project: o.Stack, Dir: o.Dir}, res: &Result{}, seen: map[string]string{}, waitStopped: true}
	dp.steps = deploy.Steps{Phases: &dp.res.Phases, Logf: o.Logf}
	lo := o.Lock
	lo.Logf, lo.Warnf = o.Logf, o.Warnf
	lk, err := lock.Acquire(ctx, h, lock.SwarmStack(o.Stack), lo, o.Who)
	if err != nil {
		dp.res.Outcome = history.ResultFailed
		return dp.res, err
	}
	ctx, stop := lk.Context(ctx)
	defer stop()
	defer func() {
		if rerr := lk.Release(context.WithoutCancel(ctx)); rerr != nil {
			o.Warnf("%v", rerr)
		}
	}()
	err = func() error {
		if err := dp.step(ctx, "inspect", dp.snapshot); err != nil {
			return err
		}
		args := []string{"service", "scale", "--detach"}
		for _, name := range o.Services {
			if dp.before[dp.full(name)] == nil {
				return &UnknownServiceError{Stack: o.Stack, Service: name, Has: dp.names()}
			}
			args = append(args, fmt.Sprintf("%s=%d", dp.full(name), o.Scale[name]))
		}
		if err := dp.step(ctx, "scale", func(ctx context.Context) error { _, err := dp.d.Run(ctx, args...); return err }); err != nil {
			return err
		}
		return dp.step(ctx, "converge", dp.watch)
	}()
	dp.res.Outcome = history.ResultSuccess
	if err != nil {
		dp.res.Outcome = history.ResultFailed
	}
	return dp.res, err
}

// UnknownServiceError is a service to scale that the stack does not have;
// nothing was changed.
type UnknownServiceError struct {
	Stack, Service string
	Has            []string // the stack's services
}

func (e *UnknownServiceError) Error() string {
	has := "none"
	if len(e.Has) > 0 {
		has = strings.Join(e.Has, ", ")
	}
	return fmt.Sprintf("stack %s has no service %s (it has: %s); deploy it first or fix the name", e.Stack, e.Service, has)
}

// names are the stack's services as they were before, without the stack prefix.
func (dp *deployer) names() []string {
	var out []string
	for full := range dp.before {
		out = append(out, strings.TrimPrefix(full, dp.o.Stack+"_"))
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
