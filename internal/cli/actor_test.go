package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/history"
)

// TestLockInfoNamesAnActor: without GITHUB_ACTOR, USER or USERNAME the lock
// and the history still name someone (the OS user or the host name).
func TestLockInfoNamesAnActor(t *testing.T) {
	t.Parallel()
	a := action.New(deploySwarmSpec(), action.Env{Getenv: func(string) string { return "" }})
	if who := lockInfo(a, "why"); who.Actor == "" || who.Machine == "" || who.Reason != "why" {
		t.Errorf("lockInfo without any actor variable = %+v", who)
	}
	a = action.New(deploySwarmSpec(), action.Env{Getenv: func(k string) string { return map[string]string{"GITHUB_ACTOR": "octocat"}[k] }})
	if who := lockInfo(a, ""); who.Actor != "octocat" {
		t.Errorf("lockInfo actor = %q, want the run's actor", who.Actor)
	}
}

func TestDeployedBy(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		actor, want string
	}{
		{"octocat", "deployed 2026-12-07 18:00 UTC by octocat"},
		{"", "deployed 2026-12-07 18:00 UTC by an unrecorded actor"},
	} {
		got := deployedBy(history.Entry{Actor: tc.actor, Finished: at})
		if got != tc.want || strings.HasSuffix(got, "by ") {
			t.Errorf("deployedBy(%q) = %q, want %q", tc.actor, got, tc.want)
		}
	}
}
