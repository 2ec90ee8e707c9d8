package acceptance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/actionyml"
	"github.com/gantry-dev/gantry/internal/fakes/awsfake"
	"github.com/gantry-dev/gantry/internal/fakes/ecsfake"
	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// appFiles is a consumer's Go service: gantry's sample app as cmd/app of
// module example.com/shop, which the examples build.
func appFiles(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "examples", "app", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	files["go.mod"] = "module example.com/shop\n\ngo 1.26\n"
	files["cmd/app/main.go"] = string(src)
	return files
}

// flags turns name → value into repeated act flags (--var, --secret, --input).
func flags(flag string, kv map[string]string) []string {
	var out []string
	for k, v := range kv {
		out = append(out, flag, k+"="+v)
	}
	return out
}

// composeVM is a Compose host as the examples deploy to it: this machine's
// Docker engine behind a real sshd with a deploy user, a private registry
// for the app and a public one for the edge proxy's image.
type composeVM struct {
	sshd     *testenv.SSHD
	private  *testenv.Registry
	project  string
	edgePort int
	edge     string
}

func startComposeVM(t *testing.T, users map[string]string) *composeVM {
	t.Helper()
	testenv.Docker(t)
	testenv.Compose(t)
	public := testenv.StartRegistry(t, testenv.RegistryOptions{})
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	vm := &composeVM{
		sshd:     testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: true}),
		private:  testenv.StartRegistry(t, testenv.RegistryOptions{Users: users}),
		project:  "ex" + hex.EncodeToString(b),
		edgePort: testenv.FreePort(t),
		edge:     headDigest(t, testenv.CaddyImage(t, public.Host), nil),
	}
	t.Cleanup(vm.down)
	return vm
}

// down removes what the project left on the engine and the host.
func (vm *composeVM) down() { testenv.RemoveComposeProject(vm.project, vm.sshd.User) }

// vars are the repository (or environment) variables of the examples that
// point at this host; the edge image and ports override gantry's defaults
// through deploy.yml's own variables, since ghcr.io and port 80 are out of
// reach here.
func (vm *composeVM) vars() map[string]string {
	return map[string]string{
		"DEPLOY_HOST":        vm.sshd.Host,
		"DEPLOY_PORT":        fmt.Sprint(vm.sshd.Port),
		"DEPLOY_USER":        vm.sshd.User,
		"DEPLOY_KNOWN_HOSTS": vm.sshd.KnownHosts,
		"DEPLOY_PROJECT":     vm.project,
		"DEPLOY_EDGE_IMAGE":  vm.edge,
		"DEPLOY_EDGE_PORTS":  fmt.Sprintf("127.0.0.1:%d:80", vm.edgePort),
		"APP_URL":            fmt.Sprintf("http://127.0.0.1:%d", vm.edgePort),
	}
}

