package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/deploy/swarm"
	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/verify"
)

func deploySwarmSpec() *action.Spec {
	s := &action.Spec{
		Name:        "deploy-swarm",
		Description: "Deploy a stack to a Docker Swarm manager over SSH: the Compose file validated locally, images pinned by digest, docker stack deploy on the manager, every updated service watched until Swarm completes its update; a rollback or pause fails the step with the tasks' errors; the commit is verified.",
		Summary:     "Deploy a stack to a Docker Swarm over SSH: images pinned by digest, every service update watched, the commit verified.",
		Outputs: []action.Output{
			{Name: "previous-sha", Description: "Commit the stack ran before the deploy."},
			{Name: "deployed-sha", Description: "Commit deployed."},
			{Name: "url", Description: "The verified URL, when url was given."},
			{Name: "services", Description: "Per service, as JSON: name, image, replicas before, desired, running, state, errors; after a rollback, what runs at the end (state rolled back or removed)."},
			{Name: "result", Description: "success, failed, rolled-back (Swarm or gantry put the previous version back) or abandoned (auto-rollback off)."},
		},
	}
	s.Inputs = append(sshInputs(),
		action.Input{Name: "stack", Description: "Stack name (lower case letters, digits, - and _).", Required: true},
		action.Input{Name: "stack-dir", Description: "Directory on the manager for the stack's files and history; default gantry/<stack> under the SSH user's home. The deploy lock is in the swarm itself, shared by every user, directory and manager."},
		action.Input{Name: "compose-file", Description: "Compose file in the repository, validated locally, uploaded to the manager.", Default: "compose.yml"},
		action.Input{Name: "env-file", Description: "Variables for the Compose file's ${...} (NAME=value lines, NAME of letters, digits and _, values taken literally; they reach docker stack deploy through its environment, never a command line; values of secret-looking names and URL passwords are masked, see README)."},
		action.Input{Name: "images", Description: "Images to deploy, service=repository@sha256:... one a line.", Kind: action.List},
		action.Input{Name: "services", Description: "Services to watch; default: those in images, else all.", Kind: action.List},
		action.Input{Name: "scale", Description: "Replicas to set, service=N one a line (deploy.replicas of the file otherwise).", Kind: action.List},
		action.Input{Name: "sha", Description: "Commit being deployed, which url must report; default GITHUB_SHA (the pull request head on pull_request events)."},
		action.Input{Name: "url", Description: "Health endpoint verified to serve the commit once the stack converged (e.g. http://manager:8080/health)."},
		action.Input{Name: "verify-timeout", Description: "How long the new version may take to report the commit at url (and, with the edge, each new task at its own address, where 3 answers in a row from another commit fail at once).", Kind: action.Duration, Default: "2m"},
		action.Input{Name: "strategy", Description: "rolling (Swarm's rolling update), blue-green or canary (two services per edge service, <name>-blue and <name>-green, behind gantry's edge proxy); default blue-green when a service has the label gantry.edge, else rolling."},
		action.Input{Name: "edge-image", Description: "Image of the edge proxy, run as the stack service gantry-edge on the manager: gantry-edge (Caddy with gantry's module), whose admin API listens inside its container only and is reached through docker exec (a stock Caddy image is refused); default: the running edge's, else gantry's.", Default: ""},
		action.Input{Name: "edge-ports", Description: "Ports the edge publishes on the manager in host mode, PUBLISHED:TARGET; default: the running edge's, else 80:80.", Kind: action.List},
		action.Input{Name: "health-path", Description: "Health endpoint of the edge services, where each new task must report the commit before it gets traffic.", Default: "/health"},
		action.Input{Name: "canary-steps", Description: "Traffic percentages of the canary steps.", Kind: action.List, Default: "10,50,100"},
		action.Input{Name: "canary-interval", Description: "Time at each canary step, probing through the edge.", Kind: action.Duration, Default: "30s"},
		action.Input{Name: "drain", Description: "Longest wait for in-flight requests on the old color after the switch, before it is scaled to 0.", Kind: action.Duration, Default: "30s"},
		action.Input{Name: "update-parallelism", Description: "Tasks updated at once; default: the file's deploy.update_config (Swarm's default 1)."},
		action.Input{Name: "update-order", Description: "start-first (a new task runs, and passes its healthcheck, before an old one stops) or stop-first; default: the file's."},
		action.Input{Name: "update-delay", Description: "Pause between updated batches; default: the file's.", Kind: action.Duration},
		action.Input{Name: "update-monitor", Description: "How long Swarm watches each updated task for failure; default: the file's (Swarm's 5s).", Kind: action.Duration},
		action.Input{Name: "failure-action", Description: "What Swarm does when an update fails: rollback, pause or continue; default: the file's (Swarm's pause; gantry rolls back a paused update itself unless auto-rollback is off)."},
		action.Input{Name: "timeout", Description: "How long the services may take to converge.", Kind: action.Duration, Default: "10m"},
		action.Input{Name: "poll-interval", Description: "Time between looks at the services.", Kind: action.Duration, Default: "1s"},
		action.Input{Name: "auto-rollback", Description: "On failure, roll updated services back when Swarm did not already, and remove the services, networks, configs and secrets this deploy created.", Kind: action.Bool, Default: "true"},
		action.Input{Name: "prune", Description: "Remove services that are no longer in the Compose file.", Kind: action.Bool, Default: "false"},
		action.Input{Name: "registry-username", Description: "User the manager logs in with to pull the images; the login is forwarded to the nodes (--with-registry-auth) and its private docker config removed after the deploy."},
		action.Input{Name: "registry-password", Description: "Password or token for registry-username (on stdin, never a command line).", Secret: true},
		action.Input{Name: "lock-wait", Description: "How long to wait while another live deploy holds the stack's lock in the swarm (0s: fail at once).", Kind: action.Duration, Default: "10m"},
		action.Input{Name: "lock-stale", Description: "How long the lock holder's heartbeat (every 5s) may stay unchanged before the holder is taken for dead (a killed runner) and its lock taken over.", Kind: action.Duration, Default: "30s"},
		action.Input{Name: "reason", Description: "Why this deploy happens; kept in the lock and the history."},
	)
	s.Inputs = append(s.Inputs, githubDeploymentInputs("the stack name")...)
	return s
}

