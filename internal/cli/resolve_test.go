package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/internal/testenv"
)

// writes counts the requests in a registry log that change something.
func writes(log string) int {
	return len(regexp.MustCompile(`http\.request\.method="?(PUT|POST|PATCH|DELETE)`).FindAllString(log, -1))
}

// TestResolve looks up a commit's images by their sha- tags in a private
// registry, read-only, and fails with a reason naming the image for a
// commit never built, refused credentials and bad lines.
func TestResolve(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Users: map[string]string{"ci": "pw"}})
	workspace(t, map[string]string{"app": "v1", "dash": "v1"})
	digests := map[string]string{}
	for _, svc := range []string{"api", "dashboard"} {
		b := runCLI(t, nil, nil, "build-push", "--registries", reg.Host+"/apps/"+svc, "--sha", testSHA,
			"--files", "app:/"+svc, "--entrypoint", "/"+svc, "--username", "ci", "--password", "pw")
		if b.code != 0 {
			t.Fatalf("build-push %s: %s", svc, b.log)
		}
		digests[svc] = b.outputs["digest"]
	}
	before := writes(reg.Log())
	if before == 0 {
		t.Fatal("the registry log shows no pushes: cannot tell a read-only lookup")
	}

	auth := []string{"--username", "ci", "--password", "pw"}
	r := runCLI(t, map[string]string{"GITHUB_SHA": testSHA}, nil, append([]string{"resolve", "--images",
		"api=" + reg.Host + "/apps/api\ndashboard=" + reg.Host + "/apps/dashboard\npinned=" + reg.Host + "/apps/api@" + digests["api"]}, auth...)...)
	if r.code != 0 {
		t.Fatalf("resolve: exit %d\n%s", r.code, r.log)
	}
	want := strings.Join([]string{
		"api=" + reg.Host + "/apps/api@" + digests["api"],
		"dashboard=" + reg.Host + "/apps/dashboard@" + digests["dashboard"],
		"pinned=" + reg.Host + "/apps/api@" + digests["api"],
	}, "\n")
	if r.outputs["images"] != want || r.outputs["image"] != reg.Host+"/apps/api@"+digests["api"] || r.outputs["digest"] != digests["api"] {
		t.Errorf("outputs %q, want images %q", r.outputs, want)
	}
	if !strings.Contains(r.log, "dashboard: "+reg.Host+"/apps/dashboard:sha-abcdef0 is "+digests["dashboard"]) {
		t.Errorf("log lacks the dashboard's lookup:\n%s", r.log)
	}
	if !strings.Contains(r.summary, "| dashboard | `"+reg.Host+"/apps/dashboard:sha-abcdef0` | `"+digests["dashboard"]+"` |") {
		t.Errorf("summary:\n%s", r.summary)
	}
	if after := writes(reg.Log()); after != before {
		t.Errorf("resolve wrote to the registry: %d changing requests, %d before", after, before)
	}

	other := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a commit never built", append([]string{"--sha", other, "--images", "api=" + reg.Host + "/apps/api"}, auth...),
			"api: " + reg.Host + "/apps/api:sha-0123456 not found: was commit 0123456 built and pushed to " + reg.Host + "/apps/api?"},
		{"a digest not in the registry", append([]string{"--images", "api=" + reg.Host + "/apps/api@sha256:" + strings.Repeat("0", 64)}, auth...),
			"api: " + reg.Host + "/apps/api@sha256:" + strings.Repeat("0", 64) + " not found in " + reg.Host + "/apps/api"},
		{"wrong password", []string{"--sha", testSHA, "--images", "api=" + reg.Host + "/apps/api", "--username", "ci", "--password", "nope"},
			"the registry refused to read it (401)"},
		{"no service", []string{"--sha", testSHA, "--images", reg.Host + "/apps/api"},
			`input "images": "` + reg.Host + `/apps/api" is not service=repository`},
		{"not a reference", []string{"--sha", testSHA, "--images", "api=Not A Ref"},
			`input "images": "api=Not A Ref": Not A Ref is not an image reference`},
		{"no commit", []string{"--images", "api=" + reg.Host + "/apps/api"},
			"has no tag or digest, and there is no commit to find its sha-XXXXXXX tag: set sha"},
		{"bad commit", []string{"--sha", "HEAD~1", "--images", "api=" + reg.Host + "/apps/api"},
			`input "sha": "HEAD~1" is not a hex commit SHA`},
		{"no images", []string{"--sha", testSHA, "--images", ""}, `input "images"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, nil, append([]string{"resolve"}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.log, tc.want) {
				t.Errorf("exit %d, want 1 with %q:\n%s", r.code, tc.want, r.log)
			}
			if r.outputs["images"] != "" || strings.Contains(r.summary, "✅") {
				t.Errorf("on failure: images output %q, summary:\n%s", r.outputs["images"], r.summary)
			}
		})
	}
}
