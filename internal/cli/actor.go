package cli

import (
	"os"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/history"
	"github.com/gantry-dev/gantry/internal/lock"
)

// lockInfo is who takes a deploy lock and writes the history: the actor
// (never empty), the reason, the run's URL and this machine's name.
func lockInfo(a *action.Action, reason string) lock.Info {
	host, _ := os.Hostname()
	return lock.Info{Actor: a.Actor(), Reason: reason, RunURL: runURL(a), Machine: host}
}

// deployedBy says when and by whom a history entry was deployed; entries
// written before every deploy named its actor say "by an unrecorded actor".
func deployedBy(e history.Entry) string {
	who := e.Actor
	if who == "" {
		who = "an unrecorded actor"
	}
	return "deployed " + e.Finished.Format("2006-01-02 15:04 UTC") + " by " + who
}
