package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gantry-dev/gantry"

// runtime is the GitHub Actions layer: the commands, the Actions runtime and
// what renders action files. Nothing below it may import it.
var runtime = []string{"internal/action", "internal/actionyml", "internal/cli", "cmd/gantry"}

// testOnly are the packages that start or fake peers for tests and
// benchmarks; production code never imports them.
var testOnly = []string{"internal/testenv", "internal/fakes", "internal/acceptance"}

// allowed lists the imports that break a rule today, each with the issue
// that removes it. The list only shrinks.
var allowed = map[string]string{}

// under reports whether pkg is dir or inside it.
func under(pkg string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return pkg == d || strings.HasPrefix(pkg, d+"/") })
}

// target names the deploy target a package belongs to ("compose" for
// internal/deploy/compose/...), or "" outside internal/deploy.
func target(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, "internal/deploy/")
	if !ok {
		return ""
	}
	return strings.SplitN(rest, "/", 2)[0]
}

// violation returns the rule that the import from → to breaks, or "".
func violation(from, to string) string {
	switch {
	case under(from, "bench", "examples") || under(from, testOnly...):
		return ""
	case under(to, testOnly...):
		return "production code imports a test peer or fake"
	case !under(from, runtime...) && under(to, runtime...):
		return "a domain package imports the Actions runtime or the CLI"
	case target(from) != "" && target(to) != "" && target(from) != target(to):
		return "a deploy target imports another target"
	}
	return ""
}

// imports lists every package of the module with its non-test imports,
// both relative to the module path.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		from := strings.TrimPrefix(fields[0], module+"/")
		graph[from] = nil
		for _, imp := range fields[1:] {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				graph[from] = append(graph[from], rel)
			}
		}
	}
	return graph
}

func TestImportRules(t *testing.T) {
	graph := imports(t)
	if len(graph) < 20 {
		t.Fatalf("go list found only %d packages; is the test run inside the module?", len(graph))
	}
	used := map[string]bool{}
	for from, tos := range graph {
		for _, to := range tos {
			rule := violation(from, to)
			if rule == "" {
				continue
			}
			key := from + " -> " + to
			if _, ok := allowed[key]; ok {
				used[key] = true
				continue
			}
			t.Errorf("%s: %s; see ARCHITECTURE.md for the layers", key, rule)
		}
	}
	for key, why := range allowed {
		if !used[key] {
			t.Errorf("allowed import %s (%s) is gone: remove it from the allowed list", key, why)
		}
	}
}

func TestViolation(t *testing.T) {
	tests := []struct{ from, to, want string }{
		{"internal/deploy/ecs", "internal/action", "a domain package imports the Actions runtime or the CLI"},
		{"internal/loadtest", "internal/cli", "a domain package imports the Actions runtime or the CLI"},
		{"internal/cli", "internal/action", ""},
		{"internal/cli", "internal/deploy/ecs", ""},
		{"internal/cli", "internal/testenv", "production code imports a test peer or fake"},
		{"internal/deploy/ecs", "internal/fakes/ecsfake", "production code imports a test peer or fake"},
		{"internal/testenv", "internal/fakes", ""},
		{"bench/push", "internal/testenv", ""},
		{"internal/deploy/swarm", "internal/deploy/compose", "a deploy target imports another target"},
		{"internal/deploy/compose", "internal/deploy/compose/strategy", ""},
		{"internal/deploy/ecs", "internal/history", ""},
	}
	for _, tt := range tests {
		if got := violation(tt.from, tt.to); got != tt.want {
			t.Errorf("violation(%s, %s) = %q, want %q", tt.from, tt.to, got, tt.want)
		}
	}
}