func deploySwarmCommand() *Command { return &Command{Spec: deploySwarmSpec(), Run: runDeploySwarm} }

func runDeploySwarm(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	hc := readHost(a, in)
	var o swarm.Options
	o.Stack = in.Required("stack")
	if o.Stack != "" && !composefile.ValidProject(o.Stack) {
		in.Fail("stack", "%q is not a stack name: use lower case letters, digits, - and _", o.Stack)
	}
	if o.Dir = in.String("stack-dir"); o.Dir == "" {
		o.Dir = path.Join("gantry", o.Stack)
	}
	envData, env := readEnvFile(a, in, composefile.ShellRules)
	o.EnvFile = envData
	o.SHA = readCommit(a, in, "the commit being deployed")
	var registries []string
	o.Images, registries = readDigestImages(in)
	o.Services = in.List("services")
	o.Scale = parseScale(in)
	if o.URL = in.String("url"); o.URL != "" {
		if _, err := verify.HealthURL(o.URL); err != nil {
			in.Fail("url", "%v", err)
		}
	}
	if v := in.String("update-parallelism"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			in.Fail("update-parallelism", "%q is not a whole number (0 updates all tasks at once)", v)
		}
		o.Update.Parallelism = &n
	}
	if o.Update.Order = in.String("update-order"); o.Update.Order != "" && o.Update.Order != "start-first" && o.Update.Order != "stop-first" {
		in.Fail("update-order", "%q is not start-first or stop-first", o.Update.Order)
	}
	o.Update.Delay, o.Update.Monitor = in.Duration("update-delay"), in.Duration("update-monitor")
	if o.Update.FailureAction = in.String("failure-action"); o.Update.FailureAction != "" && !slices.Contains([]string{"rollback", "pause", "continue"}, o.Update.FailureAction) {
		in.Fail("failure-action", "%q is not rollback, pause or continue", o.Update.FailureAction)
	}
	if o.Strategy = in.String("strategy"); o.Strategy != "" && !slices.Contains([]string{swarm.Rolling, swarm.BlueGreen, swarm.Canary}, o.Strategy) {
		in.Fail("strategy", "%q is not rolling, blue-green or canary", o.Strategy)
	}
	o.EdgeImage, o.EdgePorts = in.String("edge-image"), in.List("edge-ports")
	if o.HealthPath = in.String("health-path"); !strings.HasPrefix(o.HealthPath, "/") {
		in.Fail("health-path", "%q must start with /", o.HealthPath)
	}
	o.CanarySteps, o.CanaryInterval, o.Drain = parseCanarySteps(in), in.Duration("canary-interval"), in.Duration("drain")
	o.VerifyTimeout = in.Duration("verify-timeout")
	o.Timeout, o.PollInterval = in.Duration("timeout"), in.Duration("poll-interval")
	if o.PollInterval < 100*time.Millisecond || o.PollInterval > time.Minute {
		in.Fail("poll-interval", "%s is out of range; use 100ms to 1m", o.PollInterval)
	}
	o.AutoRollback, o.Prune = in.Bool("auto-rollback"), in.Bool("prune")
	if user, pass := in.String("registry-username"), in.String("registry-password"); user != "" || pass != "" {
		if user == "" || pass == "" {
			in.Fail("registry-password", "registry-username and registry-password go together")
		}
		for _, r := range registries {
			o.Logins = append(o.Logins, dockercli.Login{Registry: r, Username: user, Password: pass})
		}
	}
	o.Lock = lock.Options{Wait: lock.WaitInput(in.Duration("lock-wait")), Stale: in.Duration("lock-stale")}
	o.Who = lockInfo(a, in.String("reason"))
	if cf := in.String("compose-file"); o.Stack != "" {
		f, err := composefile.Load(ctx, cf, o.Stack, env)
		if err != nil {
			in.Fail("compose-file", "%v", err)
		} else {
			o.File = f
			failUnknownServices(in, f, "images", keys(o.Images))
			failUnknownServices(in, f, "services", o.Services)
			failUnknownServices(in, f, "scale", keys(o.Scale))
			if o.Strategy == "" && o.File.HasEdge() {
				o.Strategy = swarm.BlueGreen
			}
			if err := o.ValidateEdge(); err != nil {
				in.Fail("strategy", "%v", err)
			}
		}
	}
	if err := in.Err(); err != nil {
		return err
	}
	return swarmDeployAndReport(ctx, a, hc, o, in.Duration("verify-timeout"), "deploy-swarm")
}

