// Package compose deploys to a Docker Compose host: the project's files are
// uploaded, images pinned by digest, and services replaced by the chosen
// strategy behind a deploy lock, with automatic rollback and a history.
package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/onhost"
	"github.com/gantry-dev/gantry/internal/remote"
	"github.com/gantry-dev/gantry/internal/verify"
)

// Strategies.
const (
	Recreate  = "recreate"
	BlueGreen = "blue-green"
	Canary    = "canary"
	Rolling   = "rolling"
)

// Strategies lists the valid strategy names.
var Strategies = []string{Recreate, BlueGreen, Canary, Rolling}

// Options is one deploy.
type Options struct {
	Project string
	// Dir is the project directory on the host (relative paths are under
	// the SSH user's home).
	Dir     string
	File    *composefile.File
	EnvFile []byte
	// Images pins services to images: service → repo@digest.
	Images map[string]string
	// Services are the services to update; default: those in Images.
	Services []string
	Strategy string
	SHA      string
	Logins   []dockercli.Login

	EdgeImage string
	EdgePorts []string
	// ComposeBinary, when set, is a standalone docker compose v2 binary on
	// the host to run instead of the "docker compose" CLI plugin.
	ComposeBinary string

	HealthPath     string
	StartTimeout   time.Duration
	VerifyTimeout  time.Duration
	VerifyInterval time.Duration
	Consecutive    int
	// URL, when set, is verified through the public address after the switch.
	URL          string
	Checks       []verify.Check
	AllowFailure bool

	CanarySteps    []int
	CanaryInterval time.Duration
	// CanaryMaxErrorRate is the share of failed probe requests through the
	// edge that stops a canary step, e.g. 0.01.
	CanaryMaxErrorRate float64

	Drain        time.Duration
	StopTimeout  time.Duration
	AutoRollback bool
	// Rollback marks a redeploy of known-good digests (no canary steps).
	Rollback bool

	Lock lock.Options
	Who  lock.Info

	Logf  func(string, ...any)
	Warnf func(string, ...any)
}

// Result is what a deploy did.
type Result struct {
	PreviousSHA string
	DeployedSHA string
	// Outcome is a history result: success, failed, rolled-back, abandoned.
	Outcome  string
	URL      string
	Phases   []history.Phase
	Warnings []string
	// Checks are the contract check results, when checks ran.
	Checks []verify.CheckResult
}

// deployer holds one deploy's state.
type deployer struct {
	o      Options
	h      remote.Host
	d      *dockercli.Docker
	http   *http.Client
	res    *Result
	stored bool // files written to the host; restore them on failure
	// restored is set once restoreFiles put a previous compose.yml back.
	restored bool
	// edgeReplaced is set when docker compose up removed a running edge for
	// one that then did not start: the previous files start it again.
	edgeReplaced bool
	// current is the last successful deploy before this one, if any.
	current *history.Entry
	// steps times the deploy's steps into res.Phases; a step's function
	// marks it done with a warning (e.g. not verified) through steps.Warn.
	steps deploy.Steps
}

