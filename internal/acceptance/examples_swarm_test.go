package acceptance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	run "cloud.google.com/go/run/apiv2"
	"cloud.google.com/go/run/apiv2/runpb"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
	"github.com/gantry-dev/gantry/internal/testenv"
)

// swarmManager is a Swarm manager as the examples deploy to it: this
// machine's engine in swarm mode behind a real sshd with a deploy user.
type swarmManager struct {
	sshd  *testenv.SSHD
	stack string
}

// startSwarmManager returns the manager for stack, which the examples name
// in their workflows; the stack and its history on the manager are removed
// when the test ends, and before it starts if a killed run left them.
func startSwarmManager(t *testing.T, stack string) *swarmManager {
	t.Helper()
	testenv.Swarm(t)
	m := &swarmManager{sshd: testenv.StartSSHD(t, testenv.SSHDOptions{DeployUser: true}), stack: stack}
	m.down(t)
	t.Cleanup(func() { m.down(t) })
	return m
}

// down removes the stack and waits until its services and networks are
// gone (docker stack rm returns before), so that the next stack of the same
// name starts clean; then the stack's history on the manager.
func (m *swarmManager) down(t *testing.T) {
	t.Helper()
	m.rmStack(t)
	if u, err := user.Lookup(m.sshd.User); err == nil {
		_ = os.RemoveAll(filepath.Join(u.HomeDir, "gantry", m.stack))
	}
}

// rmStack removes the stack only, as a user switching from ship.yml to
// ship-edge.yml does, keeping its history. What the engine still holds a
// minute after docker stack rm (it once kept a container or network for
// longer) is logged and removed by force.
func (m *swarmManager) rmStack(t *testing.T) {
	t.Helper()
	_ = exec.Command("docker", "stack", "rm", m.stack).Run()
	if testenv.Eventually(time.Minute, 200*time.Millisecond, func() bool { return len(m.leftovers()) == 0 }) {
		return
	}
	left := m.leftovers()
	t.Logf("stack %s a minute after docker stack rm still has %v; removing them by force", m.stack, left)
	for kind, ids := range left {
		rm := []string{kind, "rm"}
		if kind == "container" {
			rm = append(rm, "--force")
		}
		_ = exec.Command("docker", append(rm, ids...)...).Run()
	}
	if !testenv.Eventually(30*time.Second, 200*time.Millisecond, func() bool { return len(m.leftovers()) == 0 }) {
		t.Errorf("stack %s still has %v after docker stack rm and a forced removal", m.stack, m.leftovers())
	}
}

// leftovers lists the stack's services, networks and containers the engine
// still has (kind → IDs).
func (m *swarmManager) leftovers() map[string][]string {
	left := map[string][]string{}
	for kind, ls := range map[string][]string{"service": {"service", "ls"}, "network": {"network", "ls"}, "container": {"ps", "-a"}} {
		out, err := exec.Command("docker", append(ls, "-q", "--filter", "label=com.docker.stack.namespace="+m.stack)...).Output()
		if err != nil {
			left[kind] = append(left[kind], "(docker "+ls[0]+" failed: "+err.Error()+")")
			continue
		}
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			left[kind] = ids
		}
	}
	return left
}

// vars are the repository variables of the Swarm examples for this manager.
func (m *swarmManager) vars(appURL string) map[string]string {
	return map[string]string{
		"DEPLOY_HOST":        m.sshd.Host,
		"DEPLOY_PORT":        fmt.Sprint(m.sshd.Port),
		"DEPLOY_USER":        m.sshd.User,
		"DEPLOY_KNOWN_HOSTS": m.sshd.KnownHosts,
		"APP_URL":            appURL,
		"DEPLOY_URL":         appURL + "/health",
	}
}

