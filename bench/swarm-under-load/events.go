package main

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

// event is one container event of the service, as the engine reported it.
type event struct {
	Time   time.Time
	ID     string // the container's
	Action string // create, start, health_status: healthy, kill, die, destroy
	Name   string // the task's container name: <stack>_<service>.<slot>.<task id>
	Image  string
	Detail string // signal (kill), exit code (die)
}

// events records a stack's container events with `docker events`, to place
// task starts, health and stops on a deploy's timeline.
type events struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	list []event
}

// watchEvents starts recording the container events of every service of
// stack (web, or web-blue, web-green and gantry-edge).
func (b *bench) watchEvents(ctx context.Context, stack string) (*events, error) {
	cmd := exec.CommandContext(ctx, "docker", "events", "--filter", "type=container",
		"--filter", "label=com.docker.stack.namespace="+stack, "--format", "{{json .}}")
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
					ID         string            `json:"ID"`
					Attributes map[string]string `json:"Attributes"`
				} `json:"Actor"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			a := m.Actor.Attributes
			ev := event{Time: time.Unix(0, m.TimeNano), ID: m.Actor.ID, Action: m.Action, Name: a["name"], Image: a["image"]}
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

// edgeEntry is a line of the edge's (Caddy's) log that changes its routing:
// an admin API write, or an HTTP server shutting down after a configuration
// change.
type edgeEntry struct {
	Time time.Time
	What string
}

// edgeLog reads, from the log of the stack's edge container, the
// configuration changes since since, to place failed requests next to them.
func (b *bench) edgeLog(ctx context.Context, stack string, since time.Time) ([]edgeEntry, error) {
	id, err := b.exec(ctx, nil, "docker", "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name="+stack+"_gantry-edge")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(id)
	if len(ids) == 0 {
		return nil, fmt.Errorf("no running edge container in stack %s", stack)
	}
	cmd := exec.CommandContext(ctx, "docker", "logs", "--since", strconv.FormatInt(since.Add(-time.Second).Unix(), 10), ids[0])
	cmd.Env = b.env
	out, err := cmd.CombinedOutput() // Caddy logs to stderr
	if err != nil {
		return nil, fmt.Errorf("docker logs %s: %v", ids[0], err)
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
		if at.Before(since) {
			continue
		}
		switch {
		case l.Logger == "admin.api" && l.Msg == "received request" && l.Method != http.MethodGet:
			es = append(es, edgeEntry{at, fmt.Sprintf("edge: admin API %s %s", l.Method, l.URI)})
		case strings.HasPrefix(l.Msg, "servers shutting down"):
			es = append(es, edgeEntry{at, "edge: previous HTTP server shutting down (" + l.Msg + ")"})
		}
	}
	return es, nil
}