// served returns the commit the edge's /health reports.
func (vm *composeVM) served(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", vm.edgePort))
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		GitSHA string `json:"git_sha"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.GitSHA
}

// headDigest returns ref as repository@digest.
func headDigest(t *testing.T, ref string, auth authn.Authenticator) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	d, err := remote.Head(r, remote.WithAuth(auth))
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return r.Context().Digest(d.Digest.String()).String()
}

// TestExampleComposeSSH runs examples/1-compose-ssh as its user would: two
// pushes to main (tests, build-push.yml to a private registry with user
// nologin as on Scaleway, deploy.yml to a Compose host over SSH, verify,
// each deploy recorded as a GitHub Deployment), rollback.yml back to the
// previous version, deploy.yml by hand with the second commit (its image
// found by its sha- tag), deploy.yml with a contract check that fails after
// the deploy (rolled back), then a push whose new version reports another
// commit on /health: red, with the reason in the summary, and the version
// before it still serving.
func TestExampleComposeSSH(t *testing.T) {
	const password = "scw-secret-key-0123"
	vm := startComposeVM(t, map[string]string{"nologin": password})
	c := newConsumer(t, appFiles(t, exampleFiles(t, "1-compose-ssh")))
	vars := vm.vars()
	vars["REGISTRY"] = vm.private.Host + "/acme"
	// The default 2m for a new version to report its commit would only
	// make the red push slow.
	vars["DEPLOY_VERIFY_TIMEOUT"] = "10s"
	// The deploys are recorded as GitHub Deployments, here in the GitHub
	// API fake, with the job's token.
	gh := githubfake.Start(t, githubfake.Options{Repository: consumerRepo})
	args := append(flags("--var", vars), flags("--secret", map[string]string{
		"SCW_SECRET_KEY": password,
		"DEPLOY_SSH_KEY": string(vm.sshd.ClientKey),
		"GITHUB_TOKEN":   gh.APIToken(),
	})...)
	args = append(args, "--env", "GITHUB_API_URL="+gh.APIURL())
	run := func(what string, wantOK bool, event string, extra ...string) *actRun {
		t.Helper()
		r := c.Expect(t, what, wantOK, event, append(extra, args...)...)
		if strings.Contains(r.Log, password) || strings.Contains(r.Summary(), password) {
			t.Errorf("%s: the registry password is in the log or a summary", what)
		}
		return r
	}
	serving := func(what, want string) {
		t.Helper()
		if got := vm.served(t); got != want {
			t.Fatalf("after %s the host serves %q, want %s", what, got, want)
		}
	}

	r := run("push 1", true, "push")
	first := c.Head(t)
	expectRun(t, "push 1", r, nil, "### ✅ build-push", "### ✅ deploy-compose: success", "### ✅ verify: ",
		"🛡️ guard: deploy of `sha-"+first[:7]+"` to `production` approved")
	serving("push 1", first)
	if got := deploymentStates(gh, "production", first); got != "in_progress,success "+vars["APP_URL"]+"/health" {
		t.Errorf("GitHub Deployment of %s to production: %q", first[:7], got)
	}
	tag := vm.private.Host + "/acme/shop:sha-" + first[:7]
	if _, err := remote.Head(mustRef(t, tag)); err == nil {
		t.Errorf("%s answers without credentials: the registry is not private", tag)
	}
	headDigest(t, tag, &authn.Basic{Username: "nologin", Password: password})

	c.Commit(t, "second", map[string]string{"README.md": "second\n"})
	second := c.Head(t)
	run("push 2", true, "push")
	serving("push 2", second)

	r = run("rollback.yml", true, "workflow_dispatch", "-W", ".github/workflows/rollback.yml",
		"--input", "confirm=DEPLOY", "--input", "reason=checkout 500s")
	expectRun(t, "rollback.yml", r, nil, "### ✅ rollback")
	serving("rollback.yml", first)

	r = run("deploy.yml of the second commit", true, "workflow_dispatch", "-W", ".github/workflows/deploy.yml",
		"--input", "confirm=DEPLOY", "--input", "reason=fixed upstream", "--input", "sha="+second)
	expectRun(t, "deploy.yml", r, []string{"web: " + vm.private.Host + "/acme/shop:sha-" + second[:7] + " is sha256:"}, "### ✅ deploy-compose: success")
	serving("deploy.yml", second)

	// The first commit again, by hand, with a contract check it fails: the
	// deploy itself succeeds, deploy.yml's verify fails on the public URL
	// and its rollback puts the second commit back.
	r = run("deploy.yml with a failing contract check", false, "workflow_dispatch", "-W", ".github/workflows/deploy.yml",
		"--input", "confirm=DEPLOY", "--input", "reason=try the old one", "--input", "sha="+first,
		"--var", "DEPLOY_CHECKS=GET /health json.status=broken")
	expectRun(t, "contract check", r, nil, "### ✅ deploy-compose: success", "### ❌ verify: 1 of 1 contract checks failed", "### ✅ rollback")
	if got := [3]string{r.Step("deploy/deploy", "verify"), r.Step("deploy/deploy", "rollback"), r.Output("deploy/deploy", "rollback", "result")}; got != [3]string{"failure", "success", "success"} {
		t.Errorf("contract check: steps verify, rollback and rollback's result: %q, want failure, success, success", got)
	}
	serving("the rollback after the failed contract check", second)

	// A broken push: the new container reports another commit.
	compose := exampleFiles(t, "1-compose-ssh")["compose.yml"]
	broken := strings.Replace(compose, "    restart: unless-stopped\n", "    restart: unless-stopped\n    environment:\n      GIT_SHA: \"0000000000000000000000000000000000000000\"\n", 1)
	if broken == compose {
		t.Fatal("compose.yml changed: cannot break it")
	}
	c.Commit(t, "broken health", map[string]string{"compose.yml": broken})
	r = run("push 3 (reports another commit)", false, "push")
	expectRun(t, "push 3", r, nil, "deploy-compose: failed", "serves 0000000", "previous version kept serving")
	if got := [2]string{r.Step("deploy/deploy", "compose"), r.Output("deploy/deploy", "compose", "result")}; got != [2]string{"failure", "failed"} {
		t.Errorf("push 3: the deploy step's result and output: %q, want failure, failed", got)
	}
	serving("the failed push 3", second)
	if got := deploymentStates(gh, "production", c.Head(t)); !strings.HasPrefix(got, "in_progress,failure") {
		t.Errorf("GitHub Deployment of the broken commit: %q, want in_progress then failure", got)
	}
}

// deploymentStates lists the statuses of the GitHub Deployment of sha to
// environment, oldest first, and the last one's environment URL.
func deploymentStates(gh *githubfake.Server, environment, sha string) string {
	for _, d := range gh.Deployments(consumerRepo) {
		if d.GetEnvironment() != environment || d.GetSHA() != sha {
			continue
		}
		var states []string
		url := ""
		for _, s := range gh.DeploymentStatuses(consumerRepo, d.GetID()) {
			states = append(states, s.GetState())
			url = s.GetEnvironmentURL()
		}
		return strings.TrimSpace(strings.Join(states, ",") + " " + url)
	}
	return ""
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestExampleManualDeployWrongConfirm runs examples/3-artifact-registry-vms'
// deploy.yml by hand (workflow_dispatch) with a mistyped confirmation: the
// guard in gantry's deploy.yml refuses it, the deploy job never starts and
// the production host sees no SSH login.
func TestExampleManualDeployWrongConfirm(t *testing.T) {
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: true})
	c := newConsumer(t, appFiles(t, exampleFiles(t, "3-artifact-registry-vms")))
	vars := map[string]string{
		"GCP_PROJECT":        "acme",
		"DEPLOY_HOST":        sshd.Host,
		"DEPLOY_PORT":        fmt.Sprint(sshd.Port),
		"DEPLOY_USER":        sshd.User,
		"DEPLOY_KNOWN_HOSTS": sshd.KnownHosts,
		"DEPLOY_URL":         "http://127.0.0.1:1/health",
	}
	inputs := map[string]string{"target": "production", "confirm": "deploy", "reason": "release 2025-06-02"}
	args := append([]string{"-W", ".github/workflows/deploy.yml"}, flags("--input", inputs)...)
	args = append(args, flags("--var", vars)...)
	args = append(args, "--secret", "DEPLOY_SSH_KEY="+string(sshd.ClientKey))
	r := c.Expect(t, "refused manual deploy", false, "workflow_dispatch", args...)
	if r.Job(t, "/guard") != "failure" {
		t.Fatalf("a deploy confirmed with \"deploy\": jobs %v\n%s", r.Jobs, r)
	}
	if want := `confirm: guard: input "confirm": type DEPLOY to deploy to production (got "deploy")`; !slices.Contains(r.Errors, want) {
		t.Errorf("the guard did not say why: errors %q, want %q", r.Errors, want)
	}
	if got := r.Job(t, "/deploy"); got != "" || strings.Contains(r.Log, "deploy-compose") {
		t.Errorf("the deploy job ran (%q) after the guard refused:\n%s", got, r)
	}
	if strings.Contains(sshd.Log(), "Accepted publickey") {
		t.Errorf("the host saw a login:\n%s", sshd.Log())
	}
}

// TestExampleLoadtest runs examples/2-ecr-ecs' loadtest.yml by hand with a
// URL: gantry's loadtest.yml runs k6 against it, the verdict reaches the
// summary and the caller's outputs, and the report files go to the
// artifact.
func TestExampleLoadtest(t *testing.T) {
	k6Dir := testenv.K6Of(t, testenv.K6Majors[0]).PathDir(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) }))
	defer srv.Close()
	c := newConsumer(t, appFiles(t, exampleFiles(t, "2-ecr-ecs")))
	uploaded := t.TempDir()
	inputs := map[string]string{"url": srv.URL + "/health", "rate": "20", "duration": "2s"}
	args := append([]string{"-W", ".github/workflows/loadtest.yml",
		"--local-repository", uploadArtifactRef + "=" + uploadStandIn(t, uploaded),
		// act workaround: in host mode a job's PATH is act's own; k6 at its
		// pinned version on PATH is what a runner's tool cache would give.
		"--env", "PATH=" + k6Dir + string(os.PathListSeparator) + os.Getenv("PATH"),
	}, flags("--input", inputs)...)
	r := c.Expect(t, "load test", true, "workflow_dispatch", args...)
	expectRun(t, "loadtest.yml", r, nil, "**✅ api behind the ALB passed: all 2 thresholds passed")
	if got := r.Output("loadtest/load", "load", "verdict"); got != "pass" {
		t.Errorf("output verdict of the load step: %q, want pass\n%s", got, r)
	}
	for _, f := range []string{"summary.json", "report.html", "raw.json.gz"} {
		if st, err := os.Stat(filepath.Join(uploaded, "loadtest-report", f)); err != nil || st.Size() == 0 {
			t.Errorf("artifact loadtest-report lacks %s: %v", f, err)
		}
	}
}

// uploadArtifactRef is the actions/upload-artifact reference the loadtest
// action uses, which act resolves to uploadStandIn.
var uploadArtifactRef = strings.Fields(actionyml.UploadArtifact)[0]

// uploadStandIn is a local action standing in for actions/upload-artifact
// (act workaround: act reaches no GitHub here): it copies what it is given
// to dir/<name>, so the test sees exactly the files the real upload gets.
func uploadStandIn(t *testing.T, dir string) string {
	t.Helper()
	stub := t.TempDir()
	yml := fmt.Sprintf("name: upload stand-in\ninputs:\n  name: {required: true}\n  path: {required: true}\n  if-no-files-found: {required: false}\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env: {SRC: \"${{ inputs.path }}\", NAME: \"${{ inputs.name }}\"}\n      run: mkdir -p %q/\"$NAME\" && cp -R \"$SRC\"/. %q/\"$NAME\"/\n", dir, dir)
	if err := os.WriteFile(filepath.Join(stub, "action.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return stub
}

// TestExampleECR runs examples/2-ecr-ecs' ship.yml as a push to main: the
// image goes to "ECR" (a real registry behind ECR's auth, reached through
// a CONNECT proxy as 123456789012.dkr.ecr.us-east-1.amazonaws.com), the
// task definition from the repository is registered and the ECS service
// updated (the ECS fake, moving in real time), the load balancer's /health
// verified; AWS is reached with the job's OIDC token only.
func TestExampleECR(t *testing.T) {
	const region = "us-east-1"
	gh := githubfake.Start(t, githubfake.Options{Repository: consumerRepo})
	sts := awsfake.Start(t, awsfake.Options{})
	fake := ecsfake.Start(t, ecsfake.Options{Clusters: []string{"prod"}, Default: ecsfake.Behavior{StartAfter: time.Second},
		SteadyAfter: time.Second, StopAfter: time.Second, Tick: 100 * time.Millisecond,
		AccessKeys: sts.IssuedOr("AKIDSETUP")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fake.RunRealtime(ctx, 50*time.Millisecond)
	api := ecs.NewFromConfig(aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("AKIDSETUP", "setup", "")},
		func(o *ecs.Options) { o.BaseEndpoint = aws.String(fake.URL) })
	td, err := api.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("api"),
		ContainerDefinitions: []ecstypes.ContainerDefinition{{Name: aws.String("api"), Image: aws.String("registry.example/api:old"), Essential: aws.Bool(true)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateService(ctx, &ecs.CreateServiceInput{Cluster: aws.String("prod"), ServiceName: aws.String("api"),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn, DesiredCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	// The load balancer: /health reports the commit of the revision its
	// tasks serving production run.
	alb := httptest.NewServer(fake.Health("prod", "api", false))
	defer alb.Close()

	ecrHost := sts.RegistryHost(region)
	cert := testenv.NewCert(t, ecrHost)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{TLS: cert, Users: map[string]string{"AWS": sts.ECRPassword()}})
	proxy := testenv.ConnectProxy(t, map[string]string{ecrHost + ":443": reg.Host})

	c := newConsumer(t, appFiles(t, exampleFiles(t, "2-ecr-ecs")))
	roleARN := "arn:aws:iam::" + sts.Account() + ":role/gantry-deploy"
	env := map[string]string{
		"GITHUB_API_URL":            gh.APIURL(),
		"AWS_EC2_METADATA_DISABLED": "true",
		// act workaround: act has no OIDC endpoint; the fake's stands in.
		"ACTIONS_ID_TOKEN_REQUEST_URL":   gh.RequestURL(),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh.RequestToken(),
		// ECR's registry host resolves to the local registry through the
		// proxy, which trusts the test CA; the fakes are on loopback.
		"HTTPS_PROXY":   proxy,
		"SSL_CERT_FILE": cert.CertFile,
	}
	for _, m := range []map[string]string{sts.Env(), fake.Env()} {
		for k, v := range m {
			env[k] = v
		}
	}
	args := flags("--env", env)
	args = append(args, flags("--var", map[string]string{
		"AWS_ROLE_ARN": roleARN, "AWS_REGION": region, "ECR_REGISTRY": ecrHost,
		"ALB_DNS_NAME": strings.TrimPrefix(alb.URL, "http://"),
	})...)
	args = append(args, "--secret", "GITHUB_TOKEN="+gh.APIToken())
	r := c.Expect(t, "push to ECR and ECS", true, "push", args...)
	sha := c.Head(t)
	expectRun(t, "ship.yml", r, nil, "### ✅ build-push", "### ✅ deploy-ecs: success", "### ✅ verify: ")
	svc, err := api.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String("prod"), Services: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := api.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: svc.Services[0].TaskDefinition})
	if err != nil {
		t.Fatal(err)
	}
	image := aws.ToString(rendered.TaskDefinition.ContainerDefinitions[0].Image)
	if !strings.HasPrefix(image, ecrHost+"/api@sha256:") || aws.ToString(rendered.TaskDefinition.ExecutionRoleArn) == "" {
		t.Errorf("the service runs %s (execution role %q), want the example's task definition with the pushed digest",
			image, aws.ToString(rendered.TaskDefinition.ExecutionRoleArn))
	}
	if got := sts.CallCount("AssumeRoleWithWebIdentity"); got == 0 {
		t.Errorf("no OIDC exchange with STS")
	}
	if got := deploymentStates(gh, "production", sha); !strings.HasSuffix(got, "success "+alb.URL+"/health") {
		t.Errorf("GitHub Deployment of %s: %q", sha[:7], got)
	}
}
