package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	ecsdeploy "github.com/gantry-dev/gantry/internal/deploy/ecs"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/input"
	"github.com/gantry-dev/gantry/internal/registryauth"
	"github.com/gantry-dev/gantry/internal/verify"
)

// ecsTargetInputs are the ECS inputs of deploy-ecs and rollback; rollback
// takes the rest (url, verify-timeout, auto-rollback, lock-wait, reason) from
// its Compose inputs of the same names.
func ecsTargetInputs() []action.Input {
	return []action.Input{
		{Name: "cluster", Description: "ECS cluster (name or ARN).", Default: "default"},
		{Name: "service", Description: "ECS service to deploy to.", Required: true},
		{Name: "region", Description: "AWS region; default AWS_REGION or AWS_DEFAULT_REGION."},
		{Name: "aws-role-arn", Description: "IAM role to assume with GitHub OIDC (needs `id-token: write`); default: AWS credentials from the environment."},
		{Name: "test-url", Description: "Health endpoint on the test listener of a blue-green, canary or linear service: verified before and between traffic shifts."},
		{Name: "timeout", Description: "How long the deployment may take to become steady.", Kind: action.Duration, Default: "15m"},
		{Name: "poll-interval", Description: "Time between looks at the deployment (2 to 5 s is kind to the API and fast).", Kind: action.Duration, Default: "3s"},
	}
}

// ecsDeployInputs are deploy-ecs's inputs that rollback shares with deploy-compose.
func ecsDeployInputs() []action.Input {
	return []action.Input{
		{Name: "url", Description: "Public health endpoint (e.g. the load balancer's DNS name + /health), verified to serve the commit once the new revision has production traffic."},
		{Name: "verify-timeout", Description: "How long the new revision may take to report the expected commit at url or test-url; test-url reaches the new revision only, so 3 answers in a row there from another commit fail at once.", Kind: action.Duration, Default: "2m"},
		{Name: "wait", Description: "Wait until the deployment is steady (and verified); false returns once the service is updated.", Kind: action.Bool, Default: "true"},
		{Name: "fail-fast", Description: "Fail on the first task of the new revision that crashes, fails to start or fails its health checks: true, false or auto (true for services of up to 10 tasks).", Default: "auto"},
		{Name: "auto-rollback", Description: "On failure, put the service back on the previous revision and wait until it is steady.", Kind: action.Bool, Default: "true"},
		{Name: "lock-wait", Description: "How long to wait for a deployment of the service that is not ours to finish (gantry never stacks deployments).", Kind: action.Duration, Default: "10m"},
		{Name: "reason", Description: "Why this deploy happens; shown in the log and summary."},
	}
}

func deployECSSpec() *action.Spec {
	s := &action.Spec{
		Name:        "deploy-ecs",
		Description: "Deploy to an Amazon ECS service: render and register the task definition, roll out (rolling, or ECS's native blue-green, canary, linear), fail fast with the stopped task's reason, never pass a circuit-breaker rollback as success, verify the commit, roll back.",
		Summary:     "Deploy to an Amazon ECS service: register the task definition, roll out, fail fast with the task's reason, verify, roll back.",
		Outputs: []action.Output{
			{Name: "task-definition", Description: "ARN of the task definition deployed."},
			{Name: "previous-task-definition", Description: "ARN of the task definition the service ran before."},
			{Name: "deployment-id", Description: "ID of the ECS deployment this step started."},
			{Name: "rendered-task-definition", Description: "Path of the rendered task-definition JSON that was registered."},
			{Name: "url", Description: "The verified URL, when url was given."},
			{Name: "result", Description: "success, failed, rolled-back (the service is back on the previous revision), abandoned (auto-rollback off) or started (wait: false)."},
		},
	}
	s.Inputs = append([]action.Input{
		{Name: "task-definition", Description: "Task definition JSON file in the repository, camelCase as `aws ecs describe-task-definition` prints it (read-only fields are dropped). Default: the service's current revision (or task-definition-family's latest)."},
		{Name: "task-definition-family", Description: "Start from the latest revision of this family instead of a file."},
		{Name: "images", Description: "Images to deploy, container=repository@sha256:... one a line (build-push's digest).", Kind: action.List},
		{Name: "container", Description: "Container whose image is replaced by image (the one-container form of images)."},
		{Name: "image", Description: "Image for container, repository@sha256:..."},
		{Name: "environment", Description: "Environment variables to set, CONTAINER:NAME=value one a line (NAME=value when images names one container; a value may hold commas and =); values of secret-looking names and URL passwords are masked (see README)."},
		{Name: "sha", Description: "Commit being deployed, which url and test-url must report and which tags the revision (gantry.sha); default GITHUB_SHA (the pull request head on pull_request events)."},
		{Name: "strategy", Description: "rolling, or ECS's native blue-green, canary or linear (these need a load balancer with advancedConfiguration on the service); default: the service's own strategy and settings, unchanged."},
		{Name: "minimum-healthy-percent", Description: "Rolling: lower limit of running tasks during the deployment, percent of the desired count; default: the service's setting."},
		{Name: "maximum-percent", Description: "Rolling: upper limit of running tasks during the deployment, percent of the desired count; default: the service's setting."},
		{Name: "canary-percent", Description: "Canary: percent of production traffic sent to the new revision first.", Default: "10"},
		{Name: "linear-percent", Description: "Linear: percent of production traffic added at each step.", Default: "20"},
		{Name: "step-bake-time", Description: "Canary and linear: time at each traffic step, in whole minutes (verify re-checks the test listener at each).", Kind: action.Duration, Default: "5m"},
		{Name: "bake-time", Description: "Blue-green, canary and linear: time both revisions keep running after all traffic moved, in whole minutes; url is verified in it, while a rollback is still instant.", Kind: action.Duration, Default: "5m"},
		{Name: "force-new-deployment", Description: "Start a deployment even when the task definition did not change.", Kind: action.Bool, Default: "false"},
	}, append(ecsTargetInputs(), ecsDeployInputs()...)...)
	s.Inputs = append(s.Inputs, githubDeploymentInputs("the service name")...)
	return s
}

