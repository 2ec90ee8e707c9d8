package acceptance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// servedBy returns the commit the edge's /health reports for requests to
// host (the edge routes by host name).
func (vm *composeVM) servedBy(t *testing.T, host string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/health", vm.edgePort), nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /health of %s: %v", host, err)
	}
	defer resp.Body.Close()
	var body struct {
		GitSHA string `json:"git_sha"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.GitSHA
}

// replaceOnce replaces from with to in files[path], failing the test when
// the example no longer has from.
func replaceOnce(t *testing.T, files map[string]string, path, from, to string) {
	t.Helper()
	if !strings.Contains(files[path], from) {
		t.Fatalf("%s has no %q", path, from)
	}
	files[path] = strings.Replace(files[path], from, to, 1)
}

// TestExampleArtifactRegistryVMs runs examples/3-artifact-registry-vms as
// its users would. Two pushes to main run ci.yml: tests, the contract checks
// against the API started on the runner, then the API and dashboard images
// to Artifact Registry through Workload Identity Federation. Then deploy.yml
// by hand to the staging VM (a Compose host over SSH): the head commit, an
// earlier one (the rollback path: its images found by their sha- tags, no
// rebuild), and a commit that changes the items API, whose deploy contract
// check fails: rolled back, red, the reason in the summary; deployed again
// with allow-contract-failure, green with warnings.
func TestExampleArtifactRegistryVMs(t *testing.T) {
	const (
		wif       = "projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry"
		sa        = "deployer@acme.iam.gserviceaccount.com"
		apiHost   = "api.acme.example"
		dashHost  = "dashboard.acme.example"
		ci        = ".github/workflows/ci.yml"
		deployYML = ".github/workflows/deploy.yml"
	)
	vm := startComposeVM(t, nil)
	gh := githubfake.Start(t, githubfake.Options{Repository: consumerRepo})
	google := googlefake.Start(t, googlefake.Options{Provider: wif, ServiceAccounts: []string{sa}})
	cert, reg, proxy := startGoogleCloud(t, google, nil, "")

	src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "examples", "app", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	files := exampleFiles(t, "3-artifact-registry-vms")
	files["go.mod"] = "module example.com/acme\n\ngo 1.26\n"
	files["cmd/api/main.go"] = string(src)
	files["cmd/dashboard/main.go"] = string(src)
	// The contract job's API listens on a free port, not 8080, which a test
	// running beside this one may hold.
	replaceOnce(t, files, ci, `PORT: "8080"`, fmt.Sprintf(`PORT: "%d"`, testenv.FreePort(t)))
	// act workaround: act runs each step in a pseudo-terminal session and a
	// Go server started with `nohup ... &` dies when the step's shell exits
	// (on GitHub it lives until the job ends); setsid -f starts it in a
	// session of its own, writing its pid as the example's cleanup expects,
	// and the step waits for the pid: until then the forked child is still
	// in the step's session, which act hangs up when the step ends.
	replaceOnce(t, files, ci, "nohup ./dist/api > api.log 2>&1 &\n          echo $! > api.pid\n",
		"setsid -f sh -c 'echo $$ > api.pid.tmp && mv api.pid.tmp api.pid && exec ./dist/api' > api.log 2>&1 < /dev/null\n"+
			"          for i in $(seq 100); do [ -s api.pid ] && break; sleep 0.1; done\n")
	// The engine cannot resolve europe-docker.pkg.dev (see pullFromLoopback):
	// the VM pulls the same repositories at the registry's loopback address.
	for _, svc := range []string{"api", "dashboard"} {
		replaceOnce(t, files, deployYML, svc+"=europe-docker.pkg.dev/${{ vars.GCP_PROJECT }}/apps/"+svc,
			svc+"="+reg.Host+"/${{ vars.GCP_PROJECT }}/apps/"+svc)
	}
	replaceOnce(t, files, deployYML, "project: acme\n", "project: "+vm.project+"\n")
	c := newConsumer(t, files)

	// act workaround: act has no environments, so the staging environment's
	// variables and secret are the repository's here.
	vars := vm.vars()
	vars["GCP_PROJECT"] = "acme"
	vars["GCP_WORKLOAD_IDENTITY_PROVIDER"] = wif
	vars["GCP_SERVICE_ACCOUNT"] = sa
	vars["DEPLOY_URL"] = "http://" + apiHost + "/health"
	vars["DEPLOY_VERIFY_TIMEOUT"] = "20s"
	env := map[string]string{
		// act workaround: act has no OIDC endpoint; the fake's stands in.
		"ACTIONS_ID_TOKEN_REQUEST_URL":   gh.RequestURL(),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh.RequestToken(),
		"GITHUB_API_URL":                 gh.APIURL(),
		// Artifact Registry through the CONNECT proxy, under the test CA;
		// api.acme.example's DNS record (the VM's edge) through the edge
		// itself as the HTTP proxy.
		"HTTPS_PROXY":   proxy,
		"SSL_CERT_FILE": cert.CertFile,
		"HTTP_PROXY":    fmt.Sprintf("http://127.0.0.1:%d", vm.edgePort),
		"NO_PROXY":      "127.0.0.1,localhost",
	}
	for k, v := range google.Env() {
		env[k] = v
	}
	args := append(flags("--var", vars), flags("--env", env)...)
	args = append(args, flags("--secret", map[string]string{"DEPLOY_SSH_KEY": string(vm.sshd.ClientKey), "GITHUB_TOKEN": gh.APIToken()})...)

	push := func(what string) string {
		t.Helper()
		r := c.Expect(t, what, true, "push", args...)
		sha := c.Head(t)
		for _, job := range []string{"ci/test", "ci/contract", "build-api/build-push/build", "build-dashboard/build-push/build"} {
			if got := r.Jobs[job]; got != "success" {
				t.Errorf("%s: job %s: %q, want success (jobs %v)", what, job, got, r.Jobs)
			}
		}
		expectRun(t, what, r, nil, "### ✅ verify: `http://127.0.0.1:", "GET /api/v1/admin status=401", "### ✅ build-push")
		tr := testenv.Resolver(nil, cert)
		for _, svc := range []string{"api", "dashboard"} {
			digestOf(t, reg.Host+"/acme/apps/"+svc+":sha-"+sha[:7], tr)
		}
		return sha
	}
	deploy := func(what string, wantOK bool, inputs map[string]string) *actRun {
		t.Helper()
		in := map[string]string{"target": "staging", "confirm": "DEPLOY", "reason": what}
		for k, v := range inputs {
			in[k] = v
		}
		return c.Expect(t, what, wantOK, "workflow_dispatch", append(append([]string{"-W", deployYML}, flags("--input", in)...), args...)...)
	}
	serving := func(what, want string) {
		t.Helper()
		for _, host := range []string{apiHost, dashHost} {
			if got := vm.servedBy(t, host); got != want {
				t.Errorf("after %s %s serves %q, want %s", what, host, got, want)
			}
		}
	}

	first := push("push 1")
	c.Commit(t, "second", map[string]string{"README.md": "second\n"})
	second := push("push 2")

	r := deploy("QA of #482", true, nil)
	expectRun(t, "deploy of the head", r, []string{"api: " + reg.Host + "/acme/apps/api:sha-" + second[:7] + " is sha256:"},
		"🛡️ guard: deploy of `sha-"+second[:7]+"` to `staging` approved", "### ✅ deploy-compose: success", "### ✅ verify: `http://"+apiHost+"/health`")
	serving("the deploy of the head", second)
	if got := deploymentStates(gh, "staging", second); got != "in_progress,success http://"+apiHost+"/health" {
		t.Errorf("GitHub Deployment of %s to staging: %q", second[:7], got)
	}

	r = deploy("5xx on /orders since 14:02", true, map[string]string{"sha": first[:7]})
	expectRun(t, "deploy of an earlier commit", r, []string{"dashboard: " + reg.Host + "/acme/apps/dashboard:sha-" + first[:7] + " is sha256:"},
		"### ✅ deploy-compose: success")
	serving("the deploy of an earlier commit", first)

	// A breaking change of the items API: ci.yml's contract follows it,
	// the deploy's contract (what the dashboard relies on) does not.
	replaceOnce(t, files, "cmd/api/main.go", `map[string]any{"items":`, `map[string]any{"products":`)
	replaceOnce(t, files, ci, "json.items exists", "json.products exists")
	c.Commit(t, "items are products now", map[string]string{"cmd/api/main.go": files["cmd/api/main.go"], ci: files[ci]})
	third := push("push 3")

	r = deploy("items API change", false, nil)
	expectRun(t, "deploy with a failing contract", r, nil, "### ✅ deploy-compose: success",
		"### ❌ verify: 1 of 3 contract checks failed", "json.items is missing", "### ✅ rollback")
	if got := [2]string{r.Step("deploy/deploy", "verify"), r.Step("deploy/deploy", "rollback")}; got != [2]string{"failure", "success"} {
		t.Errorf("steps verify and rollback: %q, want failure then success (steps %v)", got, r.Steps)
	}
	serving("the rolled-back deploy", first)

	r = deploy("items API change, dashboard follows", true, map[string]string{"allow-contract-failure": "true"})
	expectRun(t, "deploy with allow-contract-failure", r, nil, "### ✅ deploy-compose: success",
		"### ⚠️ verify: `http://"+apiHost+"/health` serves `"+third[:7]+"`, with 1 failed contract check(s)")
	if got := r.Step("deploy/deploy", "rollback"); got != "" {
		t.Errorf("the rollback step ran (%s) after an allowed contract failure", got)
	}
	serving("the deploy with allow-contract-failure", third)
}
