package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/composefile"
	"github.com/gantry-dev/gantry/internal/deploy/cloudrun"
	"github.com/gantry-dev/gantry/internal/deploy/compose"
	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
	"github.com/gantry-dev/gantry/internal/deploy/swarm"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
	"github.com/gantry-dev/gantry/internal/remote"
)

func rollbackSpec() *action.Spec {
	s := &action.Spec{
		Name:        "rollback",
		Description: "Go back to a known-good version without a rebuild: the digests of the previous deploy (or of a given commit) from a Compose host's or a Swarm stack's history, without canary steps; on ECS the task-definition revision of that commit; on Cloud Run its revision, with all traffic.",
		Summary:     "Go back to a known-good version without a rebuild, on Compose, Swarm, ECS or Cloud Run, from the deploy history.",
		Outputs: []action.Output{
			{Name: "previous-sha", Description: "Commit that was serving before the rollback."},
			{Name: "deployed-sha", Description: "Commit rolled back to."},
			{Name: "url", Description: "The verified public URL, when url was given."},
			{Name: "result", Description: "success, failed, rolled-back or abandoned, as for deploy-compose."},
			{Name: "task-definition", Description: "ECS: ARN of the task-definition revision rolled back to."},
			{Name: "revision", Description: "Cloud Run: the revision that serves all traffic again."},
		},
	}
	compose := composeTargetInputs()
	for i := range compose {
		if compose[i].Name == "host" {
			compose[i].Required = false
			compose[i].Description = "Compose: " + compose[i].Description + " Required unless service (ECS) is given."
		}
	}
	ecsIn := ecsTargetInputs()
	for i := range ecsIn {
		ecsIn[i].Required = false
		ecsIn[i].Description = "ECS: " + ecsIn[i].Description
	}
	for i := range ecsIn {
		switch ecsIn[i].Name {
		case "service":
			ecsIn[i].Description = "ECS or Cloud Run: service to roll back; giving it makes this an ECS rollback, or a Cloud Run one with gcp-project."
		case "region":
			ecsIn[i].Description = "ECS or Cloud Run: region of the service (ECS: default AWS_REGION)."
		case "timeout", "poll-interval":
			ecsIn[i].Description = "ECS, Cloud Run or Swarm:" + strings.TrimPrefix(ecsIn[i].Description, "ECS:")
		}
	}
	swarmIn := []action.Input{
		{Name: "stack", Description: "Swarm: stack to roll back (with host); its history is on the manager."},
		{Name: "stack-dir", Description: "Swarm: the stack's directory on the manager; default gantry/<stack>."},
	}
	var runIn []action.Input
	for _, in := range cloudRunTargetInputs() {
		if in.Name != "health-path" { // the Compose input of that name serves Cloud Run too
			in.Description = "Cloud Run: " + in.Description
			runIn = append(runIn, in)
		}
	}
	s.Inputs = append([]action.Input{
		{Name: "kind", Description: "What to roll back: `compose` (project on host), `swarm` (stack on host), `ecs` (service) or `cloudrun` (service in gcp-project). Empty: inferred from which of those inputs are set, with a warning; set it, as inference will go away in v2."},
		{Name: "to", Description: "`previous` (the last successful deploy of another commit) or a commit SHA (7+ hex) deployed before. When a Compose host's or Swarm stack's history has no previous deploy, or no revision of an ECS service is marked deployed by gantry, previous is the last successful GitHub Deployment of github-environment; on Compose and Swarm its images are used only when each is pinned by digest to a repository the target's Compose file or history uses.", Default: "previous"},
	}, append(append(append(compose, swarmIn...), ecsIn...), runIn...)...)
	s.Inputs = append(s.Inputs, githubDeploymentInputs("the Compose project, Swarm stack or ECS or Cloud Run service name, as the deploy actions record it")...)
	return s
}

func rollbackCommand() *Command { return &Command{Spec: rollbackSpec(), Run: runRollback} }

func runRollback(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	to := in.String("to")
	if to != "previous" && (len(to) < 7 || strings.Trim(strings.ToLower(to), "0123456789abcdef") != "") {
		in.Fail("to", "%q is neither previous nor a commit SHA of 7 or more hex characters", to)
	}
	kind, ok := rollbackKind(a, in)
	if !ok {
		return in.Err() // the other kinds' inputs would only add noise
	}
	switch kind {
	case "cloudrun":
		return runRollbackCloudRun(ctx, a, in, to)
	case "ecs":
		return runRollbackECS(ctx, a, in, to)
	case "swarm":
		return runRollbackSwarm(ctx, a, in, to)
	}
	var o compose.Options
	hc := readComposeTarget(a, in, &o)
	if o.Strategy == compose.Canary {
		in.Fail("strategy", "a rollback takes no canary steps; use blue-green, rolling or recreate")
	}
	if err := in.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gantry-rollback-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	target, file, envData, err := rollbackTarget(ctx, a, hc, o.Dir, o.Project, "project", to, dir, composefile.ComposeRules)
	if err != nil {
		return err
	}
	a.Infof("%s rolls back project %s to %s (%s)", o.Who.Actor, o.Project, commit.Short(target.SHA), target.source)
	// The files on the host are the ones of the current deploy: roll back
	// the images within them.
	o.File = file
	o.EnvFile, o.SHA, o.Images, o.Rollback = envData, target.SHA, target.Images, true
	o.Who.Reason = strings.TrimSpace("rollback to " + commit.Short(target.SHA) + ". " + o.Who.Reason)
	for s := range target.Images {
		o.Services = append(o.Services, s)
	}
	sort.Strings(o.Services)
	finishCompose(in, &o, in.List("edge"))
	if err := in.Err(); err != nil {
		return err
	}
	return deployAndReport(ctx, a, hc, o, "rollback")
}

