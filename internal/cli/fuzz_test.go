package cli

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/composefile"
)

func fuzzInputs(flags map[string][]string) (*action.Action, *action.Inputs) {
	a := action.New(deploySwarmSpec(), action.Env{Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: io.Discard, Flags: flags})
	return a, a.Inputs()
}

// FuzzReadDigestImages: every images line is refused under the images input
// or read as a trimmed service and a canonical repository@sha256 digest
// whose registry is among the logins' registries.
func FuzzReadDigestImages(f *testing.F) {
	d := "@sha256:" + strings.Repeat("a", 64)
	for _, s := range []string{
		"web=ghcr.io/acme/web" + d,
		"web = 127.0.0.1:5000/app" + d + "\njob=docker.io/library/busybox" + d,
		"web=app" + d + ",job=localhost/x/y" + d,
		"web=ghcr.io/acme/web:latest", "=x" + d, "web", "web=ghcr.io/acme/web@sha256:abc",
		"web=ghcr.io/acme/web:tag" + d, "web=UPPER/case" + d, "a=b=c" + d,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, in := fuzzInputs(map[string][]string{"images": {v}})
		images, registries := readDigestImages(in)
		for _, err := range in.Errs() {
			if ie, ok := err.(*action.InputError); !ok || ie.Input != "images" {
				t.Fatalf("images %q: error not under the images input: %v", v, err)
			}
		}
		for svc, img := range images {
			if svc == "" || svc != strings.TrimSpace(svc) || strings.ContainsAny(svc, "=,\n") {
				t.Fatalf("images %q: service %q", v, svc)
			}
			dg, err := name.NewDigest(img)
			if err != nil || dg.String() != img {
				t.Fatalf("images %q: %s=%q does not read back as that digest (%v)", v, svc, img, err)
			}
			if !slices.Contains(registries, dg.Context().RegistryStr()) {
				t.Fatalf("images %q: registry of %s not in %q", v, img, registries)
			}
		}
	})
}

// FuzzImageRef: resolve's image references read back as themselves, and one
// with neither tag nor digest takes the commit's sha- tag.
func FuzzImageRef(f *testing.F) {
	for _, s := range [][2]string{
		{"ghcr.io/acme/api", "sha-0123456"}, {"ghcr.io/acme/api:v1", ""}, {"api", ""},
		{"127.0.0.1:5000/a/b@sha256:" + strings.Repeat("0", 64), "sha-abc"}, {"Api:", "sha-1"}, {"a:b:c", "sha-1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ref, shaTag string) {
		if _, err := name.NewTag("x:"+shaTag, name.StrictValidation); shaTag != "" && err != nil {
			return // resolve only passes tags it made from a validated commit
		}
		r, err := imageRef(ref, shaTag)
		if err != nil {
			return
		}
		again, err := name.ParseReference(r.String(), name.WithDefaultTag(""))
		if err != nil || again.String() != r.String() {
			t.Fatalf("imageRef(%q) = %q, which reads back as %v (%v)", ref, r, again, err)
		}
		if tag, ok := r.(name.Tag); ok && tag.TagStr() == "" {
			t.Fatalf("imageRef(%q) = %q has neither tag nor digest", ref, r)
		}
	})
}

// FuzzParseScale: scale lines are refused under the scale input or read as a
// trimmed service and a replica count that fits Swarm's.
func FuzzParseScale(f *testing.F) {
	for _, s := range []string{"web=3", "web = 0\njob=1", "web=-1", "web=4294967296", "=2", "web", "web=1,job=2", "a=b=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, in := fuzzInputs(map[string][]string{"scale": {v}})
		scale := parseScale(in)
		for _, err := range in.Errs() {
			if ie, ok := err.(*action.InputError); !ok || ie.Input != "scale" {
				t.Fatalf("scale %q: error not under the scale input: %v", v, err)
			}
		}
		for svc, n := range scale {
			if svc == "" || svc != strings.TrimSpace(svc) || strings.ContainsAny(svc, "=,\n") || n > 1<<32-1 {
				t.Fatalf("scale %q: %q=%d", v, svc, n)
			}
		}
	})
}

// FuzzReadEnvFile: an env file is refused under the env-file input, or read
// as its KEY=VALUE lines (trimmed, no comments, non-empty keys) and uploaded,
// if anything, ending in a newline, under the rules of docker compose and of
// a shell.
func FuzzReadEnvFile(f *testing.F) {
	for _, s := range []string{
		"A=1\nB=two words\n", "# comment\n\nDSN=host=db,port=5432", "EMPTY=", "=novalue", "NOEQUALS",
		"QUOTED=\"x\"\r\nSINGLE='y'", " SPACED = v ", "K=v\\\nnext",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, rules := range []composefile.EnvRules{composefile.ComposeRules, composefile.ShellRules} {
			a, in := fuzzInputs(map[string][]string{"env-file": {v}})
			raw, env := readEnvFile(a, in, rules)
			for _, err := range in.Errs() {
				if ie, ok := err.(*action.InputError); !ok || ie.Input != "env-file" {
					t.Fatalf("env-file %q: error not under the env-file input: %v", v, err)
				}
			}
			// A file of comments and blanks may upload nothing at all.
			if len(in.Errs()) == 0 && len(raw) > 0 && raw[len(raw)-1] != '\n' {
				t.Fatalf("env-file %q uploads %q", v, raw)
			}
			for _, line := range env {
				k, _, ok := strings.Cut(line, "=")
				if !ok || strings.TrimSpace(k) == "" || k != strings.TrimSpace(k) || strings.HasPrefix(line, "#") {
					t.Fatalf("env-file %q reads line %q", v, line)
				}
			}
		}
	})
}
