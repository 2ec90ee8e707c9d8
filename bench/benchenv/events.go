package benchenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is one container event, as the engine reported it.
type Event struct {
	Time   time.Time
	ID     string // the container's
	Action string // create, start, health_status: healthy, kill, die, destroy
	Name   string // the container's name
	Image  string
	Detail string // signal (kill), exit code (die)
	// Labels are the container's labels (com.docker.compose.service, ...).
	Labels map[string]string
}

// Events records container events with `docker events`, to place container
// starts, health and stops on a deploy's timeline.
type Events struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	list []Event
}

// WatchEvents starts recording the events of the containers with label
// (key=value), running docker with env.
func WatchEvents(ctx context.Context, env []string, label string) (*Events, error) {
	cmd := exec.CommandContext(ctx, "docker", "events", "--filter", "type=container",
		"--filter", "label="+label, "--format", "{{json .}}")
	cmd.Env = env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &Events{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m struct {
				Action   string `json:"Action"`
				TimeNano int64  `json:"timeNano"`
				Actor    struct {
					ID         string            `json:"ID"`
					Attributes map[string]string `json:"Attributes"`
				} `json:"Actor"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			a := m.Actor.Attributes
			ev := Event{Time: time.Unix(0, m.TimeNano), ID: m.Actor.ID, Action: m.Action, Name: a["name"], Image: a["image"], Labels: a}
			switch {
			case m.Action == "create", m.Action == "start", m.Action == "destroy", strings.HasPrefix(m.Action, "health_status"):
			case m.Action == "kill":
				ev.Detail = "signal " + a["signal"]
			case m.Action == "die":
				ev.Detail = "exit code " + a["exitCode"]
			default:
				continue
			}
			e.mu.Lock()
			e.list = append(e.list, ev)
			e.mu.Unlock()
		}
	}()
	// docker events reports only what happens after it subscribed.
	time.Sleep(500 * time.Millisecond)
	return e, nil
}

// Stop ends the recording and returns the events in order.
func (e *Events) Stop() []Event {
	// Events reach the stream a moment after they happen.
	time.Sleep(500 * time.Millisecond)
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	<-e.done
	_ = e.cmd.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.list...)
}

// EdgeEntry is a line of the edge's (Caddy's) log that changes its routing:
// an admin API write, or an HTTP server shutting down after a configuration
// change.
type EdgeEntry struct {
	Time  time.Time
	What  string
	Admin bool // an admin API write, not a server shutting down
}

// EdgeLog reads, from the log of the edge container id, the configuration
// changes since since, to place failed requests next to them.
func EdgeLog(ctx context.Context, env []string, id string, since time.Time) ([]EdgeEntry, error) {
	cmd := exec.CommandContext(ctx, "docker", "logs", "--since", strconv.FormatInt(since.Add(-time.Second).Unix(), 10), id)
	cmd.Env = env
	out, err := cmd.CombinedOutput() // Caddy logs to stderr
	if err != nil {
		return nil, fmt.Errorf("docker logs %s: %v", id, err)
	}
	var es []EdgeEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l struct {
			TS     float64 `json:"ts"`
			Logger string  `json:"logger"`
			Msg    string  `json:"msg"`
			Method string  `json:"method"`
			URI    string  `json:"uri"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		at := time.Unix(0, int64(l.TS*1e9))
		if at.Before(since) {
			continue
		}
		switch {
		case l.Logger == "admin.api" && l.Msg == "received request" && l.Method != http.MethodGet:
			es = append(es, EdgeEntry{at, fmt.Sprintf("edge: admin API %s %s (configuration change)", l.Method, l.URI), true})
		case strings.HasPrefix(l.Msg, "servers shutting down"):
			es = append(es, EdgeEntry{at, "edge: previous HTTP server shutting down (" + l.Msg + ")", false})
		}
	}
	return es, nil
}

// NearestEdgeChange returns the edge's change nearest to t, if one is
// within a second of it; adminOnly counts admin API writes only.
func NearestEdgeChange(es []EdgeEntry, t time.Time, adminOnly bool) (EdgeEntry, bool) {
	var best EdgeEntry
	found := false
	for _, e := range es {
		if adminOnly && !e.Admin {
			continue
		}
		if d := t.Sub(e.Time).Abs(); d <= time.Second && (!found || d < t.Sub(best.Time).Abs()) {
			best, found = e, true
		}
	}
	return best, found
}
