package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cloudrunapi "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/deploy/cloudrun"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/registryauth"
	"github.com/gantry-dev/gantry/internal/verify"
)

// cloudRunTargetInputs are the Cloud Run inputs deploy-cloudrun shares with
// rollback (which takes service and region from its ECS inputs).
func cloudRunTargetInputs() []action.Input {
	return []action.Input{
		{Name: "gcp-project", Description: "Google Cloud project ID of the Cloud Run service."},
		{Name: "gcp-workload-identity-provider", Description: "Workload Identity Federation provider (projects/N/locations/global/workloadIdentityPools/P/providers/X) for GitHub OIDC (needs `id-token: write`); default: GOOGLE_APPLICATION_CREDENTIALS."},
		{Name: "gcp-service-account", Description: "Service account to impersonate with Workload Identity Federation."},
		{Name: "health-path", Description: "Path of the health endpoint that must report the commit, appended to the service and tag URLs.", Default: "/health"},
	}
}

func deployCloudRunSpec() *action.Spec {
	s := &action.Spec{
		Name:        "deploy-cloudrun",
		Description: "Deploy to Google Cloud Run through the Admin API v2, no gcloud: a revision named after the commit, created or updated without overwriting a concurrent change, traffic all at once, as a tagged no-traffic preview or in canary steps gated by verify, and back to the previous revision on failure.",
		Summary:     "Deploy to Google Cloud Run without gcloud: a revision per commit, canary steps gated by verify, rollback on failure.",
		Outputs: []action.Output{
			{Name: "url", Description: "The service's URL."},
			{Name: "revision", Description: "Name of the new revision."},
			{Name: "tag-url", Description: "URL of the new revision's tag (reaches it whatever its traffic share)."},
			{Name: "previous-revision", Description: "Revision that served most traffic before."},
			{Name: "traffic", Description: "Traffic after the deploy, as JSON: [{revision, percent, tag, url}]."},
			{Name: "result", Description: "success, failed (the previous revision kept serving), rolled-back (traffic went back) or abandoned (auto-rollback off)."},
		},
	}
	s.Inputs = append([]action.Input{
		{Name: "service", Description: "Cloud Run service (created if missing).", Required: true},
		{Name: "region", Description: "Cloud Run region, e.g. europe-west1.", Required: true},
		{Name: "image", Description: "Image to deploy, repository@sha256:... (build-push's digest).", Required: true},
		{Name: "sha", Description: "Commit being deployed, which the health endpoint must report; names the revision <service>-sha-<7 hex>. Default GITHUB_SHA (the pull request head on pull_request events)."},
		{Name: "env", Description: "Environment variables, NAME=value one a line (a value may hold commas and =); values of secret-looking names and URL passwords are masked (see README); secrets belong in secrets."},
		{Name: "secrets", Description: "Secret Manager references, NAME=secret:version one a line (e.g. DB_PASSWORD=db-password:latest).", Kind: action.List},
		{Name: "cpu", Description: "CPU limit, e.g. 1, 2 or 500m; default: the service's."},
		{Name: "memory", Description: "Memory limit, e.g. 512Mi or 2Gi; default: the service's."},
		{Name: "min-instances", Description: "Minimum instances; default: the service's."},
		{Name: "max-instances", Description: "Maximum instances; default: the service's."},
		{Name: "concurrency", Description: "Requests one instance serves at once (1 to 1000); default: the service's."},
		{Name: "port", Description: "Container port (PORT); default: the service's (8080)."},
		{Name: "service-account", Description: "Service account the revision runs as (email); default: the service's."},
		{Name: "ingress", Description: "all, internal or internal-and-cloud-load-balancing; default: the service's."},
		{Name: "labels", Description: "Labels of the service and revision, key=value one a line.", Kind: action.List},
		{Name: "strategy", Description: "all (100% to the new revision), preview (no traffic, only its tag URL) or canary (canary-steps).", Default: "all"},
		{Name: "canary-steps", Description: "Traffic percentages of the canary steps; each is verified at the tag URL before the next.", Kind: action.List, Default: "10,50,100"},
		{Name: "canary-interval", Description: "Time at each canary step below 100%, probing the service URL's health path 5 times a second.", Kind: action.Duration, Default: "1m"},
		{Name: "canary-max-error-rate", Description: "Share of probe requests that may fail (no answer or 5xx) during a canary step before traffic goes back, e.g. 1% or 0.01.", Default: "1%"},
		{Name: "tag", Description: "Traffic tag of the new revision; default sha-<7 hex>."},
		{Name: "url", Description: "Another URL to verify once the new revision serves all traffic (e.g. a custom domain's health endpoint)."},
		{Name: "verify-timeout", Description: "How long the new revision may take to report the expected commit; its tag URL reaches it only, so 3 answers in a row there from another commit fail at once.", Kind: action.Duration, Default: "2m"},
		{Name: "verify", Description: "Check that the tag and service URLs serve the commit; false only for a service the runner cannot reach (ingress internal), with a warning.", Kind: action.Bool, Default: "true"},
		{Name: "auto-rollback", Description: "On failure after traffic moved, send it back to the previous revisions.", Kind: action.Bool, Default: "true"},
		{Name: "timeout", Description: "How long Cloud Run may take to reconcile each change.", Kind: action.Duration, Default: "10m"},
		{Name: "poll-interval", Description: "Time between polls of the operation (the client's own backs off to 60 s).", Kind: action.Duration, Default: "2s"},
		{Name: "lock-wait", Description: "How long to wait for another change of the service that is still reconciling.", Kind: action.Duration, Default: "10m"},
		{Name: "reason", Description: "Why this deploy happens; shown in the log and summary."},
	}, cloudRunTargetInputs()...)
	s.Inputs = append(s.Inputs, githubDeploymentInputs("the service name")...)
	for i := range s.Inputs {
		if s.Inputs[i].Name == "gcp-project" {
			s.Inputs[i].Required = true
		}
	}
	return s
}