func (o *Options) defaults() {
	if o.HealthPath == "" {
		o.HealthPath = "/health"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = 2 * time.Minute
	}
	if o.VerifyInterval == 0 {
		// Each check is one request to a container the deploy just started:
		// poll often, so that verification adds fractions of a second.
		o.VerifyInterval = 250 * time.Millisecond
	}
	if o.Consecutive == 0 {
		o.Consecutive = 2
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.Drain == 0 {
		o.Drain = 30 * time.Second
	}
	if len(o.CanarySteps) == 0 {
		o.CanarySteps = []int{10, 50, 100}
	}
	if o.CanaryInterval == 0 {
		o.CanaryInterval = 30 * time.Second
	}
	if o.CanaryMaxErrorRate == 0 {
		o.CanaryMaxErrorRate = 0.01
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
		sort.Strings(o.Services)
	}
}

// Deploy runs one deploy on h. The returned error, if any, is the reason the
// deploy failed; Result says what state the host was left in.
func Deploy(ctx context.Context, h remote.Host, o Options) (*Result, error) {
	o.defaults()
	dp := &deployer{
		o: o, h: h, res: &Result{DeployedSHA: o.SHA, URL: o.URL},
		d:    &dockercli.Docker{H: h, Project: o.Project, Dir: o.Dir, ComposeBinary: o.ComposeBinary},
		http: &http.Client{Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}},
	}
	dp.steps = deploy.Steps{Phases: &dp.res.Phases, Logf: o.Logf}
	started := time.Now().UTC()

	sess, ctx, err := onhost.Start(ctx, h, onhost.Options{
		Scope: lock.ComposeProject(o.Project), Lock: o.Lock, Who: o.Who,
		HistoryPath: dp.historyPath(), Steps: &dp.steps, Logf: o.Logf, Warnf: o.Warnf,
	})
	if err != nil {
		dp.res.Outcome = deploy.Failed
		return dp.res, err
	}
	if sess.Current != nil {
		dp.res.PreviousSHA = sess.Current.SHA
		dp.current = sess.Current
	}

	err = dp.run(ctx)
	// The registry login goes, whatever happened.
	if cerr := dp.step(sess.Cleanup, "cleanup", dp.cleanup); cerr != nil {
		o.Warnf("cleanup: %v", cerr)
		dp.res.Warnings = append(dp.res.Warnings, "cleanup: "+cerr.Error())
	}
	dp.res.Outcome = deploy.Outcome(err, dp.res.Outcome)
	err = sess.Finish(ctx, history.Entry{
		Project: o.Project, SHA: o.SHA, Images: o.Images,
		Actor: o.Who.Actor, Reason: o.Who.Reason, RunURL: o.Who.RunURL, Strategy: o.Strategy,
		Result: dp.res.Outcome, PreviousSHA: dp.res.PreviousSHA, Rollback: o.Rollback,
		Started: started, Phases: dp.res.Phases,
	}, err)
	return dp.res, err
}

// warnPhase reports msg as a warning of the deploy and of the phase running.
func (dp *deployer) warnPhase(msg string) {
	dp.steps.Warn(msg)
	dp.res.Warnings = append(dp.res.Warnings, msg)
	dp.o.Warnf("%s", msg)
}

func (dp *deployer) historyPath() string { return history.PathIn(dp.o.Dir) }

// step runs fn as a named, timed phase of the timeline.
func (dp *deployer) step(ctx context.Context, name string, fn func(context.Context) error) error {
	return dp.steps.Run(ctx, name, fn)
}

