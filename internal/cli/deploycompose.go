package cli

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/deploy/compose"
	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
	"github.com/gantry-dev/gantry/internal/dockercli"
	"github.com/gantry-dev/gantry/internal/edge"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/verify"
)

// DefaultEdgeImage is the edge image deploy-compose runs by default.
const DefaultEdgeImage = edge.DefaultImage

// composeTargetInputs are the inputs shared by deploy-compose and rollback.
func composeTargetInputs() []action.Input {
	in := sshInputs()
	return append(in,
		action.Input{Name: "project", Description: "Compose project name on the host (lower case letters, digits, - and _).", Required: true},
		action.Input{Name: "project-dir", Description: "Project directory on the host, where gantry keeps the files and the history; default gantry/<project> under the SSH user's home. The deploy lock is not kept here: it is on the Docker engine, shared by every user and directory."},
		action.Input{Name: "strategy", Description: "recreate, blue-green, canary or rolling; default blue-green for services with a gantry.edge label (or listed in edge), else recreate."},
		action.Input{Name: "edge", Description: "Services to serve through the edge proxy, besides those labelled gantry.edge.", Kind: action.List},
		action.Input{Name: "edge-image", Description: "Image of the edge proxy: gantry-edge (Caddy with gantry's module), whose admin API listens inside its container only and is reached through docker exec; a stock Caddy image cannot be reached that way and is refused.", Default: DefaultEdgeImage},
		action.Input{Name: "edge-ports", Description: "Host ports the edge publishes, as in Compose.", Kind: action.List, Default: "80:80"},
		action.Input{Name: "health-path", Description: "Health endpoint of the services, which must report the commit.", Default: "/health"},
		action.Input{Name: "url", Description: "Public URL checked after the switch (e.g. https://app.example.com/health); the new containers are always verified at their own address first."},
		action.Input{Name: "checks", Description: "Contract checks run against a new container before it gets traffic, one a line (see the verify action); `exec SERVICE -- cmd` runs in a container.", Kind: action.List},
		action.Input{Name: "allow-failure", Description: "A failed contract check becomes a warning instead of a rollback.", Kind: action.Bool, Default: "false"},
		action.Input{Name: "start-timeout", Description: "How long new containers may take to run (and be healthy).", Kind: action.Duration, Default: "2m"},
		action.Input{Name: "verify-timeout", Description: "How long the new version may take to report the expected commit; a new container that answers at its own address 3 times in a row with another commit fails the deploy at once.", Kind: action.Duration, Default: "2m"},
		action.Input{Name: "canary-steps", Description: "Traffic percentages of the canary steps.", Kind: action.List, Default: "10,50,100"},
		action.Input{Name: "canary-interval", Description: "Time at each canary step, probing the edge.", Kind: action.Duration, Default: "30s"},
		action.Input{Name: "drain", Description: "Longest wait for in-flight requests on the old containers after the switch.", Kind: action.Duration, Default: "30s"},
		action.Input{Name: "stop-timeout", Description: "Grace time for old containers to stop after SIGTERM.", Kind: action.Duration, Default: "10s"},
		action.Input{Name: "auto-rollback", Description: "On failure, send traffic back to the previous version and remove the new containers; false leaves the failed state for debugging.", Kind: action.Bool, Default: "true"},
		action.Input{Name: "registry-username", Description: "User the host logs in with to pull the images (credentials go on stdin, never a command line, and into a private docker config removed after the deploy)."},
		action.Input{Name: "registry-password", Description: "Password or token for registry-username.", Secret: true},
		action.Input{Name: "lock-wait", Description: "How long to wait while another live deploy holds the project's lock on the Docker engine (0s: fail at once).", Kind: action.Duration, Default: "10m"},
		action.Input{Name: "lock-stale", Description: "How long the lock holder's heartbeat (every 5s) may stay unchanged before the holder is taken for dead (a killed runner) and its lock taken over.", Kind: action.Duration, Default: "30s"},
		action.Input{Name: "reason", Description: "Why this deploy happens; kept in the lock and the history."},
	)
}

