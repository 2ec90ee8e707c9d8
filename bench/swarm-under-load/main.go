// Command swarm-under-load measures what a Docker Swarm deploy by `gantry
// deploy-swarm` costs the users of a service: on this machine's Docker
// engine in swarm mode it deploys a stack of examples/app (3 replicas, a
// healthcheck every second), then deploys v2 while k6 sends a constant load,
// and counts the requests that failed. Each scenario starts from a fresh
// stack on v1:
//
//   - start-first and stop-first: Swarm's rolling update (update_config
//     parallelism 1, monitor 3s) with `--update-order start-first` or
//     `stop-first`;
//   - blue-green and canary: the service labelled gantry.edge, deployed by
//     `--strategy blue-green` or `--strategy canary --canary-steps 50` through
//     gantry's edge (gantry-edge, .bin/gantry-edge in a FROM-scratch image),
//     which gantry runs as the stack service gantry-edge publishing its port
//     in host mode on this manager.
//
// Swarm's ingress routing mesh does not work on the machines this runs on
// (the engine creates no DOCKER-INGRESS iptables chain, so a published port
// is unreachable), so in the rolling scenarios requests go through a
// stand-in balancer on 127.0.0.1, as internal/testenv.SwarmIngress does in
// the tests: each connection goes to a running, healthy container of the
// service at its docker_gwbridge address, the set refreshed every 100 ms and
// a container dropped as soon as the engine reports it died. See ingress.go
// for how that differs from the mesh. The edge scenarios need no stand-in:
// the edge's host-mode port is reachable, and k6 sends its requests there.
//
// Run it from the repository root after ./scripts/tools.sh test:
//
//	go run ./bench/swarm-under-load
//
// It prints a Markdown table and appends it, with the machine and the tool
// versions, to BENCHMARKS.md. Every stack, service, container, network,
// volume and image name it creates carries the prefix bench-sul-<run id> and
// is removed when it ends, also on failure or Ctrl-C; nothing else on the
// engine is touched. If the engine is not in swarm mode the bench turns it on
// (`docker swarm init --advertise-addr 127.0.0.1`, as internal/testenv.Swarm
// does) and leaves it on, since tests sharing the engine may rely on it by
// then. Images are built daemonlessly (gantry build-push) into a registry
// server (.bin/registry) on 127.0.0.1; nothing is pulled from the internet.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// config is one run's settings.
type config struct {
	// Rate is the load in requests per second.
	Rate int
	// Window is how long each load runs; Lead is how long it runs before
	// the deploy starts.
	Window, Lead time.Duration
	// MinTail is the least time the load must go on after the deploy ends
	// for the run to count as spanning the deploy.
	MinTail time.Duration
	// Replicas is the service's replica count.
	Replicas int
	// Scenarios are the scenarios to run, in order (see scenarioKeys).
	Scenarios []string
	// CanaryInterval is how long the canary scenario probes at 50 %.
	CanaryInterval time.Duration
	// KeepTmp keeps the temporary directory (gantry's logs and summaries,
	// k6's scripts and logs) for inspection.
	KeepTmp bool
	Out     string
	Append  bool
	// Command is the command line that reproduces this run.
	Command string
}

func main() {
	var c config
	flag.IntVar(&c.Rate, "rate", 200, "load in requests per second (k6 constant-arrival-rate, a new connection per request)")
	flag.DurationVar(&c.Window, "window", 45*time.Second, "how long the load runs in each scenario")
	flag.DurationVar(&c.Lead, "lead", 5*time.Second, "how long the load runs before the deploy starts")
	flag.DurationVar(&c.MinTail, "min-tail", 5*time.Second, "least time the load must run after the deploy ends")
	flag.IntVar(&c.Replicas, "replicas", 3, "replicas of the service")
	scenarios := flag.String("scenarios", strings.Join(scenarioKeys, ","), "scenarios to run, comma-separated: "+strings.Join(scenarioKeys, ", "))
	flag.DurationVar(&c.CanaryInterval, "canary-interval", 5*time.Second, "time the canary scenario spends at 50 % (--canary-interval)")
	flag.BoolVar(&c.KeepTmp, "keep-tmp", false, "keep the temporary directory with gantry's and k6's logs")
	flag.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file the results section is appended to")
	flag.BoolVar(&c.Append, "append", true, "append the results to -out; false only prints them")
	flag.Parse()
	for _, k := range strings.Split(*scenarios, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.Scenarios = append(c.Scenarios, k)
		}
	}
	c.Command = "go run ./bench/swarm-under-load"
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "keep-tmp" && f.Name != "append" && f.Name != "out" {
			c.Command += fmt.Sprintf(" -%s=%s", f.Name, f.Value)
		}
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/swarm-under-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	switch {
	case c.Rate < 1 || c.Replicas < 1:
		return fmt.Errorf("-rate and -replicas must be at least 1")
	case c.Lead < time.Second || c.Window < c.Lead+c.MinTail+10*time.Second:
		return fmt.Errorf("-lead must be at least 1s and -window at least -lead + -min-tail + 10s")
	case len(c.Scenarios) == 0:
		return fmt.Errorf("-scenarios names none of %s", strings.Join(scenarioKeys, ", "))
	case c.CanaryInterval < time.Second:
		return fmt.Errorf("-canary-interval must be at least 1s")
	}
	for _, k := range c.Scenarios {
		if !slices.Contains(scenarioKeys, k) {
			return fmt.Errorf("-scenarios: %q is not one of %s", k, strings.Join(scenarioKeys, ", "))
		}
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "gantry")); err != nil {
		return fmt.Errorf("run from the repository root (no cmd/gantry in %s)", root)
	}
	tmp, err := os.MkdirTemp("", "gantry-bench-sul-")
	if err != nil {
		return err
	}
	if c.KeepTmp {
		defer logf("kept %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	b, err := newBench(ctx, c, root, tmp)
	if err != nil {
		return err
	}
	// Cleanup runs even when the run fails or is interrupted.
	defer b.Close(context.WithoutCancel(ctx))
	if err := b.ensureSwarm(ctx); err != nil {
		return err
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}

	res := &results{Config: c, RunID: b.id}
	for _, key := range c.Scenarios {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sc := b.scenario(ctx, key)
		res.Scenarios = append(res.Scenarios, sc)
		if sc.Err != nil {
			logf("%s: %v", sc.Name, sc.Err)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.Machine = benchenv.Machine()
	res.Versions = b.versions(ctx)
	res.Date = time.Now().UTC()
	md := res.markdown()
	fmt.Print(md)
	if c.Append {
		if err := benchenv.AppendSection(c.Out, md); err != nil {
			return err
		}
		logf("appended to %s", c.Out)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