// swarmDeployAndReport deploys (or rolls back) a stack and writes the outputs
// and the summary.
func swarmDeployAndReport(ctx context.Context, a *action.Action, hc hostConfig, o swarm.Options, verifyTimeout time.Duration, verb string) error {
	o.Verify = func(ctx context.Context, url string) error {
		_, err := verify.Wait(ctx, verify.Options{URL: url, SHA: o.SHA, Timeout: verifyTimeout, Logf: a.Infof})
		return err
	}
	o.Logf, o.Warnf = a.Infof, a.Warnf
	start := time.Now()
	gh := startGitHubDeployment(ctx, a, githubDeploy{target: o.Stack, sha: o.SHA, verb: verb, reason: o.Who.Reason, images: o.Images})
	h, err := hc.connect(ctx)
	if err != nil {
		gh.finish(ctx, history.ResultFailed, err, "")
		writeSwarmSummary(a, verb, hc, o, &swarm.Result{Outcome: history.ResultFailed}, err, time.Since(start))
		return err
	}
	defer h.Close()
	a.Infof("deploying %s to stack %s on %s", commit.Short(o.SHA), o.Stack, h)
	res, err := swarm.Deploy(ctx, h, o)
	gh.finish(ctx, res.Outcome, err, verifiedURL(res.Verified, o.URL))
	set := func(name, value string) {
		if a.Spec().HasOutput(name) {
			a.SetOutput(name, value)
		}
	}
	set("result", res.Outcome)
	set("previous-sha", res.PreviousSHA)
	if js, jerr := json.Marshal(res.Services); jerr == nil {
		set("services", string(js))
	}
	if err == nil {
		set("deployed-sha", o.SHA)
		if res.Verified {
			set("url", o.URL)
		}
	}
	writeSwarmSummary(a, verb, hc, o, res, err, time.Since(start))
	return err
}

// parseScale reads the scale input, service=N lines.
func parseScale(in *action.Inputs) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range in.List("scale") {
		svc, n, ok := strings.Cut(line, "=")
		v, err := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
		if !ok || err != nil || strings.TrimSpace(svc) == "" {
			in.Fail("scale", "%q is not service=N with N a whole number of replicas", line)
			continue
		}
		out[strings.TrimSpace(svc)] = v
	}
	return out
}

func swarmScaleSpec() *action.Spec {
	s := &action.Spec{
		Name:        "swarm-scale",
		Description: "Set the replicas of services of a Swarm stack over SSH, as docker service scale does, under the stack's deploy lock, and wait until they run (and, scaling down, until the surplus tasks have stopped).",
		Summary:     "Scale services of a Swarm stack over SSH under the stack's deploy lock and wait until the replicas run.",
		Outputs: []action.Output{
			{Name: "services", Description: "Per service, as JSON: name, replicas before, desired, running, state."},
			{Name: "result", Description: "success or failed."},
		},
	}
	s.Inputs = append(sshInputs(),
		action.Input{Name: "stack", Description: "Stack name.", Required: true},
		action.Input{Name: "stack-dir", Description: "Directory of the stack on the manager; default gantry/<stack> under the SSH user's home. The deploy lock is in the swarm itself."},
		action.Input{Name: "scale", Description: "Replicas to set, service=N one a line.", Kind: action.List, Required: true},
		action.Input{Name: "timeout", Description: "How long the services may take to run their replicas.", Kind: action.Duration, Default: "5m"},
		action.Input{Name: "lock-wait", Description: "How long to wait for a deploy's lock on the manager.", Kind: action.Duration, Default: "10m"},
		action.Input{Name: "reason", Description: "Why; kept in the lock."},
	)
	return s
}