func deployComposeSpec() *action.Spec {
	s := &action.Spec{
		Name:        "deploy-compose",
		Description: "Deploy to a Docker Compose host over SSH with zero downtime: a deploy lock, the new version verified at its own address before any traffic, an atomic switch at a Caddy edge, automatic rollback and a history.",
		Summary:     "Zero-downtime deploy to a Docker Compose host over SSH: lock, verify before traffic, atomic edge switch, auto rollback.",
		Outputs: []action.Output{
			{Name: "previous-sha", Description: "Commit that was serving before the deploy."},
			{Name: "deployed-sha", Description: "Commit deployed."},
			{Name: "url", Description: "The verified public URL, when url was given."},
			{Name: "result", Description: "success, failed (the previous version kept serving), rolled-back (traffic went back) or abandoned (auto-rollback off)."},
		},
	}
	s.Inputs = append(composeTargetInputs(),
		action.Input{Name: "compose-file", Description: "Compose file in the repository, uploaded to the host (no git checkout needed there).", Default: "compose.yml"},
		action.Input{Name: "env-file", Description: "Content of the .env file written next to it (KEY=VALUE lines, checked locally as docker compose reads them; values of secret-looking names and URL passwords are masked, see README)."},
		action.Input{Name: "images", Description: "Images to deploy, service=repository@sha256:... one a line (build-push's images output).", Kind: action.List},
		action.Input{Name: "services", Description: "Services to update; default: those in images.", Kind: action.List},
		action.Input{Name: "sha", Description: "Commit being deployed, which the health endpoint must report; default GITHUB_SHA (the pull request head on pull_request events)."},
	)
	s.Inputs = append(s.Inputs, githubDeploymentInputs("the project name")...)
	return s
}

func deployComposeCommand() *Command {
	return &Command{Spec: deployComposeSpec(), Run: runDeployCompose}
}

// readComposeTarget reads the inputs shared with rollback into opts.
func readComposeTarget(a *action.Action, in *action.Inputs, o *compose.Options) hostConfig {
	hc := readHost(a, in)
	o.Project = in.Required("project")
	if o.Project != "" && !composefile.ValidProject(o.Project) {
		in.Fail("project", "%q is not a Compose project name: use lower case letters, digits, - and _", o.Project)
	}
	o.Dir = in.String("project-dir")
	if o.Dir == "" {
		o.Dir = "gantry/" + o.Project
	}
	o.Strategy = in.String("strategy")
	if o.Strategy != "" && !slices.Contains(compose.Strategies, o.Strategy) {
		in.Fail("strategy", "%q is not a strategy; use one of %s", o.Strategy, strings.Join(compose.Strategies, ", "))
	}
	o.EdgeImage, o.EdgePorts = in.String("edge-image"), in.List("edge-ports")
	o.HealthPath = in.String("health-path")
	if !strings.HasPrefix(o.HealthPath, "/") {
		in.Fail("health-path", "%q must start with /", o.HealthPath)
	}
	if o.URL = in.String("url"); o.URL != "" {
		if _, err := verify.HealthURL(o.URL); err != nil {
			in.Fail("url", "%v", err)
		}
	}
	if checks := strings.Join(in.Lines("checks"), "\n"); checks != "" {
		var err error
		if o.Checks, err = verify.ParseChecks(checks); err != nil {
			in.Fail("checks", "%v", err)
		}
	}
	o.AllowFailure = in.Bool("allow-failure")
	o.StartTimeout, o.VerifyTimeout = in.Duration("start-timeout"), in.Duration("verify-timeout")
	o.CanarySteps = parseCanarySteps(in)
	o.CanaryInterval = in.Duration("canary-interval")
	o.Drain, o.StopTimeout = in.Duration("drain"), in.Duration("stop-timeout")
	o.AutoRollback = in.Bool("auto-rollback")
	o.Lock = lock.Options{Wait: lock.WaitInput(in.Duration("lock-wait")), Stale: in.Duration("lock-stale")}
	o.Who = lockInfo(a, in.String("reason"))
	return hc
}

func runURL(a *action.Action) string {
	srv, repo, id := a.Getenv("GITHUB_SERVER_URL"), a.Getenv("GITHUB_REPOSITORY"), a.Getenv("GITHUB_RUN_ID")
	if srv == "" || repo == "" || id == "" {
		return ""
	}
	return srv + "/" + repo + "/actions/runs/" + id
}

// readEnvFile reads env-file, checked locally with the rules of its reader
// on the host, and masks the secret values (action.MaskEnv). It returns the
// file to upload and the variables as KEY=VALUE for the Compose file.
func readEnvFile(a *action.Action, in *action.Inputs, rules composefile.EnvRules) ([]byte, []string) {
	raw := in.String("env-file")
	vars, data, err := composefile.ParseEnvFile(raw, rules)
	if err != nil {
		in.Fail("env-file", "%v", err)
		return nil, nil
	}
	return []byte(withNewline(data)), envPairs(a, vars)
}