// fetchProject copies the project's compose.yml and .env from the host
// into dir.
func fetchProject(ctx context.Context, h remote.Host, projectDir, dir string) (string, []byte, error) {
	data, err := remote.ReadFile(ctx, h, path.Join(projectDir, "compose.yml"))
	if err != nil {
		return "", nil, err
	}
	file := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return "", nil, err
	}
	env, err := remote.ReadFile(ctx, h, path.Join(projectDir, ".env"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, err
	}
	return file, env, nil
}

// runRollbackECS redeploys the task-definition revision of an earlier commit
// to an ECS service, registering nothing.
func runRollbackECS(ctx context.Context, a *action.Action, in *action.Inputs, to string) error {
	t := readECSTarget(a, in)
	if in.String("host") != "" {
		in.Fail("host", "give host (Compose) or service (ECS), not both")
	}
	if err := in.Err(); err != nil {
		return err
	}
	t.opts.Wait = true
	t.opts.RollbackOnly = true
	client, _, err := ecsClient(ctx, a, t)
	if err != nil {
		return err
	}
	rev, current, err := ecsdeploy.FindRevision(ctx, client, t.opts, to)
	if err != nil && to == "previous" {
		rev, current, err = ecsRevisionFromGitHub(ctx, a, client, t.opts, err)
	}
	if err != nil {
		return fmt.Errorf("rollback of service %s: %w", t.opts.Service, err)
	}
	a.Infof("rolling back service %s from %s to %s (commit %s)", t.opts.Service, ecsdeploy.Short(current), ecsdeploy.Short(rev.ARN), commit.Short(rev.SHA))
	t.opts.Revision, t.opts.SHA = rev.ARN, rev.SHA
	return runECS(ctx, a, t, "rollback", strings.TrimSpace("rollback to "+commit.Short(rev.SHA)+". "+in.String("reason")))
}

// runRollbackCloudRun sends all traffic of a Cloud Run service to the revision
// of an earlier commit, creating no revision.
func runRollbackCloudRun(ctx context.Context, a *action.Action, in *action.Inputs, to string) error {
	t := readRunTarget(a, in)
	if in.String("host") != "" {
		in.Fail("host", "give host (Compose) or service (Cloud Run), not both")
	}
	if err := in.Err(); err != nil {
		return err
	}
	api, closeAPI, _, err := cloudRunAPI(ctx, a, t)
	if err != nil {
		return err
	}
	rev, sha, err := cloudrun.FindRevision(ctx, api, t.opts, to)
	closeAPI()
	if err != nil {
		return fmt.Errorf("rollback of service %s: %w", t.opts.Service, err)
	}
	a.Infof("rolling back service %s to revision %s (commit %s)", t.opts.Service, rev, commit.Short(sha))
	t.opts.Revision, t.opts.SHA, t.opts.Strategy = rev, sha, cloudrun.All
	return runCloudRun(ctx, a, t, "rollback", strings.TrimSpace("rollback to "+commit.Short(sha)+". "+in.String("reason")))
}

// runRollbackSwarm redeploys a Swarm stack with the digests of an earlier
// deploy from the manager's history, with the stack files on the manager.
func runRollbackSwarm(ctx context.Context, a *action.Action, in *action.Inputs, to string) error {
	hc := readHost(a, in)
	var o swarm.Options
	if o.Stack = in.String("stack"); !composefile.ValidProject(o.Stack) {
		in.Fail("stack", "%q is not a stack name: use lower case letters, digits, - and _", o.Stack)
	}
	if o.Dir = in.String("stack-dir"); o.Dir == "" {
		o.Dir = path.Join("gantry", o.Stack)
	}
	o.URL = in.String("url")
	o.AutoRollback = in.Bool("auto-rollback")
	o.Timeout, o.PollInterval = in.Duration("timeout"), in.Duration("poll-interval")
	o.Lock = lock.Options{Wait: lock.WaitInput(in.Duration("lock-wait")), Stale: in.Duration("lock-stale")}
	o.Who = lockInfo(a, in.String("reason"))
	if err := in.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gantry-rollback-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	target, file, envData, err := rollbackTarget(ctx, a, hc, o.Dir, o.Stack, "stack", to, dir, composefile.ShellRules)
	if err != nil {
		return err
	}
	o.File = file
	a.Infof("%s rolls back stack %s to %s (%s)", o.Who.Actor, o.Stack, commit.Short(target.SHA), target.source)
	o.EnvFile, o.SHA, o.Images, o.Rollback = envData, target.SHA, target.Images, true
	o.Who.Reason = strings.TrimSpace("rollback to " + commit.Short(target.SHA) + ". " + o.Who.Reason)
	return swarmDeployAndReport(ctx, a, hc, o, in.Duration("verify-timeout"), "rollback")
}