// servedSHA returns the commit url's /health reports, "" if it does not answer.
func servedSHA(url string) string {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		GitSHA string `json:"git_sha"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return body.GitSHA
}

// serviceImages returns the image of each service of stack (name → image).
func serviceImages(t *testing.T, stack string) map[string]string {
	t.Helper()
	out, err := exec.Command("docker", "service", "ls", "--filter", "label=com.docker.stack.namespace="+stack, "--format", "{{.Name}} {{.Image}} {{.Replicas}}").Output()
	if err != nil {
		t.Fatalf("docker service ls: %v", err)
	}
	images := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			images[f[0]] = f[1] + " " + f[2]
		}
	}
	return images
}

// ghcr is GitHub Container Registry as example 4 meets it: a real registry
// that takes the job's actor and GITHUB_TOKEN, served as ghcr.io over TLS
// through a CONNECT proxy (HTTPS_PROXY, SSL_CERT_FILE) for gantry under act,
// and at its loopback address for the Swarm engine.
type ghcr struct {
	reg   *testenv.Registry
	cert  *testenv.Cert
	env   map[string]string
	token string
}

// ghcrActor is the GitHub user the example runs are triggered by.
const ghcrActor = "octocat"

func startGHCR(t *testing.T, token string) *ghcr {
	t.Helper()
	cert := testenv.NewCert(t, "ghcr.io")
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{TLS: cert, Users: map[string]string{ghcrActor: token}})
	proxy := testenv.ConnectProxy(t, map[string]string{"ghcr.io:443": reg.Host})
	return &ghcr{reg: reg, cert: cert, token: token, env: map[string]string{"HTTPS_PROXY": proxy, "SSL_CERT_FILE": cert.CertFile}}
}

// digest returns the digest ref (ghcr.io/...:tag) points at, asked as
// the actor.
func (g *ghcr) digest(t *testing.T, ref string) string {
	t.Helper()
	r := mustRef(t, ref)
	tr := testenv.Resolver(map[string]string{"ghcr.io:443": g.reg.Host}, g.cert)
	d, err := remote.Head(r, remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: ghcrActor, Password: g.token}))
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return d.Digest.String()
}

// pullFromLoopback rewrites the deploy job's images of an example 4
// workflow from ghcr.io to the registry's loopback address: the workaround
// for the one thing this machine cannot do as a GitHub runner's target
// would, the Swarm engine resolving ghcr.io (it takes no HTTPS_PROXY of
// ours and the host's DNS has no such name). build-push still pushes to
// ghcr.io with GITHUB_TOKEN, and the manager still logs in with the actor
// and GITHUB_TOKEN from the workflow to pull.
func (g *ghcr) pullFromLoopback(t *testing.T, files map[string]string, workflow string) {
	t.Helper()
	const from = "images: web=ghcr.io/${{ github.repository }}@"
	wf := files[workflow]
	if !strings.Contains(wf, from) {
		t.Fatalf("%s has no %q to point at the local registry", workflow, from)
	}
	files[workflow] = strings.Replace(wf, from, "images: web="+g.reg.Host+"/${{ github.repository }}@", 1)
}

// TestExampleGHCRSwarm runs examples/4-ghcr-swarm's ship.yml as two pushes
// to main: tests, build-push.yml to ghcr.io with the job's GITHUB_TOKEN,
// deploy.yml to a Swarm manager over SSH (docker stack deploy
// --with-registry-auth, logged in with the actor and GITHUB_TOKEN), the
// second push a rolling update of the three replicas (start-first, one at a
// time), verified through a stand-in for the routing mesh (see
// testenv.SwarmIngress) and recorded as GitHub Deployments.
func TestExampleGHCRSwarm(t *testing.T) {
	m := startSwarmManager(t, "shop")
	ingress := "http://" + testenv.SwarmIngress(t, "shop_web", 8080)
	gh := githubfake.Start(t, githubfake.Options{Repository: consumerRepo})
	reg := startGHCR(t, gh.APIToken())
	files := appFiles(t, exampleFiles(t, "4-ghcr-swarm"))
	reg.pullFromLoopback(t, files, ".github/workflows/ship.yml")
	// The rolling update as stack.yml has it (one task at a time,
	// start-first), with shorter pauses: 5 s between tasks and 15 s of
	// monitoring would only make the test slow.
	for from, to := range map[string]string{"delay: 5s": "delay: 1s", "monitor: 15s": "monitor: 3s"} {
		if !strings.Contains(files["stack.yml"], from) {
			t.Fatalf("examples/4-ghcr-swarm/stack.yml has no %q", from)
		}
		files["stack.yml"] = strings.Replace(files["stack.yml"], from, to, 1)
	}
	c := newConsumer(t, files)

	vars := m.vars(ingress)
	env := map[string]string{"GITHUB_API_URL": gh.APIURL()}
	for k, v := range reg.env {
		env[k] = v
	}
	args := append(flags("--var", vars), flags("--env", env)...)
	args = append(args, flags("--secret", map[string]string{"DEPLOY_SSH_KEY": string(m.sshd.ClientKey), "GITHUB_TOKEN": reg.token})...)
	args = append(args, "--actor", ghcrActor)

	for i, what := range []string{"push 1 (stack created)", "push 2 (rolling update)"} {
		if i > 0 {
			c.Commit(t, "second", map[string]string{"README.md": "second\n"})
		}
		sha := c.Head(t)
		run := c.Expect(t, what, true, "push", args...)
		if strings.Contains(run.Log, reg.token) || strings.Contains(run.Summary(), reg.token) {
			t.Errorf("%s: GITHUB_TOKEN is in the log or a summary", what)
		}
		expectRun(t, what, run, []string{"registry auth: ghcr.io: GitHub token of " + ghcrActor},
			"### ✅ build-push", "### ✅ deploy-swarm: success", "### ✅ verify: ")
		if got := servedSHA(ingress); got != sha {
			t.Errorf("after %s the stack serves %q, want %s", what, got, sha)
		}
		if got := deploymentStates(gh, "production", sha); got != "in_progress,success "+ingress+"/health" {
			t.Errorf("%s: GitHub Deployment of %s to production: %q", what, sha[:7], got)
		}
		// The image build-push pushed to ghcr.io, by the digest the
		// manager pulled.
		tag := "ghcr.io/" + consumerRepo + ":sha-" + sha[:7]
		img := serviceImages(t, m.stack)["shop_web"]
		if want := "@" + reg.digest(t, tag) + " 3/3"; !strings.HasSuffix(img, want) {
			t.Errorf("%s: shop_web runs %q, want %s/%s%s", what, img, reg.reg.Host, consumerRepo, want)
		}
	}

	// scale.yml by hand: a typo is refused before the manager is touched,
	// then web goes to 2 replicas, under the stack's lock.
	before := serviceImages(t, m.stack)["shop_web"]
	scale := func(replicas string, wantOK bool) *actRun {
		return c.Expect(t, "scale.yml with replicas="+replicas, wantOK, "workflow_dispatch",
			append([]string{"-W", ".github/workflows/scale.yml", "--input", "replicas=" + replicas}, args...)...)
	}
	r := scale("two", false)
	if want := `scale: swarm-scale: input "scale": "web=two" is not service=N with N a whole number of replicas`; !slices.Contains(r.Errors, want) {
		t.Errorf("scale.yml with replicas=two: errors %q, want %q", r.Errors, want)
	}
	if got := serviceImages(t, m.stack)["shop_web"]; got != before {
		t.Errorf("a refused scale changed shop_web: %q, was %q", got, before)
	}
	r = scale("2", true)
	if want := strings.TrimSuffix(before, "3/3") + "2/2"; serviceImages(t, m.stack)["shop_web"] != want {
		t.Errorf("after scale.yml shop_web is %q, want %q", serviceImages(t, m.stack)["shop_web"], want)
	}
	expectRun(t, "scale.yml", r, nil, "### ✅ swarm-scale", "3 → 2")
}

// TestExampleGHCRSwarmEdge runs examples/4-ghcr-swarm's ship-edge.yml by
// hand twice on stack-edge.yml: blue-green (the first deploy, with gantry's
// edge proxy on the manager publishing its port in host mode), then canary
// in two steps to the other color, each a build-push to ghcr.io and a deploy
// verified through the edge, the old color scaled to 0.
func TestExampleGHCRSwarmEdge(t *testing.T) {
	m := startSwarmManager(t, "shop")
	gh := githubfake.Start(t, githubfake.Options{Repository: consumerRepo})
	reg := startGHCR(t, gh.APIToken())
	// The edge's image comes from a registry of its own here (ghcr.io's
	// gantry-edge is out of reach), through deploy.yml's variables.
	public := testenv.StartRegistry(t, testenv.RegistryOptions{})
	edgePort := testenv.FreePort(t)
	files := appFiles(t, exampleFiles(t, "4-ghcr-swarm"))
	reg.pullFromLoopback(t, files, ".github/workflows/ship-edge.yml")
	c := newConsumer(t, files)

	app := fmt.Sprintf("http://127.0.0.1:%d", edgePort)
	vars := m.vars(app)
	vars["DEPLOY_EDGE_IMAGE"] = headDigest(t, testenv.CaddyImage(t, public.Host), nil)
	vars["DEPLOY_EDGE_PORTS"] = fmt.Sprintf("%d:80", edgePort)
	env := map[string]string{"GITHUB_API_URL": gh.APIURL()}
	for k, v := range reg.env {
		env[k] = v
	}
	args := []string{"-W", ".github/workflows/ship-edge.yml", "--actor", ghcrActor}
	args = append(args, flags("--var", vars)...)
	args = append(args, flags("--env", env)...)
	args = append(args, flags("--secret", map[string]string{"DEPLOY_SSH_KEY": string(m.sshd.ClientKey), "GITHUB_TOKEN": reg.token})...)

	runs := []struct {
		what   string
		inputs map[string]string
		wants  []string
	}{
		{"blue-green", map[string]string{"strategy": "blue-green"}, nil},
		{"canary", map[string]string{"strategy": "canary", "canary-steps": "50,100", "canary-interval": "2s"},
			[]string{"canary: 50% of web's traffic to web-", "canary of web at 50%: 0 of "}},
	}
	var colors []string
	for i, r := range runs {
		if i > 0 {
			c.Commit(t, r.what, map[string]string{"README.md": r.what + "\n"})
		}
		sha := c.Head(t)
		run := c.Expect(t, r.what, true, "workflow_dispatch", append(flags("--input", r.inputs), args...)...)
		expectRun(t, r.what, run, r.wants, "### ✅ build-push", "### ✅ deploy-swarm: success", "### ✅ verify: ")
		if got := servedSHA(app); got != sha {
			t.Errorf("after %s the edge serves %q, want %s", r.what, got, sha)
		}
		if got := deploymentStates(gh, "production", sha); got != "in_progress,success "+app+"/health" {
			t.Errorf("%s: GitHub Deployment of %s to production: %q", r.what, sha[:7], got)
		}
		// One color runs the pushed digest with the stack's 3 replicas.
		want := "@" + reg.digest(t, "ghcr.io/"+consumerRepo+":sha-"+sha[:7]) + " 3/3"
		live := ""
		for svc, img := range serviceImages(t, m.stack) {
			if strings.HasSuffix(img, want) {
				live = svc
			}
		}
		if live == "" {
			t.Fatalf("%s: no service of %s runs %s: %v", r.what, m.stack, want, serviceImages(t, m.stack))
		}
		colors = append(colors, live)
	}
	if colors[0] == colors[1] {
		t.Errorf("blue-green and canary both deployed to %s, want the other color", colors[0])
	}
}

// TestExampleSwarmCloudRun runs examples/5-swarm-cloudrun's ship.yml as a
// push to main: tests, build-push.yml to the pre-production repository of
// Artifact Registry (a real registry behind Artifact Registry's auth, as
// europe-docker.pkg.dev through a CONNECT proxy), deploy.yml to the
// pre-production Swarm with its contract check, promote.yml copying the
// same digest to the production repository, then deploy.yml to Cloud Run
// (the gRPC fake) as a canary; Google is reached with the job's OIDC token
// through Workload Identity Federation only.
func TestExampleSwarmCloudRun(t *testing.T) {
	const (
		wif = "projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry"
		sa  = "deployer@acme-prod.iam.gserviceaccount.com"
	)
	m := startSwarmManager(t, "api")
	ingress := "http://" + testenv.SwarmIngress(t, "api_api", 8080)
	gh := githubfake.Start(t, githubfake.Options{Repository: consumerRepo})
	google := googlefake.Start(t, googlefake.Options{Provider: wif, ServiceAccounts: []string{sa}})
	fake := runfake.Start(t, runfake.Options{Project: "acme-prod", ReadyAfter: time.Second, SettleAfter: 500 * time.Millisecond,
		Tick: 100 * time.Millisecond, Tokens: func(tok string) bool { _, ok := google.AccessTokens()[tok]; return ok || tok == runSetupToken }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fake.RunRealtime(ctx, 50*time.Millisecond)

	// Artifact Registry: the registry behind Google's auth as
	// europe-docker.pkg.dev; the Swarm engine pulls from it directly.
	cert, reg, proxy := startGoogleCloud(t, google, fake, "api")

	// The production service exists, serving an earlier commit: ship.yml
	// deploys to it in canary steps, which need a revision serving (the
	// README's one-time setup).
	const previous = "0123456789abcdef0123456789abcdef01234567"
	if err := createRunService(ctx, fake, "api", previous); err != nil {
		t.Fatalf("create the Cloud Run service: %v", err)
	}

	files := appFiles(t, exampleFiles(t, "5-swarm-cloudrun"))
	wf := files[".github/workflows/ship.yml"]
	for from, to := range map[string]string{
		// The engine cannot resolve europe-docker.pkg.dev (see
		// pullFromLoopback): the pre-production Swarm pulls the same
		// repository at the registry's loopback address.
		"images: api=europe-docker.pkg.dev/acme-preprod/apps/api@": "images: api=" + reg.Host + "/acme-preprod/apps/api@",
		// Three canary steps of 2 minutes would only make the test slow.
		"canary-interval: 2m": "canary-interval: 2s",
	} {
		if !strings.Contains(wf, from) {
			t.Fatalf("examples/5-swarm-cloudrun ship.yml has no %q", from)
		}
		wf = strings.Replace(wf, from, to, 1)
	}
	files[".github/workflows/ship.yml"] = wf
	c := newConsumer(t, files)
	sha := c.Head(t)

	// act workaround: act has no environment-scoped variables, so the
	// preprod environment's DEPLOY_* are repository variables here; the
	// production (Cloud Run) job then also verifies the pre-production URL,
	// which serves the same commit.
	vars := m.vars(ingress)
	vars["GCP_WORKLOAD_IDENTITY_PROVIDER"] = wif
	vars["GCP_SERVICE_ACCOUNT"] = sa
	env := map[string]string{
		// act workaround: act has no OIDC endpoint; the fake's stands in.
		"ACTIONS_ID_TOKEN_REQUEST_URL":   gh.RequestURL(),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN": gh.RequestToken(),
		"GITHUB_API_URL":                 gh.APIURL(),
		"GANTRY_CLOUDRUN_ENDPOINT":       fake.Addr,
		"HTTPS_PROXY":                    proxy,
		"SSL_CERT_FILE":                  cert.CertFile,
	}
	for k, v := range google.Env() {
		env[k] = v
	}
	args := append(flags("--var", vars), flags("--env", env)...)
	args = append(args, flags("--secret", map[string]string{"DEPLOY_SSH_KEY": string(m.sshd.ClientKey), "GITHUB_TOKEN": gh.APIToken()})...)
	run := c.Expect(t, "push → preprod Swarm → promote → Cloud Run", true, "push", args...)
	rev := "api-sha-" + sha[:7]
	expectRun(t, "ship.yml", run, []string{"canary at 10%: 0 of ", "canary at 50%: 0 of "},
		"### ✅ build-push", "### ✅ deploy-swarm: success", "### ✅ deploy-cloudrun: success",
		"GET /health json.status=ok", "### ✅ promote europe-docker.pkg.dev/acme-preprod/apps/api")
	if got := servedSHA(ingress); got != sha {
		t.Errorf("pre-production serves %q, want %s", got, sha)
	}
	if p, _ := fake.Traffic("api"); p[rev] != 100 {
		t.Errorf("Cloud Run traffic: %v, want 100%% to %s", p, rev)
	}
	// One digest everywhere: built for pre-production, promoted (tagged
	// production and sha-XXXXXXX), run by the Swarm and by Cloud Run.
	tr := testenv.Resolver(nil, cert)
	built := digestOf(t, reg.Host+"/acme-preprod/apps/api:sha-"+sha[:7], tr)
	for _, ref := range []string{"/acme-prod/apps/api:production", "/acme-prod/apps/api:sha-" + sha[:7]} {
		if got := digestOf(t, reg.Host+ref, tr); got != built {
			t.Errorf("%s is %s, want the pre-production image %s", ref, got, built)
		}
	}
	if img := serviceImages(t, m.stack)["api_api"]; !strings.Contains(img, "@"+built+" ") {
		t.Errorf("the pre-production Swarm runs %q, want %s", img, built)
	}
	if r := fake.Revision(rev); r == nil || len(r.GetContainers()) != 1 || !strings.HasSuffix(r.GetContainers()[0].GetImage(), "europe-docker.pkg.dev/acme-prod/apps/api@"+built) {
		t.Errorf("Cloud Run revision %s runs %v, want europe-docker.pkg.dev/acme-prod/apps/api@%s", rev, r.GetContainers(), built)
	}
	if got := deploymentStates(gh, "preprod", sha); got != "in_progress,success "+ingress+"/health" {
		t.Errorf("GitHub Deployment of %s to preprod: %q", sha[:7], got)
	}
	if got := deploymentStates(gh, "production", sha); !strings.HasPrefix(got, "in_progress,success ") {
		t.Errorf("GitHub Deployment of %s to production: %q", sha[:7], got)
	}
	if len(google.AccessTokens()) == 0 {
		t.Errorf("no WIF exchange")
	}
}

// digestOf returns the digest ref points at, through tr.
func digestOf(t *testing.T, ref string, tr http.RoundTripper) string {
	t.Helper()
	d, err := remote.Head(mustRef(t, ref), remote.WithTransport(tr))
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return d.Digest.String()
}

// runSetupToken is the access token the test itself uses with the Cloud
// Run fake, as an operator's gcloud would.
const runSetupToken = "setup-token"

// createRunService creates Cloud Run service id serving revision
// <id>-sha-XXXXXXX of commit sha, as a first `gcloud run deploy` would, and
// waits until it is ready.
func createRunService(ctx context.Context, fake *runfake.Server, id, sha string) error {
	c, err := run.NewServicesClient(ctx, fake.ClientOptions(runSetupToken)...)
	if err != nil {
		return err
	}
	defer c.Close()
	op, err := c.UpdateService(ctx, &runpb.UpdateServiceRequest{AllowMissing: true, Service: &runpb.Service{
		Name: fake.ServiceName(id),
		Template: &runpb.RevisionTemplate{
			Revision:   id + "-sha-" + sha[:7],
			Labels:     map[string]string{"gantry-sha": sha},
			Containers: []*runpb.Container{{Image: "europe-docker.pkg.dev/acme-prod/apps/" + id + ":previous"}},
		},
		Traffic: []*runpb.TrafficTarget{{Type: runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, Percent: 100}},
	}})
	if err != nil {
		return err
	}
	var pollErr error
	if !testenv.Eventually(30*time.Second, 100*time.Millisecond, func() bool {
		_, pollErr = op.Poll(ctx)
		return pollErr != nil || op.Done()
	}) {
		return fmt.Errorf("service %s not ready after 30s", id)
	}
	return pollErr
}
