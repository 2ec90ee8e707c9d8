package acceptance

import (
	"regexp"
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
	out, ok := runAct(t, repoCopy(t, wf))
	if !ok {
		t.Fatalf("workflow failed:\n%s", out)
	}
	m := regexp.MustCompile(`got digest=(sha256:[0-9a-f]{64}) sha-tag=sha-abcdef0`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the next step did not see the outputs:\n%s", out)
	}
	for _, tag := range []string{"sha-abcdef0", "latest"} {
		ref, _ := name.ParseReference(reg.Host + "/consumer/app:" + tag)
		d, err := remote.Head(ref)
		if err != nil || d.Digest.String() != m[1] {
			t.Errorf("%s: %v %v, want %s", ref, d, err, m[1])
		}
	}
	if !strings.Contains(out, "### ✅ build-push") {
		t.Errorf("no job summary in act's output:\n%s", out)
	}
}

// TestBuildPushActionBadInput checks that a bad input fails the step with an
// annotation naming the input, and nothing reaches the registry.
func TestBuildPushActionBadInput(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	wf := strings.NewReplacer("REGISTRY", reg.Host, "SHA", "not-a-sha").Replace(workflow)
	out, ok := runAct(t, repoCopy(t, wf))
	if ok {
		t.Fatalf("workflow succeeded with a bad sha:\n%s", out)
	}
	if !strings.Contains(out, `input "sha": "not-a-sha" is not a hex commit SHA`) {
		t.Errorf("no clear error naming the input:\n%s", out)
	}
	reg2, _ := name.NewRegistry(reg.Host)
	if repos, err := remote.Catalog(t.Context(), reg2); err != nil || len(repos) != 0 {
		t.Errorf("registry holds %v (%v), want nothing", repos, err)
	}
}
