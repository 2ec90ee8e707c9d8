package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// goreleaserConfig is the part of .goreleaser.yaml the tests read.
type goreleaserConfig struct {
	Builds []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Env     []string `yaml:"env"`
		Flags   []string `yaml:"flags"`
		Ldflags []string `yaml:"ldflags"`
		Targets []string `yaml:"targets"`
	} `yaml:"builds"`
}

func readGoreleaser(t *testing.T) goreleaserConfig {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c goreleaserConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	if len(c.Builds) == 0 {
		t.Fatal(".goreleaser.yaml has no builds")
	}
	return c
}

// TestGoreleaserTargetsBuild cross-compiles every target of .goreleaser.yaml with its flags, as a
// release builds them. A cold build of every target takes minutes, so on a laptop it runs only
// with GANTRY_TEST_RELEASE_TARGETS=1; in CI (CI=true) always (on GitHub, ci.yml's snapshot job
// also builds the same targets with goreleaser itself).
func TestGoreleaserTargetsBuild(t *testing.T) {
	if os.Getenv("GANTRY_TEST_RELEASE_TARGETS") != "1" && os.Getenv("CI") != "true" {
		t.Skip("set GANTRY_TEST_RELEASE_TARGETS=1 to cross-compile every release target (minutes, cold); CI always does")
	}
	root := repoRoot(t)
	for _, b := range readGoreleaser(t).Builds {
		ldflags := strings.Join(b.Ldflags, " ")
		ldflags = strings.ReplaceAll(ldflags, "{{ .Tag }}", "v0.0.0-test")
		if strings.Contains(ldflags, "{{") {
			t.Fatalf("build %s: ldflags %q use a template this test does not fill in; extend it", b.ID, ldflags)
		}
		for _, target := range b.Targets {
			t.Run(b.ID+"/"+target, func(t *testing.T) {
				// goreleaser targets are os_arch with an optional _variant (amd64_v1, arm64_v8.0).
				parts := strings.SplitN(target, "_", 3)
				if len(parts) < 2 {
					t.Fatalf("target %q is not os_arch[_variant]", target)
				}
				env := append(os.Environ(), "GOOS="+parts[0], "GOARCH="+parts[1])
				if len(parts) == 3 {
					switch parts[1] {
					case "amd64":
						env = append(env, "GOAMD64="+parts[2])
					case "arm64":
						env = append(env, "GOARM64="+parts[2])
					}
				}
				env = append(env, b.Env...)
				args := append([]string{"build", "-o", filepath.Join(t.TempDir(), "gantry")}, b.Flags...)
				args = append(args, "-ldflags", ldflags, "./"+strings.TrimPrefix(b.Main, "./"))
				cmd := exec.Command("go", args...)
				cmd.Dir = root
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("GOOS=%s GOARCH=%s go %s: %v\n%s", parts[0], parts[1], strings.Join(args, " "), err, out)
				}
			})
		}
	}
}

// TestGoreleaserPins: ci.yml's snapshot job and release.yml build with the same goreleaser
// action and version, so CI proves what the release will run.
func TestGoreleaserPins(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	type pin struct{ action, version string }
	pins := map[string]pin{}
	for _, f := range []string{".github/workflows/ci.yml", ".github/workflows/release.yml"} {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		var wf struct {
			Jobs map[string]struct {
				Steps []struct {
					Uses string            `yaml:"uses"`
					With map[string]string `yaml:"with"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal(data, &wf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for job, j := range wf.Jobs {
			for _, s := range j.Steps {
				if strings.HasPrefix(s.Uses, "goreleaser/goreleaser-action@") {
					if s.With["version"] == "" || s.With["version"] == "latest" || strings.Contains(s.With["version"], "~") {
						t.Errorf("%s job %s: goreleaser version %q is not pinned", f, job, s.With["version"])
					}
					pins[f+" "+job] = pin{s.Uses, s.With["version"]}
				}
			}
		}
	}
	if len(pins) < 2 {
		t.Fatalf("found goreleaser in %v, want it in ci.yml and release.yml", pins)
	}
	var first *pin
	for where, p := range pins {
		if first == nil {
			first = &p
			continue
		}
		if p != *first {
			t.Errorf("%s runs %s %s, another job %s %s: keep them equal", where, p.action, p.version, first.action, first.version)
		}
	}
}