func deployCloudRunCommand() *Command {
	return &Command{Spec: deployCloudRunSpec(), Run: runDeployCloudRun}
}

var (
	gcpRegionRE    = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+$`)
	gcpProjectRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	runServiceRE   = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$`)
	runMemoryRE    = regexp.MustCompile(`^[0-9]+(Mi|Gi|M|G)$`)
	runCPURE       = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?|[0-9]+m)$`)
	runLabelKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	runLabelValRE  = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
	envNameRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	runIngressKind = map[string]runpb.IngressTraffic{
		"all":                               runpb.IngressTraffic_INGRESS_TRAFFIC_ALL,
		"internal":                          runpb.IngressTraffic_INGRESS_TRAFFIC_INTERNAL_ONLY,
		"internal-and-cloud-load-balancing": runpb.IngressTraffic_INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER,
	}
)

// runTarget is the validated Cloud Run target of deploy-cloudrun and rollback.
type runTarget struct {
	opts          cloudrun.Options
	verifyTimeout time.Duration
	wif, sa       string
	noVerify      bool
}

func readRunTarget(a *action.Action, in *action.Inputs) *runTarget {
	t := &runTarget{}
	o := &t.opts
	o.Project = in.String("gcp-project")
	if o.Project == "" {
		in.Fail("gcp-project", "is required: the Google Cloud project ID of the service")
	} else if !gcpProjectRE.MatchString(o.Project) {
		in.Fail("gcp-project", "%q is not a project ID (6 to 30 lower-case letters, digits and hyphens)", o.Project)
	}
	o.Region = in.String("region")
	if !gcpRegionRE.MatchString(o.Region) {
		in.Fail("region", "%q is not a Cloud Run region such as europe-west1 or us-central1", o.Region)
	}
	o.Service = in.String("service")
	if !runServiceRE.MatchString(o.Service) {
		in.Fail("service", "%q is not a Cloud Run service name (lower-case letters, digits and hyphens, up to 49, starting with a letter)", o.Service)
	}
	o.HealthPath = in.String("health-path")
	if !strings.HasPrefix(o.HealthPath, "/") {
		in.Fail("health-path", "%q must start with /", o.HealthPath)
	}
	if o.URL = in.String("url"); o.URL != "" {
		if _, err := verify.HealthURL(o.URL); err != nil {
			in.Fail("url", "%v", err)
		}
	}
	t.verifyTimeout = in.Duration("verify-timeout")
	o.AutoRollback = in.Bool("auto-rollback")
	o.Timeout, o.PollInterval, o.LockWait = in.Duration("timeout"), in.Duration("poll-interval"), in.Duration("lock-wait")
	if o.PollInterval < 100*time.Millisecond || o.PollInterval > time.Minute {
		in.Fail("poll-interval", "%s is out of range; use 100ms to 1m", o.PollInterval)
	}
	t.wif, t.sa = in.String("gcp-workload-identity-provider"), in.String("gcp-service-account")
	return t
}

func optionalInt(in *action.Inputs, input string, lo, hi int) *int32 {
	raw := in.String(input)
	if raw == "" {
		return nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		in.Fail(input, "%q is not a whole number from %d to %d", raw, lo, hi)
		return nil
	}
	v := int32(n)
	return &v
}

func runDeployCloudRun(ctx context.Context, a *action.Action) error {
	in := a.Inputs()
	t := readRunTarget(a, in)
	o := &t.opts
	o.SHA = readCommit(a, in, "the commit being deployed")
	if img := in.Required("image"); img != "" {
		if d, err := name.NewDigest(img); err != nil {
			in.Fail("image", "%q is not a repository@sha256:... reference; deploy by digest (build-push's digest output)", img)
		} else {
			o.Image = d.String()
		}
	}
	s := &o.Settings
	for _, e := range in.Env("env") {
		a.MaskEnv(e.Name, e.Value)
		s.Env = append(s.Env, cloudrun.Env{Name: e.Name, Value: e.Value})
	}
	for _, line := range in.List("secrets") {
		k, ref, ok := strings.Cut(line, "=")
		secret, version, _ := strings.Cut(ref, ":")
		if !ok || !envNameRE.MatchString(k) || secret == "" {
			in.Fail("secrets", "%q is not NAME=secret:version (e.g. DB_PASSWORD=db-password:latest)", line)
			continue
		}
		if version == "" {
			version = "latest"
		}
		s.Env = append(s.Env, cloudrun.Env{Name: k, Secret: secret, SecretVersion: version})
	}
	if s.CPU = in.String("cpu"); s.CPU != "" && !runCPURE.MatchString(s.CPU) {
		in.Fail("cpu", "%q is not a CPU limit such as 1, 2, 4 or 500m", s.CPU)
	}
	if s.Memory = in.String("memory"); s.Memory != "" && !runMemoryRE.MatchString(s.Memory) {
		in.Fail("memory", "%q is not a memory limit such as 512Mi or 2Gi", s.Memory)
	}
	s.MinInstances = optionalInt(in, "min-instances", 0, 1000)
	s.MaxInstances = optionalInt(in, "max-instances", 1, 1000)
	if s.MinInstances != nil && s.MaxInstances != nil && *s.MinInstances > *s.MaxInstances {
		in.Fail("min-instances", "%d is more than max-instances %d", *s.MinInstances, *s.MaxInstances)
	}
	s.Concurrency = optionalInt(in, "concurrency", 1, 1000)
	s.Port = optionalInt(in, "port", 1, 65535)
	if s.ServiceAccount = in.String("service-account"); s.ServiceAccount != "" && !strings.Contains(s.ServiceAccount, "@") {
		in.Fail("service-account", "%q is not a service account email", s.ServiceAccount)
	}
	if ing := in.String("ingress"); ing != "" {
		if k, ok := runIngressKind[ing]; ok {
			s.Ingress = k
		} else {
			in.Fail("ingress", "%q is not all, internal or internal-and-cloud-load-balancing", ing)
		}
	}
	for _, line := range in.List("labels") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || !runLabelKeyRE.MatchString(k) || !runLabelValRE.MatchString(v) {
			in.Fail("labels", "%q is not key=value with lower-case letters, digits, _ and - (keys start with a letter)", line)
			continue
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	o.Strategy = in.String("strategy")
	if !slices.Contains(cloudrun.Strategies, o.Strategy) {
		in.Fail("strategy", "%q is not a strategy; use one of %s", o.Strategy, strings.Join(cloudrun.Strategies, ", "))
	}
	if o.Strategy == cloudrun.Canary {
		for _, st := range in.List("canary-steps") {
			n, err := strconv.Atoi(strings.TrimSuffix(st, "%"))
			if err != nil || n <= 0 || n > 100 || (len(o.CanarySteps) > 0 && n <= o.CanarySteps[len(o.CanarySteps)-1]) {
				in.Fail("canary-steps", "%q: steps are rising percentages from 1 to 100, e.g. 10,50,100", st)
				continue
			}
			o.CanarySteps = append(o.CanarySteps, n)
		}
		if n := len(o.CanarySteps); n > 0 && o.CanarySteps[n-1] != 100 {
			o.CanarySteps = append(o.CanarySteps, 100)
		}
	}
	o.CanaryInterval = in.Duration("canary-interval")
	if raw := strings.TrimSpace(in.String("canary-max-error-rate")); raw != "" {
		v, err := strconv.ParseFloat(strings.TrimSuffix(raw, "%"), 64)
		if strings.HasSuffix(raw, "%") {
			v /= 100
		}
		if err != nil || v <= 0 || v >= 1 {
			in.Fail("canary-max-error-rate", "%q is not a share between 0 and 100%%, e.g. 1%% or 0.01", raw)
		}
		o.MaxErrorRate = v
	}
	noVerify := !in.Bool("verify")
	if o.Tag = in.String("tag"); o.Tag != "" && !regexp.MustCompile(`^[a-z]([a-z0-9-]{0,44}[a-z0-9])?$`).MatchString(o.Tag) {
		in.Fail("tag", "%q is not a traffic tag (lower-case letters, digits and hyphens, starting with a letter)", o.Tag)
	}
	if err := in.Err(); err != nil {
		return err
	}
	if noVerify {
		t.noVerify = true
		a.Warnf("verify is off: nothing checks that the new revision serves commit %s; Cloud Run's own readiness is all that gates traffic", commit.Short(o.SHA))
	}
	return runCloudRun(ctx, a, t, "deploy-cloudrun", in.String("reason"))
}

// cloudRunAPI connects to the Cloud Run Admin API with the target's Google
// credentials. GANTRY_CLOUDRUN_ENDPOINT (host:port) replaces the endpoint;
// on loopback it is plaintext gRPC, for tests.
func cloudRunAPI(ctx context.Context, a *action.Action, t *runTarget) (cloudrun.Clients, func(), string, error) {
	r := registryauth.NewResolver(registryauth.Options{
		GCPWorkloadIdentityProvider: t.wif, GCPServiceAccount: t.sa,
		Getenv: a.Getenv, OIDCToken: a.GitHub().GetIDToken,
		HTTPClient: &http.Client{Transport: a.Transport()}, Mask: a.Mask, Logf: a.Infof,
	})
	ts, source, err := r.GoogleTokenSource(ctx, "cloud run")
	if err != nil {
		return cloudrun.Clients{}, nil, "", err
	}
	opts := []option.ClientOption{option.WithTokenSource(ts), option.WithUserAgent(userAgent())}
	if ep := a.Getenv("GANTRY_CLOUDRUN_ENDPOINT"); ep != "" {
		opts = []option.ClientOption{option.WithEndpoint(ep), option.WithUserAgent(userAgent())}
		if host, _, _ := net.SplitHostPort(ep); host == "127.0.0.1" || host == "localhost" || host == "::1" {
			opts = append(opts, option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
				option.WithGRPCDialOption(grpc.WithPerRPCCredentials(loopbackToken{ts})))
		} else {
			opts = append(opts, option.WithTokenSource(ts))
		}
	}
	svc, err := cloudrunapi.NewServicesClient(ctx, opts...)
	if err != nil {
		return cloudrun.Clients{}, nil, "", fmt.Errorf("cloud run: %w", err)
	}
	rev, err := cloudrunapi.NewRevisionsClient(ctx, opts...)
	if err != nil {
		svc.Close()
		return cloudrun.Clients{}, nil, "", fmt.Errorf("cloud run: %w", err)
	}
	return cloudrun.Clients{Services: svc, Revisions: rev}, func() { svc.Close(); rev.Close() }, source, nil
}

// loopbackToken sends the access token over a plaintext loopback connection
// (a test server); gRPC's own OAuth credentials insist on TLS.
type loopbackToken struct{ ts oauth2.TokenSource }

func (l loopbackToken) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := l.ts.Token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok.AccessToken}, nil
}

func (loopbackToken) RequireTransportSecurity() bool { return false }

// runCloudRun deploys (or rolls back) and writes the outputs and the summary.
func runCloudRun(ctx context.Context, a *action.Action, t *runTarget, verb, reason string) error {
	o := t.opts
	o.Logf, o.Warnf = a.Infof, a.Warnf
	o.HTTPClient = &http.Client{Transport: a.Transport(), Timeout: 5 * time.Second}
	if !t.noVerify {
		o.Verify = func(ctx context.Context, url string, own bool) (verify.Result, error) {
			return verify.Wait(ctx, verify.Options{URL: url, SHA: o.SHA, Timeout: t.verifyTimeout, Logf: a.Infof, OwnAddress: own, Client: &http.Client{Transport: a.Transport()}})
		}
	}
	if reason != "" {
		a.Infof("reason: %s", reason)
	}
	start := time.Now()
	gh := startGitHubDeployment(ctx, a, githubDeploy{target: o.Service, sha: o.SHA, verb: verb, reason: reason, images: runImages(o), preview: o.Strategy == cloudrun.Preview})
	api, closeAPI, source, err := cloudRunAPI(ctx, a, t)
	if err != nil {
		gh.finish(ctx, history.ResultFailed, err, "")
		writeRunSummary(a, verb, o, &cloudrun.Result{Outcome: history.ResultFailed}, reason, err, time.Since(start))
		return err
	}
	defer closeAPI()
	a.Infof("%s: service %s in %s/%s, credentials from %s", verb, o.Service, o.Project, o.Region, source)
	res, err := cloudrun.Deploy(ctx, api, o)
	gh.finish(ctx, res.Outcome, err, runEnvironmentURL(o, res))
	set := func(name, value string) {
		if a.Spec().HasOutput(name) {
			a.SetOutput(name, value)
		}
	}
	set("result", res.Outcome)
	set("revision", res.Revision)
	set("previous-revision", res.PreviousRevision)
	set("url", res.URL)
	set("tag-url", res.TagURL)
	if tj, jerr := json.Marshal(res.TrafficAfter); jerr == nil && res.TrafficAfter != nil {
		set("traffic", string(tj))
	}
	if err == nil {
		set("deployed-sha", o.SHA)
	}
	writeRunSummary(a, verb, o, res, reason, err, time.Since(start))
	return err
}

func writeRunSummary(a *action.Action, verb string, o cloudrun.Options, res *cloudrun.Result, reason string, err error, took time.Duration) {
	s := a.Summary()
	writeVerdict(s, verb, res.Outcome, err)
	rows := [][]string{
		{"Service", action.Code(o.Service) + " in " + action.Code(o.Project) + " (" + action.Escape(o.Region) + ")"},
		{"Strategy", action.Escape(o.Strategy)},
	}
	if res.Revision != "" {
		prev := "none"
		if res.PreviousRevision != "" {
			prev = action.Code(res.PreviousRevision)
		}
		rows = append(rows, []string{"Revision", action.Code(res.Revision) + " (previous " + prev + ")"})
	}
	if o.SHA != "" {
		rows = append(rows, []string{"Commit", action.Code(commit.Short(o.SHA))})
	}
	if res.URL != "" {
		rows = append(rows, []string{"URL", action.Escape(res.URL)})
	}
	if res.TagURL != "" {
		rows = append(rows, []string{"Tag URL", action.Escape(res.TagURL)})
	}
	rows = append(rows, []string{"Traffic before", action.Escape(cloudrun.TrafficText(res.TrafficBefore))})
	if res.TrafficAfter != nil {
		rows = append(rows, []string{"Traffic after", action.Escape(cloudrun.TrafficText(res.TrafficAfter))})
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
	for _, w := range res.Warnings {
		fmt.Fprintf(s, "\n⚠️ %s\n", action.Escape(w))
	}
}
