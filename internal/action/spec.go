// Package action is gantry's runtime for a command that runs as a GitHub
// Action or as a local CLI subcommand: typed inputs, outputs, masks, log
// groups and the job summary.
package action

import "fmt"

// Kind is the type of an input value; it decides parsing and CLI flag syntax.
type Kind int

// Input kinds.
const (
	String Kind = iota
	Bool
	Int
	Duration
	List
)

func (k Kind) String() string {
	switch k {
	case Bool:
		return "bool"
	case Int:
		return "int"
	case Duration:
		return "duration"
	case List:
		return "list"
	default:
		return "string"
	}
}

// Input declares one input of a command. The same declaration drives the
// action.yml inputs, the CLI flags and the README tables.
type Input struct {
	Name        string
	Description string
	Kind        Kind
	// Default is used when the input is empty, in Actions and locally.
	Default string
	// ActionDefault is the default written into action.yml when it differs from
	// Default, typically an expression such as "${{ github.token }}".
	ActionDefault string
	Required      bool
	// Secret inputs are masked as soon as they are read.
	Secret bool
}

// Output declares one output of a command.
type Output struct {
	Name        string
	Description string
}

// Spec describes a command: its name, what it does, its inputs and outputs.
type Spec struct {
	Name string
	// Summary is the action.yml description: one line of at most
	// MaxSummary characters, all the GitHub Marketplace accepts.
	Summary string
	// Description is the longer text of the action's README.
	Description string
	Inputs      []Input
	Outputs     []Output
	// After holds composite steps that run after gantry's own step, as YAML
	// list items indented by four spaces (e.g. an artifact upload).
	After string
}

// MaxSummary is the longest action description the GitHub Marketplace
// accepts.
const MaxSummary = 125

// Input returns the declared input called name.
func (s *Spec) Input(name string) (Input, bool) {
	for _, in := range s.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}

// mustInput returns the declared input or panics: reading an undeclared input
// is a programming error that the spec tests catch.
func (s *Spec) mustInput(name string) Input {
	in, ok := s.Input(name)
	if !ok {
		panic(fmt.Sprintf("action %s: input %q is not declared", s.Name, name))
	}
	return in
}

// HasOutput reports whether name is a declared output.
func (s *Spec) HasOutput(name string) bool {
	for _, o := range s.Outputs {
		if o.Name == name {
			return true
		}
	}
	return false
}