func deployECSCommand() *Command { return &Command{Spec: deployECSSpec(), Run: runDeployECS} }

// ecsTarget is the validated target of deploy-ecs and of rollback on ECS.
type ecsTarget struct {
	region, roleARN string
	opts            ecsdeploy.Options
	verifyTimeout   time.Duration
}

var ecsContainerRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,255}$`)

// readECSTarget reads the inputs shared by deploy-ecs and rollback.
func readECSTarget(a *action.Action, in *action.Inputs) *ecsTarget {
	t := &ecsTarget{}
	o := &t.opts
	o.Cluster = in.String("cluster")
	o.Service = in.Required("service")
	t.region = in.String("region")
	if t.region == "" {
		t.region = a.Getenv("AWS_REGION")
	}
	if t.region == "" {
		t.region = a.Getenv("AWS_DEFAULT_REGION")
	}
	if t.region == "" {
		in.Fail("region", "is required: set it, or AWS_REGION (e.g. us-east-1)")
	} else if !regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$`).MatchString(t.region) {
		in.Fail("region", "%q is not an AWS region such as us-east-1 or eu-west-3", t.region)
	}
	t.roleARN = in.String("aws-role-arn")
	if t.roleARN != "" && !strings.HasPrefix(t.roleARN, "arn:") {
		in.Fail("aws-role-arn", "%q is not a role ARN; want arn:aws:iam::<account>:role/<name>", t.roleARN)
	}
	for _, u := range []string{"url", "test-url"} {
		if v := in.String(u); v != "" {
			if _, err := verify.HealthURL(v); err != nil {
				in.Fail(u, "%v", err)
			}
		}
	}
	o.URL, o.TestURL = in.String("url"), in.String("test-url")
	t.verifyTimeout = in.Duration("verify-timeout")
	if o.Timeout = in.Duration("timeout"); o.Timeout <= 0 && in.String("timeout") != "" {
		in.Fail("timeout", "must be positive, e.g. 15m")
	}
	if o.PollInterval = in.Duration("poll-interval"); o.PollInterval < 100*time.Millisecond || o.PollInterval > time.Minute {
		in.Fail("poll-interval", "%s is out of range; use 100ms to 1m (2s to 5s recommended)", o.PollInterval)
	}
	o.AutoRollback = in.Bool("auto-rollback")
	o.LockWait = in.Duration("lock-wait")
	return t
}

func parsePercent(in *action.Inputs, input string, lo, hi float64) float64 {
	raw := strings.TrimSuffix(strings.TrimSpace(in.String(input)), "%")
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil || v < lo || v > hi {
		in.Fail(input, "%q is not a percentage from %g to %g", in.String(input), lo, hi)
	}
	return v
}

