package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/actionyml"
)

var update = flag.Bool("update", false, "rewrite actions/*/action.yml and README.md from the specs")

// TestActionFiles fails when an action.yml or action README drifts from the
// command's spec; -update rewrites them.
func TestActionFiles(t *testing.T) {
	for name, c := range Commands() {
		dir := filepath.Join("..", "..", "actions", name)
		// example.yml is the workflow snippet the README shows, kept beside
		// the action it shows.
		example, err := os.ReadFile(filepath.Join(dir, "example.yml"))
		if err != nil {
			t.Fatalf("%s needs an example.yml, the usage snippet its README shows: %v", dir, err)
		}
		files := map[string]string{
			"action.yml": actionyml.Render(c.Spec),
			"README.md":  actionyml.Readme(c.Spec, string(example)),
		}
		for file, want := range files {
			path := filepath.Join(dir, file)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%s: %v (run go test ./internal/cli -run TestActionFiles -update)", path, err)
			}
			if string(got) != want {
				t.Errorf("%s is out of date with the %s spec; run go test ./internal/cli -run TestActionFiles -update", path, name)
			}
		}
	}
}

// TestSpecs checks every spec is usable: unique names, descriptions, no
// required input with a default.
func TestSpecs(t *testing.T) {
	t.Parallel()
	for name, c := range Commands() {
		seen := map[string]bool{}
		for _, in := range actionyml.InstallInputs {
			if _, ok := c.Spec.Input(in.Name); ok {
				t.Errorf("%s: input %s is also an input of the install step (actionyml.InstallInputs)", name, in.Name)
			}
		}
		for _, in := range c.Spec.Inputs {
			if seen[in.Name] {
				t.Errorf("%s: input %s declared twice", name, in.Name)
			}
			seen[in.Name] = true
			if in.Description == "" {
				t.Errorf("%s: input %s has no description", name, in.Name)
			}
			if in.Required && in.Default != "" {
				t.Errorf("%s: input %s is required but has a default", name, in.Name)
			}
		}
		for _, o := range c.Spec.Outputs {
			if o.Description == "" {
				t.Errorf("%s: output %s has no description", name, o.Name)
			}
		}
	}
}

// TestActionDescriptions fails when an action.yml (the root setup action or
// one in actions/) has a description the GitHub Marketplace refuses: empty,
// several lines, or longer than action.MaxSummary characters.
func TestActionDescriptions(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "actions", "*", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "action.yml"))
	if len(files) < len(Commands())+1 {
		t.Fatalf("found %d action.yml files, want at least %d (one per command and the root)", len(files), len(Commands())+1)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Description string `yaml:"description"`
		}
		if err := yaml.Unmarshal(data, &a); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		n := len([]rune(a.Description))
		if n == 0 || n > action.MaxSummary || strings.Contains(a.Description, "\n") {
			t.Errorf("%s: description has %d characters (want one line of 1-%d, the Marketplace limit): %q", path, n, action.MaxSummary, a.Description)
		}
	}
}
