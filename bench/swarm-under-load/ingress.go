package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ingress stands in for Swarm's routing mesh, which needs iptables rules this
// machine's engine does not create (no DOCKER-INGRESS chain: a published port
// is unreachable). It is internal/testenv.SwarmIngress's idea, which needs a
// testing.TB: a TCP balancer on 127.0.0.1 that sends each connection to a
// random running container of the service that is healthy (or has no
// healthcheck), at its docker_gwbridge address, the set refreshed every
// 100 ms, and a container dropped as soon as the engine reports that it died
// or turned unhealthy. A connection with no backend, or whose backend
// refuses it or does not accept within 500 ms, is closed without an answer.
//
// What differs from the mesh: the mesh takes a task out of its IPVS table
// when Swarm decides to shut it down, before the container gets SIGTERM;
// the stand-in drops a container only once it is no longer running (its
// process exited after SIGTERM) or no longer healthy. Both add a task only
// once it is healthy.
type ingress struct {
	service string
	port    int
	ln      net.Listener
	subnet  *net.IPNet // docker_gwbridge's
	engine  *http.Client
	// stopEvents ends the event stream.
	stopEvents context.CancelFunc
	done       chan struct{}
	wg         sync.WaitGroup

	mu       sync.Mutex
	backends []backend
	ips      map[string]string // container ID → docker_gwbridge address
	gone     map[string]bool   // containers that died or turned unhealthy
	changes  []backendChange
	outcomes []connOutcome // connections not passed on
	refresh  []refreshRun  // every refresh of the set
}

type backend struct{ ID, Addr string }

// dialTimeout is how long the stand-in waits for a container to accept.
const dialTimeout = 500 * time.Millisecond

// backendChange is a container entering or leaving the balancer's set.
type backendChange struct {
	Time    time.Time
	Added   bool
	ID      string
	Running int // backends after the change
}

// refreshRun is one refresh of the set: when it started and how long the
// docker calls took.
type refreshRun struct {
	Start time.Time
	Took  time.Duration
}

// connOutcome is a connection the stand-in could not pass on, and why.
type connOutcome struct {
	Time time.Time
	Why  string
}

// startIngress starts the stand-in for the service's containers on port.
func startIngress(ctx context.Context, service string, port int) (*ingress, error) {
	out, err := exec.CommandContext(ctx, "docker", "network", "inspect", "docker_gwbridge", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}").Output()
	if err != nil {
		return nil, fmt.Errorf("docker network inspect docker_gwbridge (swarm mode creates it): %v", err)
	}
	engine, err := engineClient()
	if err != nil {
		return nil, err
	}
	g := &ingress{service: service, port: port, engine: engine, ips: map[string]string{}, gone: map[string]bool{}, done: make(chan struct{})}
	for _, s := range strings.Fields(string(out)) {
		if _, n, err := net.ParseCIDR(s); err == nil && n.IP.To4() != nil {
			g.subnet = n
			break
		}
	}
	if g.subnet == nil {
		return nil, fmt.Errorf("docker_gwbridge has no IPv4 subnet (%q)", strings.TrimSpace(string(out)))
	}
	if g.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	evCtx, evCancel := context.WithCancel(context.Background())
	g.stopEvents = evCancel
	subscribed := make(chan error, 1)
	g.wg.Add(3)
	go g.watchDeaths(evCtx, subscribed)
	go g.refreshLoop()
	go g.serve()
	select {
	case err = <-subscribed:
	case <-time.After(5 * time.Second):
		err = errors.New("no answer within 5 s")
	}
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("the Engine API's event stream: %w", err)
	}
	return g, nil
}

func (g *ingress) Addr() string { return g.ln.Addr().String() }

// Close stops accepting, ends the refresh and waits for the connections.
func (g *ingress) Close() {
	g.stopEvents()
	close(g.done)
	g.ln.Close()
	g.wg.Wait()
}

// Backends is the number of containers connections go to now.
func (g *ingress) Backends() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.backends)
}

// Since returns the backend changes, the connections not passed on and
// the refreshes from t on.
func (g *ingress) Since(t time.Time) ([]backendChange, []connOutcome, []refreshRun) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var rs []refreshRun
	for _, r := range g.refresh {
		if !r.Start.Before(t) {
			rs = append(rs, r)
		}
	}
	var cs []backendChange
	for _, c := range g.changes {
		if !c.Time.Before(t) {
			cs = append(cs, c)
		}
	}
	var outs []connOutcome
	for _, o := range g.outcomes {
		if !o.Time.Before(t) {
			outs = append(outs, o)
		}
	}
	return cs, outs, rs
}

func (g *ingress) refreshLoop() {
	defer g.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		start := time.Now()
		now := g.lookup()
		g.mu.Lock()
		now = slices.DeleteFunc(now, func(b backend) bool { return g.gone[b.ID] })
		g.record(now)
		g.backends = now
		g.refresh = append(g.refresh, refreshRun{start, time.Since(start)})
		g.mu.Unlock()
		select {
		case <-g.done:
			return
		case <-tick.C:
		}
	}
}

