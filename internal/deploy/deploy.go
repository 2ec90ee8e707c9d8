// Package deploy is the vocabulary every deploy target shares: how a deploy
// ended and the marks of its timeline. It imports nothing of gantry's, so
// every target, the history and the commands can use it.
package deploy

import (
	"context"
	"time"
)

// How a deploy ended, as the history records it and the outputs say it.
const (
	Success    = "success"
	Failed     = "failed"      // failed; the previous version kept serving
	RolledBack = "rolled-back" // failed after the switch; traffic went back
	Abandoned  = "abandoned"   // left in place for debugging (auto-rollback off)
)

// Mark is a moment of a deploy's timeline: what happened, and how long after
// the deploy started.
type Mark struct {
	Name string
	At   time.Duration
}

// Phase is one timed step of a deploy, as the history keeps it.
type Phase struct {
	Name     string        `json:"name"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
	// Warning marks a phase that finished without doing all it should,
	// e.g. a verify that could not check anything.
	Warning string `json:"warning,omitempty"`
}

// Steps runs a deploy's steps one after the other, logging each as it starts
// and appending it, timed, to Phases (a report's field, so that a step that
// panics or a deploy that stops early still leaves the steps that ran).
type Steps struct {
	Phases *[]Phase
	Logf   func(format string, args ...any)
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	warning string
}

// Run runs fn as the step name; its error fails the step and is returned.
func (s *Steps) Run(ctx context.Context, name string, fn func(context.Context) error) error {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	if s.Phases == nil {
		s.Phases = new([]Phase)
	}
	ph := Phase{Name: name, Started: now().UTC()}
	if s.Logf != nil {
		s.Logf("── %s", name)
	}
	s.warning = ""
	err := fn(ctx)
	ph.Duration = now().Sub(ph.Started)
	if err != nil {
		ph.Error = err.Error()
	} else {
		ph.Warning = s.warning
	}
	*s.Phases = append(*s.Phases, ph)
	return err
}

// Warn marks the step running as done with a warning (msg), unless it fails.
func (s *Steps) Warn(msg string) { s.warning = msg }

// Outcome is how a deploy ended: Success without an error, else the outcome
// the deploy already set (RolledBack, Abandoned), else Failed.
func Outcome(err error, set string) string {
	switch {
	case err == nil:
		return Success
	case set != "":
		return set
	}
	return Failed
}
