//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// bench holds what every round shares: the release and its server.
type bench struct {
	c         config
	root, tmp string
	rel       *release
	srv       *releaseServer
	// baseEnv is this process's environment without anything a runner,
	// gantry or gcloud would read as configuration, nor proxies.
	baseEnv []string
}

func newBench(ctx context.Context, c config, root, tmp string) (*bench, error) {
	b := &bench{c: c, root: root, tmp: tmp}
	dist := filepath.Join(tmp, "dist")
	if err := os.MkdirAll(dist, 0o755); err != nil {
		return nil, err
	}
	var err error
	if b.rel, err = buildRelease(ctx, root, dist, c.ReleaseVersion); err != nil {
		return nil, err
	}
	logf("release %s: binary %d bytes, %s %d bytes (%s), %s %d bytes", c.ReleaseVersion, b.rel.BinarySize,
		linuxAsset, len(b.rel.Archive), strings.Join(b.rel.Files, " + "), checksumsTx, len(b.rel.Checksums))
	if b.srv, err = startReleaseServer(b.rel, b.rel.Version); err != nil {
		return nil, err
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch uk := strings.ToUpper(k); {
		case strings.HasPrefix(k, "GITHUB_"), strings.HasPrefix(k, "RUNNER_"), strings.HasPrefix(k, "ACTIONS_"),
			strings.HasPrefix(k, "GANTRY_"), strings.HasPrefix(k, "INPUT_"), strings.HasPrefix(k, "GOOGLE_"),
			strings.HasPrefix(k, "CLOUDSDK_"), strings.HasPrefix(k, "GCE_"),
			k == "HOME", k == "TMPDIR", k == "DOCKER_CONFIG", k == "XDG_CACHE_HOME", k == "XDG_CONFIG_HOME",
			uk == "HTTP_PROXY", uk == "HTTPS_PROXY", uk == "ALL_PROXY", uk == "NO_PROXY", k == "SSL_CERT_FILE", k == "SSL_CERT_DIR",
			k == "REQUESTS_CA_BUNDLE", k == "HTTPLIB2_CA_CERTS", k == "CURL_CA_BUNDLE", k == "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH":
			continue
		}
		b.baseEnv = append(b.baseEnv, kv)
	}
	return b, nil
}

func (b *bench) Close() {
	if b.srv != nil {
		b.srv.Close()
	}
}

// gantrySample is one round of gantry: times are from the step's start
// (install.sh launched).
type gantrySample struct {
	Install     time.Duration // install.sh launched → exited
	GantryStart time.Duration // the installed gantry launched
	OIDC        time.Duration // first request to GitHub's OIDC endpoint
	STS, IAM    time.Duration // first token exchange, first generateAccessToken
	FirstCall   time.Duration // first gRPC call at the Cloud Run API
	DeployDone  time.Duration // gantry exited
	FirstMethod string        // the first call's RPC, e.g. GetService
	Calls       int           // Cloud Run calls of the whole deploy
	Downloaded  int64         // bytes the release server sent, headers included
	Requests    []string      // what the installer asked the release server
	Result      string        // gantry's result output
	Err         error
}

