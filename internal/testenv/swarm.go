package testenv

import (
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var gwbridgeAddr = regexp.MustCompile(`inet (172\.[0-9.]+)/`)

// SwarmIngress stands in for Swarm's routing mesh, which needs iptables rules
// this sandbox's engine does not create: a TCP balancer on 127.0.0.1 that
// sends each connection to a running container of the Swarm service that is
// healthy (or has no healthcheck), at its docker_gwbridge address and port,
// as the mesh sends it to a task it counts as ready. The set of containers is
// refreshed every 100 ms. Returns host:port.
func SwarmIngress(t testing.TB, service string, port int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root, to enter task containers' network namespaces (the routing-mesh stand-in)", "run the Swarm tests as root")
		return ""
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		addrs []string
		done  = make(chan struct{})
	)
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			a := taskAddrs(service)
			mu.Lock()
			addrs = a
			mu.Unlock()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				mu.Lock()
				now := addrs
				mu.Unlock()
				if len(now) == 0 {
					return // as the mesh does with no task to send to: the connection closes
				}
				up, err := net.DialTimeout("tcp", net.JoinHostPort(now[rand.IntN(len(now))], strconv.Itoa(port)), 500*time.Millisecond) // short: a stopped task's address may be given to the next one before it is healthy
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// taskAddrs are the docker_gwbridge addresses of the service's running
// containers that are not unhealthy (nor still starting when they have a healthcheck).
func taskAddrs(service string) []string {
	out, err := exec.Command("docker", "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name="+service).Output()
	if err != nil {
		return nil
	}
	var addrs []string
	for _, id := range strings.Fields(string(out)) {
		st, err := exec.Command("docker", "inspect", "--format", "{{.State.Pid}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", id).Output()
		if err != nil {
			continue
		}
		f := strings.Fields(string(st))
		if len(f) == 0 || (len(f) > 1 && f[1] != "healthy") {
			continue
		}
		ip, err := exec.Command("nsenter", "--target", f[0], "--net", "ip", "-4", "-o", "addr").Output()
		if err != nil {
			continue
		}
		if m := gwbridgeAddr.FindSubmatch(ip); m != nil {
			addrs = append(addrs, string(m[1]))
		}
	}
	return addrs
}
