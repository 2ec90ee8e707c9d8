package acceptance

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/fakes/githubfake"
	"github.com/gantry-dev/gantry/internal/fakes/googlefake"
	"github.com/gantry-dev/gantry/internal/fakes/runfake"
)

const runWorkflow = `name: consumer
on: push
permissions:
  id-token: write
env:
ENV
jobs:
  ship:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: mkdir -p dist && echo "hello from act" > dist/app
      - id: push
        uses: ./actions/build-push
        with:
          registries: europe-docker.pkg.dev/my-project/images/api
          sha: 1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
          files: dist/app:/app:0755
          entrypoint: /app
          gcp-workload-identity-provider: WIF
          gcp-service-account: SA
      - id: all
        uses: ./actions/deploy-cloudrun
        with:
          gcp-project: my-project
          region: europe-west1
          service: api
          image: europe-docker.pkg.dev/my-project/images/api@${{ steps.push.outputs.digest }}
          sha: 1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
          gcp-workload-identity-provider: WIF
          gcp-service-account: SA
          poll-interval: 300ms
      - id: preview
        uses: ./actions/deploy-cloudrun
        with:
          gcp-project: my-project
          region: europe-west1
          service: api
          image: europe-docker.pkg.dev/my-project/images/api@${{ steps.push.outputs.digest }}
          sha: 2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
          gcp-workload-identity-provider: WIF
          gcp-service-account: SA
          poll-interval: 300ms
          strategy: preview
      - id: canary
        uses: ./actions/deploy-cloudrun
        with:
          gcp-project: my-project
          region: europe-west1
          service: api
          image: europe-docker.pkg.dev/my-project/images/api@${{ steps.push.outputs.digest }}
          sha: 3333333ccccccccccccccccccccccccccccccccc
          gcp-workload-identity-provider: WIF
          gcp-service-account: SA
          poll-interval: 300ms
          strategy: canary
          canary-steps: 50,100
          canary-interval: 1s
      - run: |
          echo "all=${{ steps.all.outputs.result }} ${{ steps.all.outputs.revision }}"
          echo "preview=${{ steps.preview.outputs.result }} ${{ steps.preview.outputs.revision }} tag-url=${{ steps.preview.outputs.tag-url }}"
          echo "canary=${{ steps.canary.outputs.result }} ${{ steps.canary.outputs.revision }} previous=${{ steps.canary.outputs.previous-revision }}"
`

// TestDeployCloudRunActionUnderAct runs a workflow that pushes an image to Artifact Registry and
// deploys it to Cloud Run three ways, all through Workload Identity Federation with the job's
// OIDC token. The registry is a real one behind Artifact Registry's auth; Cloud Run is the gRPC
// fake; the *.run.app URLs that verify checks are reached through a CONNECT proxy, with the test
// CA in SSL_CERT_FILE.
func TestDeployCloudRunActionUnderAct(t *testing.T) {
	const (
		wif = "projects/123456789/locations/global/workloadIdentityPools/github/providers/gantry"
		sa  = "deployer@my-project.iam.gserviceaccount.com"
	)
	gh := githubfake.Start(t, githubfake.Options{})
	google := googlefake.Start(t, googlefake.Options{Provider: wif, ServiceAccounts: []string{sa}})
	fake := runfake.Start(t, runfake.Options{ReadyAfter: time.Second, SettleAfter: 500 * time.Millisecond, Tick: 100 * time.Millisecond,
		Tokens: func(tok string) bool { _, ok := google.AccessTokens()[tok]; return ok }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fake.RunRealtime(ctx, 50*time.Millisecond)

	cert, _, proxy := startGoogleCloud(t, google, fake, "api")

	// act passes a step's env to a composite action's own steps only in part: the proxy settings
	// are the job's. Loopback traffic (the fakes) is never proxied.
	vars := map[string]string{"GANTRY_CLOUDRUN_ENDPOINT": fake.Addr, "HTTPS_PROXY": proxy, "SSL_CERT_FILE": cert.CertFile}
	for _, m := range []map[string]string{gh.Env(), google.Env()} {
		for k, v := range m {
			vars[k] = v
		}
	}
	var env []string
	for k, v := range vars {
		if k != "GITHUB_REPOSITORY" && k != "GITHUB_REF" && k != "GITHUB_RUN_ID" {
			env = append(env, fmt.Sprintf("  %s: %q", k, v))
		}
	}
	wf := strings.NewReplacer("ENV", strings.Join(env, "\n"), "WIF", wif, "SA", sa).Replace(runWorkflow)
	r := runAct(t, repoCopy(t, wf))
	if !r.OK() {
		t.Fatalf("workflow failed:\n%s", r)
	}
	for _, want := range []string{
		"all=success api-sha-1111111",
		"preview=success api-sha-2222222 tag-url=https://sha-2222222---api-",
		"canary=success api-sha-3333333 previous=api-sha-1111111",
		"verified https://sha-3333333---api-",
	} {
		if !strings.Contains(r.Log, want) {
			t.Errorf("act's log lacks %q:\n%s", want, r)
		}
	}
	for _, want := range []string{"### ✅ build-push", "### ✅ deploy-cloudrun: success"} {
		if !strings.Contains(r.Summary(), want) {
			t.Errorf("the job summary lacks %q:\n%s", want, r.Summary())
		}
	}
	if p, tags := fake.Traffic("api"); p["api-sha-3333333"] != 100 || tags["sha-3333333"] != "api-sha-3333333" {
		t.Errorf("traffic at the end: %v %v", p, tags)
	}
	if len(gh.Issued()) == 0 || len(google.AccessTokens()) == 0 {
		t.Errorf("no WIF exchange")
	}
}