// gantryRound runs what actions/deploy-cloudrun runs on a fresh runner: its
// install step (scripts/install.sh with the action's ref, a fresh tool
// cache) and then its run step (the installed binary with the inputs as
// INPUT_ variables), against fresh fakes.
func (b *bench) gantryRound(ctx context.Context, mbit int) (s gantrySample) {
	dir, err := os.MkdirTemp(b.tmp, "gantry-round-")
	if err != nil {
		return gantrySample{Err: err}
	}
	defer os.RemoveAll(dir)
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, d := range []string{"toolcache", "runner-temp", "home"} {
		if err := os.MkdirAll(p(d), 0o755); err != nil {
			return gantrySample{Err: err}
		}
	}
	for _, f := range []string{"install-output", "github-path", "run-output", "summary"} {
		if err := os.WriteFile(p(f), nil, 0o644); err != nil {
			return gantrySample{Err: err}
		}
	}
	cl, err := startCloud()
	if err != nil {
		return gantrySample{Err: err}
	}
	defer cl.Close()
	b.srv.reset(mbit)

	runner := append(b.env(p("home")),
		"GITHUB_ACTIONS=true", "RUNNER_OS=Linux", "RUNNER_ARCH=X64",
		"RUNNER_TOOL_CACHE="+p("toolcache"), "RUNNER_TEMP="+p("runner-temp"), "GITHUB_PATH="+p("github-path"),
		"GITHUB_WORKSPACE="+dir, "GITHUB_ACTOR=octocat", "GITHUB_SHA="+deploySHA)
	for k, v := range cl.gh.Env() {
		runner = append(runner, k+"="+v)
	}

	// The install step, as action.yml runs it.
	install := append(runner[:len(runner):len(runner)], "GITHUB_OUTPUT="+p("install-output"),
		"GANTRY_ACTION_REF="+b.c.Version, "GANTRY_ACTION_REPOSITORY="+releaseRepository,
		"GANTRY_RELEASE_BASE_URL="+b.srv.URL)
	start := time.Now()
	// The action's checkout is the release's commit: HEAD's install.sh.
	if _, err := b.exec(ctx, install, dir, "bash", filepath.Join(b.rel.SrcDir, "scripts", "install.sh")); err != nil {
		return gantrySample{Err: fmt.Errorf("install step: %w", err)}
	}
	s.Install = time.Since(start)
	s.Downloaded, s.Requests = b.srv.take()
	out, err := readOutputs(p("install-output"))
	if err != nil {
		return gantrySample{Err: err}
	}
	if out["need-build"] != "false" || out["bin"] == "" {
		return gantrySample{Err: fmt.Errorf("install.sh did not install the release (outputs %v)", out)}
	}

	// The run step: '"$GANTRY_BIN" deploy-cloudrun' with the inputs.
	inputs := map[string]string{
		"SERVICE": runService, "REGION": runRegion, "IMAGE": runImage, "SHA": deploySHA,
		"GCP_PROJECT": runProject, "GCP_WORKLOAD_IDENTITY_PROVIDER": wifProvider, "GCP_SERVICE_ACCOUNT": runSA,
		// The fake's *.run.app URLs are not reachable from another process
		// without a TLS front and a proxy; verify comes after the first call.
		"VERIFY": "false",
		// The fake reconciles in 1 s; the default 2 s poll would only lengthen
		// the part after the first call.
		"POLL_INTERVAL": "200ms",
		"STRATEGY":      "all", "CANARY_STEPS": "10,50,100", "CANARY_INTERVAL": "1m", "VERIFY_TIMEOUT": "2m",
		"AUTO_ROLLBACK": "true", "TIMEOUT": "10m", "LOCK_WAIT": "10m", "HEALTH_PATH": "/health",
	}
	for _, name := range []string{"ENV", "SECRETS", "CPU", "MEMORY", "MIN_INSTANCES", "MAX_INSTANCES", "CONCURRENCY", "PORT",
		"SERVICE_ACCOUNT", "INGRESS", "LABELS", "TAG", "URL", "REASON"} {
		inputs[name] = ""
	}
	step := append(runner[:len(runner):len(runner)], "GITHUB_OUTPUT="+p("run-output"), "GITHUB_STEP_SUMMARY="+p("summary"),
		"GANTRY_BIN="+out["bin"], "GANTRY_CLOUDRUN_ENDPOINT="+cl.RunAddr)
	for k, v := range cl.google.Env() {
		step = append(step, k+"="+v)
	}
	for k, v := range inputs {
		step = append(step, "INPUT_"+k+"="+v)
	}
	s.GantryStart = time.Since(start)
	log, err := b.exec(ctx, step, dir, "bash", "-c", `"$GANTRY_BIN" deploy-cloudrun`)
	s.DeployDone = time.Since(start)
	since := func(what string) time.Duration {
		if t := cl.rec.at(what); !t.IsZero() {
			return t.Sub(start)
		}
		return 0
	}
	s.OIDC, s.STS, s.IAM, s.FirstCall = since(evOIDC), since(evSTS), since(evIAM), since(evRun)
	calls := cl.run.Calls()
	s.Calls = len(calls)
	if len(calls) > 0 {
		s.FirstMethod = calls[0].Method
	}
	runOut, _ := readOutputs(p("run-output"))
	s.Result = runOut["result"]
	switch {
	case err != nil:
		s.Err = fmt.Errorf("run step: %w", err)
	case s.FirstCall == 0:
		s.Err = fmt.Errorf("the Cloud Run fake saw no call\n%s", tail(log, 2000))
	case s.Result != "success":
		s.Err = fmt.Errorf("deploy result %q, want success\n%s", s.Result, tail(log, 2000))
	case len(cl.gh.Issued()) == 0 || len(cl.google.AccessTokens()) == 0:
		s.Err = errors.New("no Workload Identity Federation exchange happened")
	}
	return s
}

