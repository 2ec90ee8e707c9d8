package cli

import (
	"archive/tar"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-dev/gantry/internal/testenv"
)

const testSHA = "abcdef0123456789abcdef0123456789abcdef01"

// readFile pulls ref and returns the content of path in its top layer.
func readFile(t *testing.T, ref string, auth authn.Authenticator, tr http.RoundTripper, path string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(auth), remote.WithTransport(tr))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Name == strings.TrimPrefix(path, "/") {
				b, _ := io.ReadAll(tr)
				rc.Close()
				return string(b)
			}
		}
		rc.Close()
	}
	t.Fatalf("%s not found in %s", path, ref)
	return ""
}

// catalog lists the repositories of a registry.
func catalog(t *testing.T, host string, auth authn.Authenticator) []string {
	t.Helper()
	reg, err := name.NewRegistry(host)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(t.Context(), reg, remote.WithAuth(auth))
	if err != nil {
		t.Fatalf("catalog %s: %v", host, err)
	}
	return repos
}

func TestBuildPushDaemonlessToRealRegistries(t *testing.T) {
	users := map[string]string{"ci": "s3cret-password"}
	authReg := testenv.StartRegistry(t, testenv.RegistryOptions{Users: users})
	openReg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	workspace(t, map[string]string{"dist/app": "#!/bin/app v1\n", "static/index.html": "<h1>hi</h1>"})
	basic := &authn.Basic{Username: "ci", Password: "s3cret-password"}

	args := []string{"build-push",
		"--registries", authReg.Host + "/acme/api," + authReg.Host + "/acme/api-mirror",
		"--registries", openReg.Host + "/api",
		"--sha", testSHA, "--tags", "latest",
		"--files", "dist/app:/app:0755", "--files", "static/**:/srv/",
		"--entrypoint", `["/app", "--port", "8080"]`,
		"--username", "ci", "--password", "s3cret-password",
	}
	vars := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/api"}
	first := runCLI(t, vars, nil, args...)
	if first.code != 0 {
		t.Fatalf("exit %d\n%s", first.code, first.log)
	}
	digest := first.outputs["digest"]
	if !strings.HasPrefix(digest, "sha256:") || first.outputs["sha-tag"] != "sha-abcdef0" {
		t.Fatalf("outputs = %v", first.outputs)
	}
	images := strings.Split(first.outputs["images"], "\n")
	if len(images) != 3 || images[0] != authReg.Host+"/acme/api@"+digest {
		t.Errorf("images = %q", images)
	}
	if tags := strings.Split(first.outputs["tags"], "\n"); len(tags) != 6 || !strings.Contains(first.outputs["tags"], openReg.Host+"/api:latest") {
		t.Errorf("tags = %q", tags)
	}
	if !strings.Contains(first.log, "::add-mask::s3cret-password") || strings.Count(first.log, "s3cret-password") != 1 {
		t.Errorf("password not masked, or leaked:\n%s", first.log)
	}
	if got := readFile(t, authReg.Host+"/acme/api:sha-abcdef0", basic, http.DefaultTransport, "/srv/index.html"); got != "<h1>hi</h1>" {
		t.Errorf("file in image = %q", got)
	}
	// The mirror repository got its blobs by cross-repository mount.
	if !strings.Contains(first.summary, "mounted") || !strings.Contains(first.summary, "| pushed |") {
		t.Errorf("summary:\n%s", first.summary)
	}
	if !strings.Contains(first.log, "3 mounted") {
		t.Errorf("second repository of the same registry should mount its 2 layers and config:\n%s", first.log)
	}

	again := runCLI(t, vars, nil, args...)
	if again.code != 0 || again.outputs["digest"] != digest {
		t.Fatalf("re-run: exit %d, digest %s (want %s)\n%s", again.code, again.outputs["digest"], digest, again.log)
	}
	if strings.Count(again.summary, "| up to date |") != 2 || !strings.Contains(again.summary, "| 0 B (0 blobs) |") {
		t.Errorf("re-run should upload nothing:\n%s", again.summary)
	}
}

