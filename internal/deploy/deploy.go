// Package deploy is the vocabulary every deploy target shares: how a deploy
// ended and the marks of its timeline. It imports nothing of gantry's, so
// every target, the history and the commands can use it.
package deploy

import "time"

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