// watchDeaths drops a container from the set as soon as the engine reports
// that it died or turned unhealthy: the engine's container list (and
// inspect) still shows a dying container as running while the engine tears
// down its network, a few hundred milliseconds after its process exited.
func (g *ingress) watchDeaths(ctx context.Context, subscribed chan<- error) {
	defer g.wg.Done()
	filters, _ := json.Marshal(map[string][]string{"type": {"container"}, "label": {"com.docker.swarm.service.name=" + g.service}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/events?filters="+url.QueryEscape(string(filters)), nil)
	if err != nil {
		subscribed <- err
		return
	}
	stream := &http.Client{Transport: g.engine.Transport} // no timeout: the stream stays open
	resp, err := stream.Do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err = fmt.Errorf("GET /events: %s", resp.Status)
	}
	if err != nil {
		subscribed <- err
		return
	}
	defer resp.Body.Close()
	subscribed <- nil
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Action string
			Actor  struct{ ID string }
		}
		if err := dec.Decode(&ev); err != nil {
			return
		}
		if ev.Action != "die" && ev.Action != "health_status: unhealthy" {
			continue
		}
		g.mu.Lock()
		g.gone[ev.Actor.ID] = true
		now := slices.DeleteFunc(slices.Clone(g.backends), func(b backend) bool { return b.ID == ev.Actor.ID })
		if len(now) != len(g.backends) {
			g.record(now)
			g.backends = now
		}
		g.mu.Unlock()
	}
}

// record notes the containers that entered or left the set; g.mu is held.
func (g *ingress) record(now []backend) {
	at := time.Now()
	was := map[string]bool{}
	for _, b := range g.backends {
		was[b.ID] = true
	}
	is := map[string]bool{}
	for _, b := range now {
		is[b.ID] = true
		if !was[b.ID] {
			g.changes = append(g.changes, backendChange{Time: at, Added: true, ID: b.ID, Running: len(now)})
		}
	}
	for _, b := range g.backends {
		if !is[b.ID] {
			g.changes = append(g.changes, backendChange{Time: at, ID: b.ID, Running: len(now)})
		}
	}
}

// lookup finds the service's running containers that are healthy (or have
// no healthcheck) and their docker_gwbridge addresses, read once per
// container with nsenter. It asks the Engine API on its socket rather than
// running the docker CLI, whose start alone takes tens of milliseconds on a
// busy machine, and only lists the containers: the list reads the engine's
// snapshot of their states, where inspecting a container that is being torn
// down waits for it (hundreds of milliseconds), which would keep the set
// stale just when it changes.
func (g *ingress) lookup() []backend {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	filters, _ := json.Marshal(map[string][]string{"label": {"com.docker.swarm.service.name=" + g.service}})
	var list []struct {
		ID     string `json:"Id"`
		State  string // running, exited, ...
		Status string // e.g. "Up 3 seconds (healthy)"
	}
	if err := g.api(ctx, "/containers/json?filters="+url.QueryEscape(string(filters)), &list); err != nil {
		return nil
	}
	var bs []backend
	for _, c := range list {
		if c.State != "running" || !healthyStatus(c.Status) {
			continue
		}
		g.mu.Lock()
		ip, ok := g.ips[c.ID]
		g.mu.Unlock()
		if !ok {
			var ins struct{ State struct{ Pid int } }
			if err := g.api(ctx, "/containers/"+c.ID+"/json", &ins); err != nil {
				continue // removed meanwhile
			}
			if ip = g.gwbridgeAddr(ctx, strconv.Itoa(ins.State.Pid)); ip == "" {
				continue
			}
			g.mu.Lock()
			g.ips[c.ID] = ip
			g.mu.Unlock()
		}
		bs = append(bs, backend{ID: c.ID, Addr: net.JoinHostPort(ip, strconv.Itoa(g.port))})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
	return bs
}

// healthyStatus reads a container list's Status: "Up 3 seconds (healthy)",
// "(health: starting)", "(unhealthy)", or no health at all without a
// healthcheck.
func healthyStatus(status string) bool {
	switch {
	case strings.Contains(status, "(healthy)"):
		return true
	case strings.Contains(status, "(health: "), strings.Contains(status, "(unhealthy)"):
		return false
	}
	return true
}

// api GETs path from the Engine API into v.
func (g *ingress) api(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := g.engine.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// engineClient is an HTTP client of the Engine API on its unix socket
// (DOCKER_HOST=unix://... or the default).
func engineClient() (*http.Client, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			return nil, fmt.Errorf("DOCKER_HOST=%s: the stand-in balancer reads the engine on its unix socket only", h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
	}}, nil
}

// gwbridgeAddr is the address in docker_gwbridge's subnet of the network
// namespace of process pid.
func (g *ingress) gwbridgeAddr(ctx context.Context, pid string) string {
	out, err := exec.CommandContext(ctx, "nsenter", "--target", pid, "--net", "ip", "-4", "-o", "addr").Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i, w := range f {
			if w != "inet" || i+1 >= len(f) {
				continue
			}
			if ip, _, err := net.ParseCIDR(f[i+1]); err == nil && g.subnet.Contains(ip) {
				return ip.String()
			}
		}
	}
	return ""
}

func (g *ingress) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer c.Close()
			g.mu.Lock()
			now := g.backends
			g.mu.Unlock()
			if len(now) == 0 {
				g.fail("no healthy container")
				return // as the mesh does with no task to send to: the connection closes
			}
			b := now[rand.IntN(len(now))]
			// A live container on the bridge answers a SYN at once. A dial
			// that takes longer goes to a container that is gone; letting
			// its SYN be retransmitted (after 1 s) could reach a new task
			// that reused the address before it is healthy, which neither
			// the mesh nor this stand-in means to do.
			up, err := net.DialTimeout("tcp", b.Addr, dialTimeout)
			if err != nil {
				g.fail("dial " + dialKind(err))
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			_, _ = io.Copy(c, up)
		}()
	}
}

func (g *ingress) fail(why string) {
	g.mu.Lock()
	g.outcomes = append(g.outcomes, connOutcome{Time: time.Now(), Why: why})
	g.mu.Unlock()
}

func dialKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout (" + dialTimeout.String() + ")"
	}
	return err.Error()
}