func TestBuildPushBadInputsPushNothing(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Users: map[string]string{"ci": "pw"}})
	workspace(t, map[string]string{"dist/app": "x", "ctx/README": "no Dockerfile here"})
	good := []string{"--sha", testSHA, "--files", "dist/app:/app", "--username", "ci", "--password", "pw"}
	for _, tc := range []struct {
		name  string
		args  []string
		input string
		want  string
	}{
		{"malformed reference", []string{"--registries", "Not A Repo!"}, "registries", "not a repository reference"},
		{"tag in registries", []string{"--registries", reg.Host + "/api:v1"}, "registries", "names a tag or digest"},
		{"sha not hex", []string{"--registries", reg.Host + "/api", "--sha", "not-a-sha"}, "sha", "not a hex commit SHA"},
		{"sha too short", []string{"--registries", reg.Host + "/api", "--sha", "abc12"}, "sha", "too short"},
		{"illegal tag", []string{"--registries", reg.Host + "/api", "--tags", "bad tag!"}, "tags", "not a valid tag"},
		{"empty files glob", []string{"--registries", reg.Host + "/api", "--files", "nothing/*.bin:/bin/"}, "files", "matched no files"},
		{"missing Dockerfile", []string{"--registries", reg.Host + "/api", "--context", "ctx", "--files", ""}, "dockerfile", "not found"},
		{"bad bool", []string{"--registries", reg.Host + "/api", "--overwrite=maybe"}, "overwrite", "not a boolean"},
		{"no credentials", []string{"--registries", reg.Host + "/api", "--username", "", "--password", ""}, "build-push", "HTTP 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"build-push"}, good...)
			args = append(args, tc.args...)
			// Later flags repeat earlier ones; for single-value inputs the test
			// wants the later value, so drop the earlier duplicates.
			args = lastWins(args)
			r := runCLI(t, map[string]string{"GITHUB_ACTIONS": "true"}, nil, args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.log)
			}
			errLines := 0
			for _, line := range strings.Split(r.log, "\n") {
				if strings.HasPrefix(line, "::error") {
					errLines++
					if !strings.HasPrefix(line, "::error title="+tc.input+"::") || !strings.Contains(line, tc.want) {
						t.Errorf("error line %q, want title %s and %q", line, tc.input, tc.want)
					}
				}
			}
			if errLines != 1 {
				t.Errorf("%d error lines, want exactly 1:\n%s", errLines, r.log)
			}
			if repos := catalog(t, reg.Host, &authn.Basic{Username: "ci", Password: "pw"}); len(repos) != 0 {
				t.Errorf("something was pushed: %v", repos)
			}
		})
	}
}

// lastWins keeps the last occurrence of each --flag and its value (so a
// list flag given twice keeps only its last value).
func lastWins(args []string) []string {
	var order []string
	vals := map[string]string{}
	for i := 1; i < len(args); i++ {
		k, v, inline := strings.Cut(args[i], "=")
		if !inline && i+1 < len(args) {
			i++
			v = args[i]
		}
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	out := []string{args[0]}
	for _, k := range order {
		if vals[k] == "" && k == "--files" {
			continue
		}
		out = append(out, k+"="+vals[k])
	}
	return out
}

func TestBuildPushDockerfile(t *testing.T) {
	testenv.Docker(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	workspace(t, map[string]string{
		"svc/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
		"svc/hello.txt":  "built by docker",
	})
	r := runCLI(t, nil, nil, "build-push", "--registries", reg.Host+"/svc", "--sha", testSHA, "--context", "svc")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.log)
	}
	if got := readFile(t, reg.Host+"/svc:sha-abcdef0", authn.Anonymous, http.DefaultTransport, "/hello.txt"); got != "built by docker" {
		t.Errorf("hello.txt = %q", got)
	}
	ref, _ := name.ParseReference(reg.Host + "/svc:sha-abcdef0")
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.Labels["org.opencontainers.image.revision"] != testSHA {
		t.Errorf("labels = %v", cf.Config.Labels)
	}
}

func TestPromoteMountsWithinRegistryAndTags(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	other := testenv.StartRegistry(t, testenv.RegistryOptions{})
	workspace(t, map[string]string{"app": "v1"})
	built := runCLI(t, nil, nil, "build-push", "--registries", reg.Host+"/staging/api", "--sha", testSHA, "--files", "app:/app")
	if built.code != 0 {
		t.Fatalf("build: %s", built.log)
	}
	digest := built.outputs["digest"]
	r := runCLI(t, nil, nil, "promote", "--source", reg.Host+"/staging/api@"+digest,
		"--registries", reg.Host+"/prod/api", "--registries", other.Host+"/prod/api", "--tags", "production")
	if r.code != 0 {
		t.Fatalf("promote: exit %d\n%s", r.code, r.log)
	}
	if r.outputs["digest"] != digest {
		t.Errorf("promote changed the digest: %s vs %s", r.outputs["digest"], digest)
	}
	for _, ref := range []string{reg.Host + "/prod/api:production", other.Host + "/prod/api:production"} {
		d, err := remote.Head(mustRef(t, ref))
		if err != nil || d.Digest.String() != digest {
			t.Errorf("%s = %v, %v", ref, d, err)
		}
	}
	// Same registry: mounted, zero bytes sent. Other registry: streamed.
	lines := strings.Split(r.log, "\n")
	var same, cross string
	for _, l := range lines {
		if strings.HasPrefix(l, reg.Host+": pushed") {
			same = l
		}
		if strings.HasPrefix(l, other.Host+": pushed") {
			cross = l
		}
	}
	if !strings.Contains(same, "0 B uploaded") || !strings.Contains(same, "2 mounted") {
		t.Errorf("same-registry promote should mount: %q\n%s", same, r.log)
	}
	if strings.Contains(cross, "0 B uploaded") || cross == "" {
		t.Errorf("cross-registry promote should upload: %q", cross)
	}
	// Adding a tag in place.
	r = runCLI(t, nil, nil, "promote", "--source", reg.Host+"/staging/api:sha-abcdef0", "--tags", "rollback-target")
	if r.code != 0 {
		t.Fatalf("retag: %s", r.log)
	}
	if d, err := remote.Head(mustRef(t, reg.Host+"/staging/api:rollback-target")); err != nil || d.Digest.String() != digest {
		t.Errorf("retag: %v %v", d, err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