func parseOptionalPercent(in *action.Inputs, input string, hi int) *int32 {
	raw := strings.TrimSuffix(strings.TrimSpace(in.String(input)), "%")
	if raw == "" {
		return nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < 0 || v > hi {
		in.Fail(input, "%q is not a whole percentage from 0 to %d", in.String(input), hi)
		return nil
	}
	return aws.Int32(int32(v))
}

func wholeMinutes(in *action.Inputs, input string) time.Duration {
	d := in.Duration(input)
	if d < 0 || d%time.Minute != 0 || d > 24*time.Hour {
		in.Fail(input, "%s is not a whole number of minutes up to 24h (ECS takes minutes), e.g. 5m", d)
	}
	return d
}

func runDeployECS(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	t := readECSTarget(a, in)
	o := &t.opts
	o.Wait = in.Bool("wait")
	switch ff := strings.ToLower(in.String("fail-fast")); ff {
	case "", "auto":
	default:
		v, err := action.ParseBool(ff)
		if err != nil {
			in.Fail("fail-fast", "%q is not true, false or auto", ff)
		} else {
			o.FailFast = &v
		}
	}
	o.SHA = readCommit(a, in, "the commit being deployed")
	o.Render = ecsdeploy.Render{SHA: o.SHA, Images: map[string]string{}, Environment: map[string][]ecsdeploy.Env{}}
	pairs := in.List("images")
	containerInput := in.String("container")
	if c, img := containerInput, in.String("image"); c != "" || img != "" {
		if c == "" || img == "" {
			in.Fail("container", "container and image go together (or use images: container=repo@sha256:...)")
		} else {
			pairs = append(pairs, c+"="+img)
		}
	}
	for _, line := range pairs {
		c, ref, ok := strings.Cut(line, "=")
		c, ref = strings.TrimSpace(c), strings.TrimSpace(ref)
		if !ok || !ecsContainerRE.MatchString(c) {
			in.Fail("images", "%q is not container=repository@sha256:...", line)
			continue
		}
		d, err := name.NewDigest(ref)
		if err != nil {
			in.Fail("images", "%q: %s is not a repository@sha256:... reference; deploy by digest (build-push's digest output)", line, ref)
			continue
		}
		o.Render.Images[c] = d.String()
	}
	if file := in.String("task-definition"); file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			in.Fail("task-definition", "%v", err)
		} else {
			o.TaskDefinition = data
		}
		if in.String("task-definition-family") != "" {
			in.Fail("task-definition-family", "give task-definition or task-definition-family, not both")
		}
	}
	o.Family = in.String("task-definition-family")
	for i, line := range strings.Split(in.String("environment"), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, kv, hasC := strings.Cut(line, ":")
		if !hasC || strings.Contains(c, "=") {
			c, kv = "", line
		}
		e, err := action.ParseEnvLine(kv)
		if err != nil {
			in.Fail("environment", "line %d %v; write CONTAINER:NAME=value one a line (a value may hold commas and =)", i+1, err)
			continue
		}
		if c = strings.TrimSpace(c); c == "" {
			c = onlyContainer(o)
			if c == "" {
				in.Fail("environment", "line %d names no container; write CONTAINER:NAME=value", i+1)
				continue
			}
		}
		a.MaskEnv(e.Name, e.Value)
		o.Render.Environment[c] = append(o.Render.Environment[c], ecsdeploy.Env{Name: e.Name, Value: e.Value})
	}
	if o.TaskDefinition != nil {
		checkTaskDefinition(in, o, in.String("task-definition"), containerInput)
	}
	o.Strategy = in.String("strategy")
	if o.Strategy != "" && !slices.Contains(ecsdeploy.Strategies, o.Strategy) {
		in.Fail("strategy", "%q is not a strategy; use one of %s", o.Strategy, strings.Join(ecsdeploy.Strategies, ", "))
	}
	o.MinimumHealthyPercent = parseOptionalPercent(in, "minimum-healthy-percent", 100)
	o.MaximumPercent = parseOptionalPercent(in, "maximum-percent", 400)
	if o.Strategy == ecsdeploy.Canary {
		o.CanaryPercent = parsePercent(in, "canary-percent", 0.1, 100)
	}
	if o.Strategy == ecsdeploy.Linear {
		o.LinearPercent = parsePercent(in, "linear-percent", 3, 100)
	}
	o.StepBakeTime, o.BakeTime = wholeMinutes(in, "step-bake-time"), wholeMinutes(in, "bake-time")
	o.ForceNewDeployment = in.Bool("force-new-deployment")
	if err := in.Err(); err != nil {
		return err
	}
	return runECS(ctx, a, t, "deploy-ecs", in.String("reason"))
}