// envPairs masks the secret values of vars and returns them as KEY=VALUE.
func envPairs(a *action.Action, vars []composefile.Var) []string {
	env := make([]string, 0, len(vars))
	for _, v := range vars {
		a.MaskEnv(v.Name, v.Value)
		env = append(env, v.Name+"="+v.Value)
	}
	return env
}

func withNewline(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// failUnknownServices records an error on input when one of names is not a
// service of f: the error names the input the user set.
func failUnknownServices(in *action.Inputs, f *composefile.File, input string, names []string) {
	if err := f.CheckServices(names); err != nil {
		in.Fail(input, "%v", err)
	}
}

// finishCompose validates the deploy against the Compose file: services,
// images, strategy and edge rules.
func finishCompose(in *action.Inputs, o *compose.Options, edgeList []string) {
	if o.File == nil {
		return
	}
	failUnknownServices(in, o.File, "images", keys(o.Images))
	failUnknownServices(in, o.File, "services", o.Services)
	failUnknownServices(in, o.File, "edge", edgeList)
	for _, s := range edgeList {
		if svc, ok := o.File.Services[s]; ok {
			svc.Edge = true
			o.File.Services[s] = svc
		}
	}
	if len(o.Services) == 0 {
		for s := range o.Images {
			o.Services = append(o.Services, s)
		}
		sort.Strings(o.Services)
	}
	if len(o.Services) == 0 {
		o.Services = o.File.Names()
	}
	anyEdge := false
	for _, s := range o.Services {
		if o.File.Services[s].Edge {
			anyEdge = true
		}
	}
	if o.Strategy == "" {
		o.Strategy = compose.Recreate
		if anyEdge {
			o.Strategy = compose.BlueGreen
		}
	}
	if o.Strategy != compose.Recreate {
		if !anyEdge {
			in.Fail("strategy", "%s needs a service served through the edge: label it gantry.edge or list it in edge", o.Strategy)
		}
		for _, s := range o.Services {
			if svc := o.File.Services[s]; svc.Edge {
				if err := svc.ValidateForEdge(); err != nil {
					in.Fail("compose-file", "%v", err)
				}
			}
		}
	}
}

func runDeployCompose(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	var o compose.Options
	hc := readComposeTarget(a, in, &o)
	envFile, env := readEnvFile(a, in, composefile.ComposeRules)
	o.EnvFile = envFile
	o.SHA = readCommit(a, in, "the commit being deployed")
	var registries []string
	o.Images, registries = readDigestImages(in)
	o.Services = in.List("services")
	edgeList := in.List("edge")
	if user, pass := in.String("registry-username"), in.String("registry-password"); user != "" || pass != "" {
		if user == "" || pass == "" {
			in.Fail("registry-password", "registry-username and registry-password go together")
		}
		for _, r := range registries {
			o.Logins = append(o.Logins, dockercli.Login{Registry: r, Username: user, Password: pass})
		}
	}
	if cf := in.String("compose-file"); o.Project != "" {
		f, err := composefile.Load(ctx, cf, o.Project, env)
		if err != nil {
			in.Fail("compose-file", "%v", err)
		} else {
			o.File = f
		}
	}
	finishCompose(in, &o, edgeList)
	if err := in.Err(); err != nil {
		return err
	}
	return deployAndReport(ctx, a, hc, o, "deploy-compose")
}

// ComposeBinaryEnv names the variable that points a deploy to this machine
// (host local) at a standalone docker compose v2 binary instead of the
// "docker compose" CLI plugin; scripts/demo.sh sets it to its own copy.
const ComposeBinaryEnv = "GANTRY_DOCKER_COMPOSE"

// deployAndReport connects, deploys and writes outputs and the summary.
func deployAndReport(ctx context.Context, a *action.Action, hc hostConfig, o compose.Options, verb string) error {
	o.Logf, o.Warnf = a.Infof, a.Warnf
	if bin := a.Getenv(ComposeBinaryEnv); hc.local && bin != "" {
		// Windows has no execute bits: there a file is enough.
		if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 && runtime.GOOS != "windows" {
			return fmt.Errorf("%s=%s is not an executable file; point it at a docker compose v2 binary, or unset it to use the docker compose plugin", ComposeBinaryEnv, bin)
		}
		o.ComposeBinary = bin
	}
	start := time.Now()
	gh := startGitHubDeployment(ctx, a, githubDeploy{target: o.Project, sha: o.SHA, verb: verb, reason: o.Who.Reason, images: o.Images})
	h, err := hc.connect(ctx)
	if err != nil {
		gh.finish(ctx, history.ResultFailed, err, "")
		writeDeploySummary(a, verb, hc, o, &compose.Result{Outcome: history.ResultFailed}, err, time.Since(start))
		return err
	}
	defer h.Close()
	a.Infof("deploying %s (%s) to %s, project %s, strategy %s", commit.Short(o.SHA), strings.Join(o.Services, ", "), h, o.Project, o.Strategy)
	res, err := compose.Deploy(ctx, h, o)
	gh.finish(ctx, res.Outcome, err, o.URL)
	a.SetOutput("previous-sha", res.PreviousSHA)
	a.SetOutput("result", res.Outcome)
	if err == nil {
		a.SetOutput("deployed-sha", o.SHA)
		if o.URL != "" {
			a.SetOutput("url", o.URL)
		}
	}
	writeDeploySummary(a, verb, hc, o, res, err, time.Since(start))
	return err
}

func writeDeploySummary(a *action.Action, verb string, hc hostConfig, o compose.Options, res *compose.Result, err error, took time.Duration) {
	s := a.Summary()
	writeVerdict(s, verb, res.Outcome, err)
	prev := res.PreviousSHA
	if prev == "" {
		prev = "none"
	}
	rows := [][]string{
		{"Host", action.Code(hc.String())},
		{"Project", action.Code(o.Project)},
		{"Strategy", action.Escape(o.Strategy)},
		{"Commit", action.Code(commit.Short(o.SHA)) + " (previous " + action.Code(commit.Short(prev)) + ")"},
		{"Services", action.Escape(strings.Join(o.Services, ", "))},
		{"Took", fmt.Sprintf("%.1fs", took.Seconds())},
	}
	if o.Who.Reason != "" {
		rows = append(rows, []string{"Reason", action.Escape(o.Who.Reason)})
	}
	s.WriteString(action.Table([]string{"", ""}, rows))
	writePhases(s, res.Phases)
	if len(res.Checks) > 0 {
		s.WriteString("\n**Contract checks**\n\n")
		var crow [][]string
		for _, c := range res.Checks {
			st := "✅"
			if !c.OK() {
				st = "❌ " + action.Escape(strings.Join(c.Failures, "; "))
			}
			crow = append(crow, []string{action.Code(c.Check.Text), st})
		}
		s.WriteString(action.Table([]string{"Check", "Result"}, crow))
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(s, "\n⚠️ %s\n", action.Escape(w))
	}
}

// writePhases writes a deploy's timed phases as the summary's timeline.
func writePhases(s *strings.Builder, phases []history.Phase) {
	if len(phases) == 0 {
		return
	}
	s.WriteString("\n**Timeline**\n\n")
	var rows [][]string
	for _, p := range phases {
		st := "✅"
		switch {
		case p.Error != "":
			st = "❌ " + action.Escape(p.Error)
		case p.Warning != "":
			st = "⚠️ " + action.Escape(p.Warning)
		}
		rows = append(rows, []string{action.Escape(p.Name), fmt.Sprintf("%.1fs", p.Duration.Seconds()), st})
	}
	s.WriteString(action.Table([]string{"Phase", "Duration", "Result"}, rows))
}

// writeVerdict writes the head of a deploy's summary: the outcome and why it failed.
func writeVerdict(s *strings.Builder, verb, outcome string, err error) {
	fmt.Fprintf(s, "### %s %s: %s\n\n", outcomeIcon(outcome), verb, action.Escape(outcome))
	if err != nil {
		fmt.Fprintf(s, "**Why:** %s\n\n", action.Escape(err.Error()))
	}
}

// outcomeIcon marks a deploy's outcome at the head of its summary.
func outcomeIcon(outcome string) string {
	switch outcome {
	case history.ResultSuccess:
		return "✅"
	case history.ResultRolledBack:
		return "↩️"
	case history.ResultAbandoned:
		return "⚠️"
	case ecsdeploy.ResultStarted:
		return "🚀"
	}
	return "❌"
}

// parseCanarySteps reads canary-steps: rising percentages, ending at 100.
func parseCanarySteps(in *action.Inputs) []int {
	var steps []int
	for _, s := range in.List("canary-steps") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
		if err != nil || n <= 0 || n > 100 || (len(steps) > 0 && n <= steps[len(steps)-1]) {
			in.Fail("canary-steps", "%q: steps are rising percentages from 1 to 100, e.g. 10,50,100", s)
			continue
		}
		steps = append(steps, n)
	}
	if len(steps) > 0 && steps[len(steps)-1] != 100 {
		steps = append(steps, 100)
	}
	return steps
}
