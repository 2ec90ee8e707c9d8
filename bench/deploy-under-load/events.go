package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// event is one container event of a project, as the engine reported it.
type event struct {
	Time     time.Time
	Action   string // create, start, die, destroy
	Name     string
	Service  string
	ExitCode string // on die
}

// events records a project's container events with `docker events`, to
// place container starts and exits on a deploy's timeline.
type events struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	list []event
}

// watchEvents starts recording the container events of project.
func (b *bench) watchEvents(ctx context.Context, project string) (*events, error) {
	cmd := exec.CommandContext(ctx, "docker", "events", "--filter", "type=container",
		"--filter", "label=com.docker.compose.project="+project, "--format", "{{json .}}")
	cmd.Env = b.env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &events{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var m struct {
				Action   string `json:"Action"`
				TimeNano int64  `json:"timeNano"`
				Actor    struct {
					Attributes map[string]string `json:"Attributes"`
				} `json:"Actor"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch m.Action {
			case "create", "start", "die", "destroy":
			default:
				continue
			}
			a := m.Actor.Attributes
			e.mu.Lock()
			e.list = append(e.list, event{Time: time.Unix(0, m.TimeNano), Action: m.Action, Name: a["name"],
				Service: a["com.docker.compose.service"], ExitCode: a["exitCode"]})
			e.mu.Unlock()
		}
	}()
	// docker events reports only what happens after it subscribed.
	time.Sleep(500 * time.Millisecond)
	return e, nil
}

// Stop ends the recording and returns the events in order.
func (e *events) Stop() []event {
	// Events reach the stream a moment after they happen.
	time.Sleep(500 * time.Millisecond)
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	<-e.done
	_ = e.cmd.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event(nil), e.list...)
}

// edgeEntry is a line of the edge's (Caddy's) log that changes its
// routing: an admin API write, or the old HTTP server shutting down after a
// configuration change.
type edgeEntry struct {
	Time time.Time
	What string
}

// edgeLog reads from the log of project's edge container the configuration
// changes since since, so that failed requests can be placed next to them.
func (b *bench) edgeLog(ctx context.Context, project string, since time.Time) ([]edgeEntry, error) {
	id, err := b.exec(ctx, nil, "docker", "ps", "-q", "--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service=gantry-edge")
	if err != nil {
		return nil, err
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, fmt.Errorf("no edge container in %s", project)
	}
	cmd := exec.CommandContext(ctx, "docker", "logs", "--since", strconv.FormatInt(since.Add(-time.Second).Unix(), 10), id)
	cmd.Env = b.env
	out, err := cmd.CombinedOutput() // Caddy logs to stderr
	if err != nil {
		return nil, fmt.Errorf("docker logs %s: %v", id, err)
	}
	var es []edgeEntry
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
		switch {
		case l.Logger == "admin.api" && l.Msg == "received request" && l.Method != "GET":
			es = append(es, edgeEntry{at, fmt.Sprintf("edge: admin API %s %s (configuration change)", l.Method, l.URI)})
		case strings.HasPrefix(l.Msg, "servers shutting down"):
			es = append(es, edgeEntry{at, "edge: previous HTTP server shutting down (" + l.Msg + ")"})
		}
	}
	return es, nil
}