// checkTaskDefinition checks the task definition file and the containers the
// inputs name in it before any AWS call; an error names the input to fix.
func checkTaskDefinition(in *action.Inputs, o *ecsdeploy.Options, file, containerInput string) {
	names, err := ecsdeploy.ContainerNames(o.TaskDefinition)
	if err != nil {
		in.Fail("task-definition", "%s: %v", file, err)
		return
	}
	check := func(input, c string) {
		if !slices.Contains(names, c) {
			in.Fail(input, "container %q is not in %s (it has: %s)", c, file, strings.Join(names, ", "))
		}
	}
	for _, c := range keys(o.Render.Images) {
		if c == containerInput {
			check("container", c)
		} else {
			check("images", c)
		}
	}
	for _, c := range keys(o.Render.Environment) {
		check("environment", c)
	}
}

// onlyContainer is the single container of a task definition file, or "".
func onlyContainer(o *ecsdeploy.Options) string {
	if len(o.Render.Images) == 1 {
		for c := range o.Render.Images {
			return c
		}
	}
	return ""
}

// ecsClient builds the ECS client with the target's credentials.
func ecsClient(ctx context.Context, a *action.Action, t *ecsTarget) (*ecs.Client, string, error) {
	r := registryauth.NewResolver(registryauth.Options{
		AWSRoleARN: t.roleARN, Getenv: a.Getenv, OIDCToken: a.GitHub().GetIDToken,
		HTTPClient: &http.Client{Transport: a.Transport()}, Mask: a.Mask, Logf: a.Infof,
	})
	cfg, source, err := r.AWSConfig(ctx, "ecs "+t.region, t.region)
	if err != nil {
		return nil, "", err
	}
	client := ecs.NewFromConfig(cfg, func(o *ecs.Options) {
		if v := a.Getenv("AWS_ENDPOINT_URL_ECS"); v != "" {
			o.BaseEndpoint = aws.String(v)
		}
		if a.Getenv("AWS_MAX_ATTEMPTS") == "" {
			// A throttling storm from other pollers of the account should not fail a deploy.
			o.RetryMaxAttempts = 10
		}
	})
	return client, source, nil
}

// runECS deploys (or rolls back) and writes the outputs and the summary.
func runECS(ctx context.Context, a *action.Action, t *ecsTarget, verb, reason string) error {
	o := t.opts
	o.Logf, o.Warnf = a.Infof, a.Warnf
	if o.URL != "" || o.TestURL != "" {
		o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
			return verify.Wait(ctx, verify.Options{URL: url, SHA: o.SHA, Timeout: t.verifyTimeout, Logf: a.Infof, OwnAddress: own})
		}
	}
	start := time.Now()
	if reason != "" {
		a.Infof("reason: %s", reason)
	}
	gh := startGitHubDeployment(ctx, a, githubDeploy{target: o.Service, sha: o.SHA, verb: verb, reason: reason, images: o.Render.Images})
	client, source, err := ecsClient(ctx, a, t)
	if err != nil {
		gh.finish(ctx, history.ResultFailed, err, "")
		writeECSSummary(a, verb, t, &ecsdeploy.Result{Outcome: history.ResultFailed}, reason, err, time.Since(start))
		return err
	}
	a.Infof("%s: service %s in cluster %s (%s), credentials from %s", verb, o.Service, o.Cluster, t.region, source)
	res, err := ecsdeploy.Deploy(ctx, client, o)
	gh.finish(ctx, res.Outcome, err, verifiedURL(len(res.Verified) > 0, o.URL))
	// deploy-ecs and rollback declare different outputs.
	set := func(name, value string) {
		if a.Spec().HasOutput(name) {
			a.SetOutput(name, value)
		}
	}
	set("result", res.Outcome)
	set("previous-task-definition", res.PreviousTaskDefinition)
	set("task-definition", res.TaskDefinition)
	set("deployment-id", res.DeploymentID)
	if err == nil {
		set("deployed-sha", o.SHA)
	}
	if len(res.Rendered) > 0 {
		dir := a.Getenv("RUNNER_TEMP")
		if dir == "" {
			dir = os.TempDir()
		}
		path := filepath.Join(dir, "gantry-task-definition-"+strings.ReplaceAll(familyOfARN(res.TaskDefinition), "/", "_")+".json")
		if werr := os.WriteFile(path, res.Rendered, 0o644); werr == nil {
			set("rendered-task-definition", path)
		} else {
			a.Warnf("could not write the rendered task definition: %v", werr)
		}
	}
	if err == nil && len(res.Verified) > 0 && o.URL != "" {
		set("url", o.URL)
	}
	writeECSSummary(a, verb, t, res, reason, err, time.Since(start))
	var ie *input.Error
	if errors.As(err, &ie) {
		return ie // nothing was changed: the bad input alone is the failure
	}
	return err
}