// gcloudSample is one round of an installed gcloud; times are from
// `gcloud run deploy` launched.
type gcloudSample struct {
	OIDC, STS, IAM time.Duration
	FirstCall      time.Duration // first request at a Cloud Run host
	FirstTarget    string        // that request: method, host and path
	Before         []string      // every other request before it, in order
	Err            error
}

// gcloudRound starts `gcloud run deploy` as a workflow does after
// google-github-actions/auth (an external_account credentials file for
// Workload Identity Federation, exported in CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE)
// and setup-gcloud, with a fresh configuration directory, and times it to
// its first Cloud Run request, which the bench's proxy refuses (it cannot
// leave the machine); gcloud is then stopped.
func (b *bench) gcloudRound(ctx context.Context, gcloud string) (s gcloudSample) {
	dir, err := os.MkdirTemp(b.tmp, "gcloud-round-")
	if err != nil {
		return gcloudSample{Err: err}
	}
	defer os.RemoveAll(dir)
	cl, err := startCloud()
	if err != nil {
		return gcloudSample{Err: err}
	}
	defer cl.Close()

	// What google-github-actions/auth writes for workload_identity_provider
	// and service_account, with the Google endpoints pointed at the fakes.
	audience := "//iam.googleapis.com/" + wifProvider
	creds := map[string]any{
		"type":                              "external_account",
		"audience":                          audience,
		"subject_token_type":                "urn:ietf:params:oauth:token-type:jwt",
		"token_url":                         cl.google.TokenURL(),
		"service_account_impersonation_url": cl.google.ImpersonationURL(runSA),
		"credential_source": map[string]any{
			"url":     cl.gh.RequestURL() + "&audience=" + "https:" + audience,
			"headers": map[string]string{"Authorization": "Bearer " + cl.gh.RequestToken()},
			"format":  map[string]string{"type": "json", "subject_token_field_name": "value"},
		},
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, cl.CAPEM, 0o600); err != nil {
		return gcloudSample{Err: err}
	}
	credFile := filepath.Join(dir, "gha-creds.json")
	data, err := json.Marshal(creds)
	if err != nil {
		return gcloudSample{Err: err}
	}
	if err := os.WriteFile(credFile, data, 0o600); err != nil {
		return gcloudSample{Err: err}
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return gcloudSample{Err: err}
	}
	proxyHost, proxyPort, _ := strings.Cut(strings.TrimPrefix(cl.ProxyURL, "http://"), ":")
	env := append(b.env(home), "GITHUB_ACTIONS=true",
		"CLOUDSDK_CONFIG="+filepath.Join(dir, "gcloud-config"),
		"CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE="+credFile, "GOOGLE_APPLICATION_CREDENTIALS="+credFile,
		"CLOUDSDK_CORE_PROJECT="+runProject,
		// As setup-gcloud leaves it: no prompts, no update check.
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1", "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=true",
		"CLOUDSDK_METRICS_ENVIRONMENT=github-actions-setup-gcloud", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true",
		// Everything goes through the bench's proxy, which answers for the
		// fakes and refuses the rest.
		"CLOUDSDK_PROXY_TYPE=http", "CLOUDSDK_PROXY_ADDRESS="+proxyHost, "CLOUDSDK_PROXY_PORT="+proxyPort,
		"HTTP_PROXY="+cl.ProxyURL, "HTTPS_PROXY="+cl.ProxyURL, "NO_PROXY=",
		// The proxy answers *.googleapis.com with the round's certificate.
		"CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE="+caFile)

	cctx, cancel := context.WithTimeout(ctx, b.c.StepTimeout)
	defer cancel()
	cmd := exec.Command(gcloud, "run", "deploy", runService, "--image="+runImage, "--region="+runRegion, "--project="+runProject, "--quiet")
	cmd.Dir, cmd.Env = dir, env
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	// Its own process group, so that stopping it stops the Python it runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return gcloudSample{Err: err}
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var waitErr error
	exitedAlready := false
wait:
	for cl.rec.at(evRun).IsZero() {
		select {
		case waitErr = <-exited:
			exitedAlready = true
			break wait
		case <-cctx.Done():
			break wait
		case <-tick.C:
		}
	}
	if !exitedAlready {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		waitErr = <-exited
	}
	since := func(what string) time.Duration {
		if t := cl.rec.at(what); !t.IsZero() {
			return t.Sub(start)
		}
		return 0
	}
	s.OIDC, s.STS, s.IAM, s.FirstCall = since(evOIDC), since(evSTS), since(evIAM), since(evRun)
	for _, what := range cl.rec.seen() {
		switch {
		case strings.HasPrefix(what, runRequestPrefix):
			if s.FirstTarget == "" {
				s.FirstTarget = strings.TrimPrefix(what, runRequestPrefix)
			}
		case what == evRun, strings.HasPrefix(what, "CONNECT "):
		case s.FirstTarget == "":
			s.Before = append(s.Before, what)
		}
	}
	if s.FirstCall == 0 {
		s.Err = fmt.Errorf("gcloud made no Cloud Run request (exit: %v; requests seen: %v)\n%s", waitErr, cl.rec.seen(), tail(outBuf.String(), 2000))
	}
	return s
}

