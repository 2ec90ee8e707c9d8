// Package actionyml renders a command's spec as the action.yml of its
// composite action and as the inputs/outputs tables of its README, so the
// YAML, the CLI flags and the docs never drift apart.
package actionyml

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
)

// SetupGo is the pinned actions/setup-go used when a runner must build
// gantry from source.
const SetupGo = "actions/setup-go@b7ad1dad31e06c5925ef5d2fc7ad053ef454303e # v7.0.0"

// InstallInputs are inputs of every action's install step
// (scripts/install.sh), not of the gantry command it runs.
var InstallInputs = []action.Input{{
	Name:        "release-base-url",
	Description: "Base URL gantry's release binary is downloaded from, serving `<owner>/<repo>/releases/download/<version>/` (a mirror for GHES or air-gapped runners); empty: the GANTRY_RELEASE_BASE_URL variable, else https://github.com (also on GHES). When the download fails, gantry is built from this action's source, with a warning.",
}}

// UploadArtifact is the pinned actions/upload-artifact (a node24 release) the
// loadtest action uploads its results with.
const UploadArtifact = "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f # v7.0.0"

// Render returns the action.yml for spec.
func Render(spec *action.Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated from gantry's %s spec (internal/cli) by\n#   go test ./internal/cli -run TestActionFiles -update\n# Do not edit by hand.\n", spec.Name)
	fmt.Fprintf(&b, "name: gantry %s\n", spec.Name)
	fmt.Fprintf(&b, "description: %s\n", quote(spec.Summary))
	b.WriteString("author: gantry\nbranding:\n  icon: package\n  color: blue\n")
	b.WriteString("inputs:\n")
	for _, in := range slices.Concat(spec.Inputs, InstallInputs) {
		fmt.Fprintf(&b, "  %s:\n    description: %s\n    required: %t\n", in.Name, quote(in.Description), in.Required)
		if def := actionDefault(in); def != "" {
			fmt.Fprintf(&b, "    default: %s\n", quote(def))
		}
	}
	b.WriteString("outputs:\n")
	for _, o := range spec.Outputs {
		fmt.Fprintf(&b, "  %s:\n    description: %s\n    value: ${{ steps.run.outputs.%s }}\n", o.Name, quote(o.Description), o.Name)
	}
	b.WriteString(`runs:
  using: composite
  steps:
    - id: install
      shell: bash
      env:
        GANTRY_ACTION_REF: ${{ github.action_ref }}
        GANTRY_ACTION_REPOSITORY: ${{ github.action_repository }}
        GANTRY_INPUT_RELEASE_BASE_URL: ${{ inputs.release-base-url }}
        # For gh attestation verify only; never on a command line.
        GANTRY_GITHUB_TOKEN: ${{ github.token }}
      run: bash "$GITHUB_ACTION_PATH/../../scripts/install.sh"
    - if: steps.install.outputs.need-go == 'true'
      uses: ` + SetupGo + `
      with:
        go-version-file: ${{ github.action_path }}/../../go.mod
        cache-dependency-path: ${{ github.action_path }}/../../go.sum
    - if: steps.install.outputs.need-build == 'true'
      shell: bash
      env:
        GANTRY_ACTION_REF: ${{ github.action_ref }}
        GANTRY_ACTION_REPOSITORY: ${{ github.action_repository }}
      run: bash "$GITHUB_ACTION_PATH/../../scripts/install.sh" --build
    - id: run
      shell: bash
      env:
        GANTRY_BIN: ${{ steps.install.outputs.bin }}
`)
	b.WriteString("        # Composite actions get no INPUT_ variables on GitHub: pass each input.\n")
	for _, in := range spec.Inputs {
		fmt.Fprintf(&b, "        %s: ${{ inputs.%s }}\n", EnvName(in.Name), in.Name)
	}
	fmt.Fprintf(&b, "      run: '\"$GANTRY_BIN\" %s'\n", spec.Name)
	b.WriteString(spec.After)
	return b.String()
}

// EnvName is the environment variable a composite step passes an input in.
func EnvName(input string) string {
	return "INPUT_" + strings.ToUpper(strings.ReplaceAll(input, "-", "_"))
}

func actionDefault(in action.Input) string {
	if in.ActionDefault != "" {
		return in.ActionDefault
	}
	return in.Default
}

// quote writes s as a YAML double-quoted scalar.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// Readme returns the README of an action: its description, a usage example
// and the generated inputs/outputs tables.
func Readme(spec *action.Spec, example string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# gantry %s\n\n%s\n\n", spec.Name, spec.Description)
	if example != "" {
		fmt.Fprintf(&b, "## Usage\n\n```yaml\n%s```\n\n", example)
	}
	fmt.Fprintf(&b, "The same command runs locally as `gantry %s --<input> <value>`; outputs are printed as `name=value`.\n\n", spec.Name)
	b.WriteString("## Inputs\n\n| Name | Type | Required | Default | Description |\n|---|---|---|---|---|\n")
	for _, in := range slices.Concat(spec.Inputs, InstallInputs) {
		def := actionDefault(in)
		if def != "" {
			def = action.Code(def)
		}
		req := ""
		if in.Required {
			req = "yes"
		}
		desc := in.Description
		if in.Secret {
			desc += " Masked in logs."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", in.Name, in.Kind, req, def, strings.ReplaceAll(desc, "|", `\|`))
	}
	for _, in := range spec.Inputs {
		if in.Kind == action.Duration {
			b.WriteString("\nA duration is a Go duration (`90s`, `5m`, `1h30m`) or a bare number of seconds (`90`); negative values and values over a week are refused. Every input is checked before gantry connects anywhere or calls any API.\n")
			break
		}
	}
	b.WriteString("\n## Outputs\n\n| Name | Description |\n|---|---|\n")
	for _, o := range spec.Outputs {
		fmt.Fprintf(&b, "| `%s` | %s |\n", o.Name, strings.ReplaceAll(o.Description, "|", `\|`))
	}
	return b.String()
}