func familyOfARN(arn string) string {
	s := ecsdeploy.Short(arn)
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[:i]
	}
	if s == "" {
		return "unregistered"
	}
	return s
}

func writeECSSummary(a *action.Action, verb string, t *ecsTarget, res *ecsdeploy.Result, reason string, err error, took time.Duration) {
	o := t.opts
	s := a.Summary()
	writeVerdict(s, verb, res.Outcome, err)
	td := "—"
	if res.TaskDefinition != "" {
		td = action.Code(ecsdeploy.Short(res.TaskDefinition))
	}
	prev := "none"
	if res.PreviousTaskDefinition != "" {
		prev = action.Code(ecsdeploy.Short(res.PreviousTaskDefinition))
	}
	rows := [][]string{
		{"Service", action.Code(o.Service) + " in cluster " + action.Code(o.Cluster) + " (" + action.Escape(t.region) + ")"},
		{"Strategy", action.Escape(strategyText(res.Strategy, o.Strategy))},
		{"Task definition", td + " (previous " + prev + ")"},
	}
	if o.SHA != "" || res.SHA != "" {
		sha := o.SHA
		if sha == "" {
			sha = res.SHA
		}
		rows = append(rows, []string{"Commit", action.Code(commit.Short(sha))})
	}
	if res.DeploymentID != "" {
		rows = append(rows, []string{"Deployment", action.Code(res.DeploymentID)})
	}
	if res.RolledBackTo != "" {
		rows = append(rows, []string{"Rolled back to", action.Code(ecsdeploy.Short(res.RolledBackTo))})
	}
	c := res.Counts
	if c.Desired > 0 || c.Running > 0 {
		rows = append(rows, []string{"Tasks (new revision)", fmt.Sprintf("%d/%d running, %d pending, %d failed", c.Running, c.Desired, c.Pending, c.Failed)})
	}
	rows = append(rows, []string{"Took", fmt.Sprintf("%.1fs", took.Seconds())})
	if reason != "" {
		rows = append(rows, []string{"Reason", action.Escape(reason)})
	}
	s.WriteString(action.Table([]string{"", ""}, rows))
	if len(res.Timeline) > 0 {
		s.WriteString("\n**Timeline**\n\n")
		var trows [][]string
		for _, m := range res.Timeline {
			trows = append(trows, []string{fmt.Sprintf("+%.1fs", m.At.Seconds()), action.Escape(m.Name)})
		}
		s.WriteString(action.Table([]string{"At", "What"}, trows))
	}
	if len(res.Stopped) > 0 {
		s.WriteString("\n**Stopped tasks of the new revision**\n\n")
		var srows [][]string
		for i, st := range res.Stopped {
			if i == 10 {
				srows = append(srows, []string{"…", fmt.Sprintf("%d more", len(res.Stopped)-10), "", ""})
				break
			}
			var cs []string
			for _, ce := range st.Containers {
				x := ce.Name
				if ce.ExitCode != nil {
					x += fmt.Sprintf(" exit %d", *ce.ExitCode)
				}
				if ce.Reason != "" && ce.Reason != st.Reason {
					x += ": " + ce.Reason
				}
				cs = append(cs, x)
			}
			srows = append(srows, []string{action.Code(st.ID), action.Escape(st.StopCode), action.Escape(st.Reason), action.Escape(strings.Join(cs, "; "))})
		}
		s.WriteString(action.Table([]string{"Task", "Stop code", "Reason", "Containers"}, srows))
	}
	if len(res.Events) > 0 {
		s.WriteString("\n<details><summary>ECS service events (" + strconv.Itoa(len(res.Events)) + ")</summary>\n\n")
		var erows [][]string
		for _, e := range res.Events {
			erows = append(erows, []string{e.At.UTC().Format("15:04:05"), action.Escape(e.Message)})
		}
		s.WriteString(action.Table([]string{"Time (UTC)", "Event"}, erows))
		s.WriteString("\n</details>\n")
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(s, "\n⚠️ %s\n", action.Escape(w))
	}
}

// strategyText is the strategy a deploy used, or the one it was asked for.
func strategyText(used, asked string) string {
	switch {
	case used != "":
		return used
	case asked != "":
		return asked
	}
	return "the service's own"
}