func (dp *deployer) run(ctx context.Context) error {
	o := dp.o
	if err := dp.step(ctx, "upload", dp.upload); err != nil {
		return dp.restoreFiles(ctx, err)
	}
	if err := dp.step(ctx, "pull", dp.pull); err != nil {
		return dp.restoreFiles(ctx, err)
	}
	var edgeSvcs, plain []string
	for _, s := range o.Services {
		if o.Strategy != Recreate && o.File.Services[s].Edge {
			edgeSvcs = append(edgeSvcs, s)
		} else {
			plain = append(plain, s)
		}
	}
	if len(plain) > 0 {
		if err := dp.recreate(ctx, plain); err != nil {
			return err
		}
	}
	for _, s := range edgeSvcs {
		if err := dp.replace(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// upload writes the Compose file, the env file and gantry's override to the
// project directory, keeping the previous ones to restore on failure.
func (dp *deployer) upload(ctx context.Context) error {
	o := dp.o
	g := path.Join(o.Dir, ".gantry")
	if _, err := dp.h.Run(ctx, []string{"mkdir", "-p", path.Join(g, "previous")}, nil); err != nil {
		return err
	}
	if _, err := dp.h.Run(ctx, []string{"sh", "-c", backupScript, "sh", o.Dir}, nil); err != nil {
		return fmt.Errorf("keep the previous files: %w", err)
	}
	dp.stored = true
	var edge *composefile.Edge
	if o.Strategy != Recreate && dp.anyEdge() {
		edge = &composefile.Edge{Image: o.EdgeImage, Ports: o.EdgePorts}
	}
	override, err := composefile.Override(dp.pinnedImages(), edge)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		p    string
		data []byte
		mode os.FileMode
	}{
		{path.Join(o.Dir, "compose.yml"), o.File.Data, 0o644},
		{path.Join(o.Dir, ".env"), o.EnvFile, 0o600},
		{path.Join(g, "override.yml"), override, 0o644},
	} {
		if err := remote.WriteFile(ctx, dp.h, f.p, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// pinnedImages is the images to pin: the ones of this deploy, plus those the
// previous deploy pinned for services this deploy leaves alone, so that
// their containers are not recreated with a moving tag.
func (dp *deployer) pinnedImages() map[string]string {
	out := map[string]string{}
	if dp.current != nil {
		for s, img := range dp.current.Images {
			if _, ok := dp.o.File.Services[s]; ok {
				out[s] = img
			}
		}
	}
	for s, img := range dp.o.Images {
		out[s] = img
	}
	return out
}

func (dp *deployer) anyEdge() bool {
	for _, s := range dp.o.Services {
		if dp.o.File.Services[s].Edge {
			return true
		}
	}
	return false
}

// backupScript copies the project's current files aside; missing ones
// (first deploy) are recorded as absent. The previous backup goes first,
// hidden files included: a stale marker would undo a later restore.
const backupScript = `d="$1"; p="$d/.gantry/previous"; rm -rf -- "$p" && mkdir -p -- "$p" || exit 1
for f in compose.yml .env .gantry/override.yml; do
  b=$(basename "$f")
  if [ -f "$d/$f" ]; then cp -p "$d/$f" "$p/$b"; else : > "$p/$b.absent"; fi
done`

// restoreScript puts the previous files back, exactly: a file that was
// absent is removed. It prints the files absent afterwards, one a line.
const restoreScript = `d="$1"; p="$d/.gantry/previous"
for f in compose.yml .env .gantry/override.yml; do
  b=$(basename "$f")
  if [ -f "$p/$b.absent" ]; then rm -f "$d/$f"; elif [ -f "$p/$b" ]; then cp -p "$p/$b" "$d/$f"; fi
  [ -f "$d/$f" ] || echo "$f"
done`

// restoreFiles puts the previous files back after a failure and returns err.
// Compose then runs with the files that exist: without --env-file when the
// previous deploy had no .env; dp.restored tells whether a previous
// compose.yml is back (false on a first deploy).
func (dp *deployer) restoreFiles(ctx context.Context, err error) error {
	if !dp.stored {
		return err
	}
	out, rerr := dp.h.Run(context.WithoutCancel(ctx), []string{"sh", "-c", restoreScript, "sh", dp.o.Dir}, nil)
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("restore the previous files: %w", rerr))
	}
	dp.restored = true
	for _, f := range strings.Fields(string(out)) {
		switch f {
		case "compose.yml":
			dp.restored = false
		case ".env":
			dp.d.NoEnvFile = true
		case ".gantry/override.yml":
			dp.d.NoOverride = true
		}
	}
	return err
}

// pull logs in to the registries with a private docker config and pulls
// the images of the services being deployed.
func (dp *deployer) pull(ctx context.Context) error {
	if len(dp.o.Logins) > 0 {
		out, err := dp.h.Run(ctx, []string{"mktemp", "-d"}, nil)
		if err != nil {
			return err
		}
		dp.d.ConfigDir = strings.TrimSpace(string(out))
		for _, l := range dp.o.Logins {
			if err := dp.d.Login(ctx, l.Registry, l.Username, strings.NewReader(l.Password)); err != nil {
				return fmt.Errorf("docker login %s on %s: %w", l.Registry, dp.h, err)
			}
		}
	}
	args := append([]string{"pull", "--quiet"}, dp.o.Services...)
	if dp.o.Strategy != Recreate && dp.anyEdge() {
		args = append(args, composefile.EdgeService)
	}
	if _, err := dp.d.Compose(ctx, args...); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	return nil
}

// cleanup removes the private docker config holding the registry login.
func (dp *deployer) cleanup(ctx context.Context) error {
	if dp.d.ConfigDir == "" {
		return nil
	}
	_, err := dp.h.Run(context.WithoutCancel(ctx), []string{"rm", "-rf", dp.d.ConfigDir}, nil)
	dp.d.ConfigDir = ""
	return err
}

// reason summarises why containers failed to start: state, exit code, the
// last lines they printed.
func (dp *deployer) reason(ctx context.Context, cs []dockercli.Container) string {
	var b bytes.Buffer
	for _, c := range cs {
		fmt.Fprintf(&b, "%s is %s", c.Name, c.Status)
		if !c.Running && c.Status != "created" {
			fmt.Fprintf(&b, " (exit code %d)", c.ExitCode)
		}
		if c.Health == "unhealthy" {
			b.WriteString(" and unhealthy")
		}
		if c.Error != "" {
			fmt.Fprintf(&b, ": %s", c.Error)
		}
		if logs := dp.d.Logs(context.WithoutCancel(ctx), c.ID, 10); logs != "" {
			// The container's output is the service's text: data, one line.
			fmt.Fprintf(&b, "; last output: %s", verify.Text(strings.Join(strings.Fields(lastLines(logs, 5)), " "), 400))
		}
		b.WriteString(". ")
	}
	return strings.TrimSpace(b.String())
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
