// Package cli runs gantry's commands, either as the gantry CLI with
// subcommands and flags, or as one action binary reading INPUT_ variables.
package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/version"
)

// Command is one gantry command: its declaration and its body.
type Command struct {
	Spec *action.Spec
	Run  func(ctx context.Context, a *action.Action) error
}

// Commands returns every command, keyed by name.
func Commands() map[string]*Command {
	cmds := map[string]*Command{}
	for _, c := range []*Command{buildPushCommand(), promoteCommand(), verifyCommand(), guardCommand(), deployComposeCommand(), rollbackCommand(), deployECSCommand(), deployCloudRunCommand(), deploySwarmCommand(), swarmScaleCommand(), loadtestCommand(), resolveCommand()} {
		cmds[c.Spec.Name] = c
	}
	return cmds
}

// cliCommands are commands of the gantry CLI that are no action: they work on
// gantry's own checkout.
func cliCommands() []*Command { return []*Command{edgeImageCommand()} }

// Run runs the gantry CLI: gantry <command> [--input value ...].
func Run(ctx context.Context, args []string, env action.Env) int {
	cmds := Commands()
	for _, c := range cliCommands() {
		cmds[c.Spec.Name] = c
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		usage(env.Stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintf(env.Stdout, "gantry %s\n", version.Version)
		return 0
	}
	if args[0] == "demo" {
		return runDemo(ctx, args[1:], env)
	}
	if args[0] == "loadtest" && len(args) > 1 && args[1] == "summarize" {
		return runSummarize(ctx, args[2:], env)
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "gantry: unknown command %q; run gantry help for the list\n", args[0])
		return 2
	}
	flags, help, err := ParseFlags(c.Spec, args[1:])
	if help {
		commandUsage(env.Stdout, c.Spec)
		return 0
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "gantry %s: %v\n", c.Spec.Name, err)
		return 1
	}
	env.Flags = flags
	a := action.New(c.Spec, env)
	return a.Run(ctx, func(ctx context.Context) error { return c.Run(ctx, a) })
}

// ParseFlags maps --name value, --name=value and, for booleans, a bare
// --name onto the inputs of spec. A repeated flag makes a multi-line value.
func ParseFlags(spec *action.Spec, args []string) (flags map[string][]string, help bool, err error) {
	flags = map[string][]string{}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "-h" || arg == "--help" {
			return nil, true, nil
		}
		if !strings.HasPrefix(arg, "--") || len(arg) == 2 {
			return nil, false, fmt.Errorf("unexpected argument %q; inputs are given as --name value", arg)
		}
		name, value, hasValue := strings.Cut(arg[2:], "=")
		in, ok := spec.Input(name)
		if !ok {
			return nil, false, fmt.Errorf("unknown flag --%s; run gantry %s --help for the inputs", name, spec.Name)
		}
		if !hasValue {
			switch {
			case in.Kind == action.Bool && (i+1 == len(args) || !isBoolWord(args[i+1])):
				value = "true"
			case i+1 < len(args):
				i++
				value = args[i]
			default:
				return nil, false, fmt.Errorf("flag --%s needs a value", name)
			}
		}
		flags[name] = append(flags[name], value)
	}
	return flags, false, nil
}

func isBoolWord(s string) bool {
	_, err := action.ParseBool(s)
	return err == nil && s != ""
}

func usage(w io.Writer, cmds map[string]*Command) {
	fmt.Fprintf(w, "gantry %s: build, push, deploy and verify containers, locally or as GitHub Actions.\n\nUsage: gantry <command> [--input value ...]\n\nCommands:\n", version.Version)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, cmds[n].Spec.Description)
	}
	fmt.Fprintf(w, "  %-18s %s\n", "demo", "Run the local demo of the chain on embedded defaults.")
	fmt.Fprintf(w, "  %-18s %s\n", "loadtest summarize", "Summarize k6's raw JSON output (k6 run --out json=FILE, gzipped or not) into summary.json: gantry loadtest summarize FILE [--out summary.json].")
	fmt.Fprintf(w, "\nRun gantry <command> --help for its inputs.\n")
}

func commandUsage(w io.Writer, s *action.Spec) {
	fmt.Fprintf(w, "gantry %s: %s\n\nInputs (flags):\n", s.Name, s.Description)
	for _, in := range s.Inputs {
		def := ""
		if in.Default != "" {
			def = fmt.Sprintf(" (default %q)", in.Default)
		}
		if in.Required {
			def = " (required)"
		}
		fmt.Fprintf(w, "  --%-32s %s, %s%s\n", in.Name, in.Kind, in.Description, def)
	}
	fmt.Fprintf(w, "\nOutputs (printed as name=value):\n")
	for _, o := range s.Outputs {
		fmt.Fprintf(w, "  %-34s %s\n", o.Name, o.Description)
	}
}