// env is the base environment with a private HOME.
func (b *bench) env(home string) []string {
	return append(b.baseEnv[:len(b.baseEnv):len(b.baseEnv)], "HOME="+home, "TMPDIR="+filepath.Join(home))
}

// exec runs argv in env and dir within the step timeout and returns what
// it printed; the error carries the end of it.
func (b *bench) exec(ctx context.Context, env []string, dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.c.StepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, tail(out.String(), 3000))
	}
	return out.String(), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// versions reports the version of every program involved.
func (b *bench) versions(ctx context.Context, g gcloudInfo) map[string]string {
	first := func(argv ...string) string {
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
		if err != nil {
			return "unknown"
		}
		for _, line := range strings.Split(string(out), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				return line
			}
		}
		return "unknown"
	}
	v := map[string]string{
		"gantry": fmt.Sprintf("commit %s (HEAD: binary and scripts/install.sh from `git archive HEAD`, binary stamped %s; the work tree, not measured: %s)", b.rel.Commit, b.c.ReleaseVersion, benchenv.GantryBuild(ctx, b.root)),
		"curl":   first("curl", "--version"),
		"bash":   first("bash", "--version"),
		"gcloud": "not installed",
	}
	if g.Path != "" {
		v["gcloud"] = g.Version
	}
	return v
}
