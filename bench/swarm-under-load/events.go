package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
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
	Name   string // the task's container name: <stack>_web.<slot>.<task id>
	Image  string
	Detail string // signal (kill), exit code (die)
}

// events records a service's container events with `docker events`, to
// place task starts, health and stops on a deploy's timeline.
type events struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	list []event
}

// watchEvents starts recording the container events of service.
func (b *bench) watchEvents(ctx context.Context, service string) (*events, error) {
	cmd := exec.CommandContext(ctx, "docker", "events", "--filter", "type=container",
		"--filter", "label=com.docker.swarm.service.name="+service, "--format", "{{json .}}")
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