func swarmScaleCommand() *Command { return &Command{Spec: swarmScaleSpec(), Run: runSwarmScale} }

func runSwarmScale(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	hc := readHost(a, in)
	var o swarm.Options
	if o.Stack = in.Required("stack"); o.Stack != "" && !composefile.ValidProject(o.Stack) {
		in.Fail("stack", "%q is not a stack name: use lower case letters, digits, - and _", o.Stack)
	}
	if o.Dir = in.String("stack-dir"); o.Dir == "" {
		o.Dir = path.Join("gantry", o.Stack)
	}
	if o.Scale = parseScale(in); len(o.Scale) == 0 && in.Err() == nil {
		in.Fail("scale", "is required: service=N one a line")
	}
	o.Timeout = in.Duration("timeout")
	o.Lock = lock.Options{Wait: lock.WaitInput(in.Duration("lock-wait"))}
	o.Who = lockInfo(a, in.String("reason"))
	if err := in.Err(); err != nil {
		return err
	}
	o.Logf, o.Warnf = a.Infof, a.Warnf
	h, err := hc.connect(ctx)
	if err != nil {
		return err
	}
	defer h.Close()
	res, err := swarm.Scale(ctx, h, o)
	var unknown *swarm.UnknownServiceError
	if errors.As(err, &unknown) {
		err = &action.InputError{Input: "scale", Msg: err.Error()}
	}
	a.SetOutput("result", res.Outcome)
	if js, jerr := json.Marshal(res.Services); jerr == nil {
		a.SetOutput("services", string(js))
	}
	sum := a.Summary()
	fmt.Fprintf(sum, "### %s swarm-scale: %s\n\n", map[bool]string{true: "✅", false: "❌"}[err == nil], res.Outcome)
	if err != nil {
		fmt.Fprintf(sum, "**Why:** %s\n\n", action.Escape(err.Error()))
	}
	var rows [][]string
	for _, r := range res.Services {
		rows = append(rows, []string{action.Code(r.Name), fmt.Sprintf("%d → %d", r.ReplicasBefore, r.Desired), fmt.Sprint(r.Running), action.Escape(r.State)})
	}
	if len(rows) > 0 {
		sum.WriteString(action.Table([]string{"Service", "Replicas", "Running", "State"}, rows))
	}
	return err
}

// keys returns the keys of m, sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeSwarmSummary(a *action.Action, verb string, hc hostConfig, o swarm.Options, res *swarm.Result, err error, took time.Duration) {
	s := a.Summary()
	writeVerdict(s, verb, res.Outcome, err)
	prev := res.PreviousSHA
	if prev == "" {
		prev = "none"
	}
	rows := [][]string{
		{"Manager", action.Code(hc.String())},
		{"Stack", action.Code(o.Stack)},
		{"Commit", action.Code(commit.Short(o.SHA)) + " (previous " + action.Code(commit.Short(prev)) + ")"},
	}
	if res.Strategy != "" {
		rows = append(rows, []string{"Strategy", res.Strategy})
	}
	rows = append(rows, []string{"Took", fmt.Sprintf("%.1fs", took.Seconds())})
	if o.Who.Reason != "" {
		rows = append(rows, []string{"Reason", action.Escape(o.Who.Reason)})
	}
	s.WriteString(action.Table([]string{"", ""}, rows))
	if len(res.Services) > 0 {
		s.WriteString("\n**Services**\n\n")
		var srows [][]string
		for _, r := range res.Services {
			errs := strings.Join(r.Errors, "; ")
			if r.Message != "" {
				errs = strings.TrimPrefix(r.Message+"; "+errs, "; ")
			}
			srows = append(srows, []string{action.Code(r.Name), action.Code(r.Image), fmt.Sprintf("%d → %d", r.ReplicasBefore, r.Desired), fmt.Sprint(r.Running), action.Escape(r.State), action.Escape(errs)})
		}
		s.WriteString(action.Table([]string{"Service", "Image", "Replicas", "Running", "State", "Errors"}, srows))
	}
	writePhases(s, res.Phases)
	for _, w := range res.Warnings {
		fmt.Fprintf(s, "\n⚠️ %s\n", action.Escape(w))
	}
}