// envLines reads the variables of an env file kept on the host, masking
// the secret ones.
func envLines(a *action.Action, data []byte, rules composefile.EnvRules) ([]string, error) {
	vars, _, err := composefile.ParseEnvFile(string(data), rules)
	if err != nil {
		return nil, err
	}
	return envPairs(a, vars), nil
}

// rollbackTarget connects to a Compose host or Swarm manager, copies the
// project's compose.yml and .env from dir into tmp, and finds the deploy to go
// back to in the history under dir (or, for previous, in GitHub's Deployments,
// checked against the Compose file and the history); kind and name say what is
// rolled back, rules how the host reads the .env. Nothing on the target is
// changed.
func rollbackTarget(ctx context.Context, a *action.Action, hc hostConfig, dir, name, kind, to, tmp string, rules composefile.EnvRules) (rollbackEntry, *composefile.File, []byte, error) {
	h, err := hc.connect(ctx)
	if err != nil {
		return rollbackEntry{}, nil, nil, err
	}
	where := fmt.Sprintf("%s, %s %s", h, kind, name)
	es, err := history.Read(ctx, h, history.PathIn(dir))
	var path string
	var envData []byte
	if err == nil {
		path, envData, err = fetchProject(ctx, h, dir, tmp)
		switch {
		case errors.Is(err, fs.ErrNotExist) && len(es) == 0:
			err = fmt.Errorf("rollback on %s: nothing was deployed there (no %s/compose.yml); nothing to roll back to", where, dir)
		case err != nil:
			err = fmt.Errorf("rollback on %s: %w", where, err)
		}
	}
	h.Close()
	if err != nil {
		return rollbackEntry{}, nil, nil, err
	}
	env, err := envLines(a, envData, rules)
	if err != nil {
		return rollbackEntry{}, nil, nil, fmt.Errorf("rollback on %s: the %s's .env there: %w", where, kind, err)
	}
	file, err := composefile.Load(ctx, path, name, env)
	if err != nil {
		return rollbackEntry{}, nil, nil, fmt.Errorf("rollback on %s: the %s's compose.yml there: %w", where, kind, err)
	}
	target, err := historyOrGitHub(ctx, a, name, es, file, to, where)
	return target, file, envData, err
}

// rollbackKinds are the values of rollback's kind input, each with the input
// that names what it rolls back.
var rollbackKinds = map[string]string{"compose": "project", "swarm": "stack", "ecs": "service", "cloudrun": "service"}

// rollbackKind returns the kind input, or, when it is empty, the kind the
// inputs set imply (with a warning that inference goes away). An explicit
// kind whose inputs are missing, or that other kinds' inputs contradict, is
// an input error: then ok is false.
func rollbackKind(a *action.Action, in *action.Inputs) (kind string, ok bool) {
	service, stack, gcp := in.String("service"), in.String("stack"), in.String("gcp-project")
	inferred := "compose"
	switch {
	case service != "" && gcp != "":
		inferred = "cloudrun"
	case service != "":
		inferred = "ecs"
	case stack != "":
		inferred = "swarm"
	}
	kind = in.String("kind")
	if kind == "" {
		a.Warnf("rollback: kind is not set; rolling back %s, inferred from the inputs set. Set kind: %s (inference will go away in v2)", inferred, inferred)
		return inferred, true
	}
	if _, known := rollbackKinds[kind]; !known {
		in.Fail("kind", "%q is not compose, swarm, ecs or cloudrun", kind)
		return "", false
	}
	switch {
	case kind == "cloudrun" && gcp == "":
		in.Fail("gcp-project", "is required for kind cloudrun")
	case kind != "compose" && kind != "swarm" && service == "":
		in.Fail("service", "is required for kind %s", kind)
	case kind == "swarm" && stack == "":
		in.Fail("stack", "is required for kind swarm")
	case kind != inferred:
		in.Fail("kind", "is %s, but the inputs set are those of %s (%s); unset them or set kind: %s", kind, inferred, rollbackKinds[inferred], inferred)
	default:
		return kind, true
	}
	return "", false
}
