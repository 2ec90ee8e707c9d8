package acceptance

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/testenv"
)

const workflow = `name: consumer
on: push
jobs:
  image:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: mkdir -p dist && echo "hello from act" > dist/app
      - id: push
        uses: ./actions/build-push
        with:
          registries: REGISTRY/consumer/app
          sha: SHA
          files: dist/app:/app:0755
          entrypoint: /app
          tags: latest
      - run: echo "got digest=${{ steps.push.outputs.digest }} sha-tag=${{ steps.push.outputs.sha-tag }}"
`

// TestBuildPushActionUnderAct runs actions/build-push from a workflow with
// `uses: ./actions/build-push`: the composite wiring, the install step (a
// local action has no release, so gantry is built from source), inputs
// through env, outputs to the next step and the job summary.
func TestBuildPushActionUnderAct(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	wf := strings.NewReplacer("REGISTRY", reg.Host, "SHA", "abcdef0123456789abcdef0123456789abcdef01").Replace(workflow)
	r := runAct(t, repoCopy(t, wf))
	if !r.OK() {
		t.Fatalf("workflow failed:\n%s", r)
	}
	digest := r.Output("/image", "push", "digest")
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
		t.Fatalf("output digest of step push: %q\n%s", digest, r)
	}
	if !strings.Contains(r.Log, "got digest="+digest+" sha-tag=sha-abcdef0") {
		t.Fatalf("the next step did not see the outputs:\n%s", r)
	}
	for _, tag := range []string{"sha-abcdef0", "latest"} {
		ref, _ := name.ParseReference(reg.Host + "/consumer/app:" + tag)
		d, err := remote.Head(ref)
		if err != nil || d.Digest.String() != digest {
			t.Errorf("%s: %v %v, want %s", ref, d, err, digest)
		}
	}
	if !strings.Contains(r.Summary(), "### ✅ build-push") {
		t.Errorf("no job summary:\n%s", r)
	}
}

// TestBuildPushActionBadInput checks that a bad input fails the step with an
// annotation naming the input, and nothing reaches the registry.
func TestBuildPushActionBadInput(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	wf := strings.NewReplacer("REGISTRY", reg.Host, "SHA", "not-a-sha").Replace(workflow)
	r := runAct(t, repoCopy(t, wf))
	if r.OK() || r.Steps["consumer/image › push"] != "failure" {
		t.Fatalf("workflow with a bad sha: jobs %v, step push %q\n%s", r.Jobs, r.Steps["consumer/image › push"], r)
	}
	if !slices.ContainsFunc(r.Errors, func(e string) bool { return strings.Contains(e, `input "sha": "not-a-sha" is not a hex commit SHA`) }) {
		t.Errorf("no error annotation naming the input: %q\n%s", r.Errors, r)
	}
	reg2, _ := name.NewRegistry(reg.Host)
	if repos, err := remote.Catalog(t.Context(), reg2); err != nil || len(repos) != 0 {
		t.Errorf("registry holds %v (%v), want nothing", repos, err)
	}
}
