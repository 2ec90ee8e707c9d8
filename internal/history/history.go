// Package history is the append-only record of deploys kept on the target:
// one JSON line per deploy, so a rollback knows the last known-good digests
// without a rebuild.
package history

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/commit"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/remote"
)

// Results of a deploy.
const (
	ResultSuccess    = deploy.Success
	ResultFailed     = deploy.Failed
	ResultRolledBack = deploy.RolledBack
	ResultAbandoned  = deploy.Abandoned
)

// Phase is one timed step of a deploy.
type Phase = deploy.Phase

// Entry is one deploy.
type Entry struct {
	ID          string            `json:"id"`
	Project     string            `json:"project"`
	SHA         string            `json:"sha"`
	Images      map[string]string `json:"images"` // service → repo@digest
	Actor       string            `json:"actor"`
	Reason      string            `json:"reason,omitempty"`
	Strategy    string            `json:"strategy"`
	Result      string            `json:"result"`
	Error       string            `json:"error,omitempty"`
	RunURL      string            `json:"run_url,omitempty"`
	PreviousSHA string            `json:"previous_sha,omitempty"`
	Rollback    bool              `json:"rollback,omitempty"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished"`
	Phases      []Phase           `json:"phases,omitempty"`
}

// appendScript appends stdin to $1 in one write; O_APPEND keeps lines whole.
const appendScript = `cat >> "$1"`

// Append adds e as one line to the history file at path on h.
func Append(ctx context.Context, h remote.Host, path string, e Entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if _, err := h.Run(ctx, []string{"sh", "-c", appendScript, "sh", path}, bytes.NewReader(line)); err != nil {
		return fmt.Errorf("append to deploy history %s: %w", path, err)
	}
	return nil
}

// Read returns every entry, oldest first; a missing file is an empty history
// and a torn or foreign line is skipped.
func Read(ctx context.Context, h remote.Host, path string) ([]Entry, error) {
	data, err := remote.ReadFile(ctx, h, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read deploy history %s: %w", path, err)
	}
	var out []Entry
	for _, line := range strings.Split(string(data), "\n") {
		var e Entry
		if strings.TrimSpace(line) == "" || json.Unmarshal([]byte(line), &e) != nil || e.SHA == "" {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Current returns the last successful deploy, the version now serving.
func Current(es []Entry) (Entry, bool) {
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Result == ResultSuccess {
			return es[i], true
		}
	}
	return Entry{}, false
}

// Find returns the deploy to roll back to: "previous" is the last successful
// deploy of a SHA other than the current one; a SHA (7+ hex) is its last
// successful deploy.
func Find(es []Entry, to string) (Entry, error) {
	cur, ok := Current(es)
	if !ok {
		return Entry{}, errors.New("no successful deploy in the history yet; nothing to roll back to")
	}
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.Result != ResultSuccess {
			continue
		}
		if to == "previous" && !commit.Matches(e.SHA, cur.SHA) {
			return e, nil
		}
		if to != "previous" && commit.Matches(e.SHA, to) {
			return e, nil
		}
	}
	if to == "previous" {
		return Entry{}, fmt.Errorf("the history has no successful deploy before %s", cur.SHA)
	}
	return Entry{}, fmt.Errorf("the history has no successful deploy of %s; known-good SHAs: %s", to, goodSHAs(es))
}

func goodSHAs(es []Entry) string {
	var out []string
	seen := map[string]bool{}
	for i := len(es) - 1; i >= 0 && len(out) < 10; i-- {
		if s := es[i].SHA; es[i].Result == ResultSuccess && !seen[s] {
			seen[s] = true
			out = append(out, s[:min(7, len(s))])
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// PathIn is the history file of a project (or stack) directory on a target.
func PathIn(dir string) string { return path.Join(dir, ".gantry", "history.jsonl") }

// Record finishes e (a fresh ID, the end time, err's message) and appends it
// to the history file at p on h.
func Record(ctx context.Context, h remote.Host, p string, e Entry, err error) error {
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	e.ID, e.Finished = hex.EncodeToString(id), time.Now().UTC()
	if err != nil {
		e.Error = err.Error()
	}
	return Append(ctx, h, p, e)
}
