package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runKey is a YAML run: key, alone or as the first key of a list item.
var runKey = regexp.MustCompile(`^(\s*)(- +)?run:\s*(.*)$`)

// expressionsInRun returns the lines of text (YAML, or Markdown holding
// YAML) where a ${{ }} expression sits inside a run: script, where the
// runner pastes its value into the shell unquoted.
func expressionsInRun(text string) []string {
	lines := strings.Split(text, "\n")
	var bad []string
	for i := 0; i < len(lines); i++ {
		m := runKey.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if strings.Contains(m[3], "${{") {
			bad = append(bad, strings.TrimSpace(lines[i]))
		}
		if v := m[3]; v != "" && v[0] != '|' && v[0] != '>' {
			continue
		}
		indent := len(m[1]) + len(m[2])
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			i++
			if strings.Contains(next, "${{") {
				bad = append(bad, strings.TrimSpace(next))
			}
		}
	}
	return bad
}

func TestExpressionsInRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml string
		bad  int
	}{
		{"- run: echo ${{ steps.a.outputs.x }}", 1},
		{"  - if: failure()\n    run: |\n      echo hi\n      echo \"${{ steps.v.outputs.served-sha }}\"\n  - run: ok", 1},
		{"  - env:\n      X: ${{ steps.a.outputs.x }}\n    run: echo \"$X\"", 0},
		{"    run: >\n      a\n\n      b ${{ github.workflow }}\n    with:\n      x: ${{ y }}", 1},
	} {
		if got := expressionsInRun(tc.yaml); len(got) != tc.bad {
			t.Errorf("%q: found %q, want %d", tc.yaml, got, tc.bad)
		}
	}
}

// TestNoExpressionInRunScripts: no README, usage example, example setup or
// reusable workflow pastes a step output or other text into a run: script
// with ${{ }}; they pass it through env: (a service's answer or a user's
// text would otherwise run as shell).
func TestNoExpressionInRunScripts(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	var files []string
	for _, pattern := range []string{"README.md", "action.yml", "actions/*/README.md", "actions/*/action.yml", "actions/*/example.yml", ".github/workflows/*.yml", "examples/*/*.yml", "examples/*/*/*.yml", "examples/*/*/*/*.yml", "examples/*/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d files to check: %q", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range expressionsInRun(string(b)) {
			t.Errorf("%s: ${{ }} inside run: %s", f, line)
		}
	}
}
