// Command deploy-under-load measures what a deploy costs the users of a
// service: it deploys a new version of examples/app to this machine's Docker
// engine while real k6 sends a constant load, and counts the requests that
// failed, side by side for
//
//   - gantry deploy-compose --strategy blue-green (Caddy edge in front),
//   - gantry deploy-compose --strategy rolling, 2 replicas (edge in front),
//   - the usual script: the service publishes its port, `docker compose up
//     -d --force-recreate` with the new image, then sleep and curl until
//     /health answers with the new commit,
//
// plus a release that crashes on start, deployed blue-green under the same
// load, to time how fast gantry notices and confirm the old version kept
// serving. It also times a bare container start (`docker compose up -d` to
// the first good /health) to compare the deploys against.
//
// Run it from the repository root after ./scripts/tools.sh test:
//
//	go run ./bench/deploy-under-load
//
// It prints a Markdown table and appends it, with the machine and the tool
// versions, to BENCHMARKS.md. Every container, network, volume, image name
// and process it creates carries the prefix bench-dul-<run id> and is
// removed when it ends, also on failure or Ctrl-C; nothing of other Compose
// projects is touched. Images are built daemonlessly into an in-process
// registry on 127.0.0.1; nothing is pulled from the internet.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
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
	// StartRuns is how many bare container starts are timed.
	StartRuns int
	// ReuseConnections lets k6 keep connections alive; by default every
	// request opens a new one, as requests from many different users do.
	ReuseConnections bool
	Out              string
	Append           bool
	// Command is the command line that reproduces this run.
	Command string
}

func main() {
	var c config
	flag.IntVar(&c.Rate, "rate", 200, "load in requests per second (k6 constant-arrival-rate)")
	flag.DurationVar(&c.Window, "window", 60*time.Second, "how long the load runs in each scenario")
	flag.DurationVar(&c.Lead, "lead", 10*time.Second, "how long the load runs before the deploy starts")
	flag.DurationVar(&c.MinTail, "min-tail", 5*time.Second, "least time the load must run after the deploy ends")
	flag.IntVar(&c.StartRuns, "start-runs", 5, "bare container starts to time (the table shows the median)")
	flag.BoolVar(&c.ReuseConnections, "reuse-connections", false, "let k6 keep connections alive (default: a new connection per request)")
	flag.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file the results section is appended to")
	flag.BoolVar(&c.Append, "append", true, "append the results to -out; false only prints them")
	flag.Parse()
	c.Command = "go run ./bench/deploy-under-load"
	flag.Visit(func(f *flag.Flag) { c.Command += fmt.Sprintf(" -%s=%s", f.Name, f.Value) })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy-under-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	switch {
	case c.Rate < 1 || c.StartRuns < 1:
		return fmt.Errorf("-rate and -start-runs must be at least 1")
	case c.Lead < time.Second || c.Window < c.Lead+c.MinTail+5*time.Second:
		return fmt.Errorf("-lead must be at least 1s and -window at least -lead + -min-tail + 5s")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "gantry")); err != nil {
		return fmt.Errorf("run from the repository root (no cmd/gantry in %s)", root)
	}
	tmp, err := os.MkdirTemp("", "gantry-bench-dul-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b, err := newBench(ctx, c, root, tmp)
	if err != nil {
		return err
	}
	// Cleanup runs even when the run is interrupted.
	defer b.Close(context.WithoutCancel(ctx))
	if err := b.prepare(ctx); err != nil {
		return err
	}

	res := &results{Config: c, RunID: b.id}
	if res.Start, err = b.containerStarts(ctx); err != nil {
		return fmt.Errorf("time container starts: %w", err)
	}
	for _, s := range []func(context.Context) (*scenario, error){b.blueGreen, b.crash, b.rolling, b.baseline} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sc, err := s(ctx)
		if sc != nil {
			res.Scenarios = append(res.Scenarios, sc)
		}
		if err != nil {
			return err
		}
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
