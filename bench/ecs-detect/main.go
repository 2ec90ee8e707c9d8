// Command ecs-detect measures how soon, and how truthfully, an ECS deploy step
// ends: gantry's deploy-ecs (internal/deploy/ecs.Deploy, polling every 3 s)
// against the AWS SDK's ServicesStable waiter with its default options (what
// aws-actions/amazon-ecs-deploy-task-definition waits with when
// wait-for-service-stability is on), side by side in the same run, in three
// scenarios:
//
//   - a release whose tasks crash, service of 2 tasks with the deployment
//     circuit breaker and rollback on (the common setup),
//   - the same release without a circuit breaker,
//   - a healthy release.
//
// Each tool deploys to its own in-process ECS fake (internal/fakes/ecsfake,
// the real awsJson1.1 wire protocol, called through the real SDK client),
// whose virtual clock follows the wall clock, with realistic timings: tasks
// run 20 s after launch, a crashing one exits 1 s later. All six runs go at
// once, so the whole benchmark takes about as long as its longest run, the
// waiter's timeout (10 minutes by default).
//
// Run it from the repository root:
//
//	go run ./bench/ecs-detect
//
// It prints a Markdown table and appends it, with the machine and the
// versions, to BENCHMARKS.md. Nothing outside this process is started; the
// fakes listen on 127.0.0.1 and stop when it ends.
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

type config struct {
	// MaxWait is the waiter's maximum wait (the action's wait-for-minutes).
	MaxWait time.Duration
	// Poll is gantry's poll interval.
	Poll time.Duration
	// Step is how often the fakes' virtual clocks catch up with the wall
	// clock: the resolution of every time the fakes stamp.
	Step   time.Duration
	Out    string
	Append bool
	// Command is the command line that reproduces this run.
	Command string
}

func main() {
	var c config
	flag.DurationVar(&c.MaxWait, "max-wait", 10*time.Minute, "the waiter's maximum wait (aws-actions/amazon-ecs-deploy-task-definition's wait-for-minutes defaults to 30m)")
	flag.DurationVar(&c.Poll, "poll", 3*time.Second, "gantry's poll interval")
	flag.DurationVar(&c.Step, "step", 100*time.Millisecond, "how often the fakes' clocks follow the wall clock")
	flag.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file the results section is appended to")
	flag.BoolVar(&c.Append, "append", true, "append the results to -out; false only prints them")
	flag.Parse()
	c.Command = "go run ./bench/ecs-detect"
	flag.Visit(func(f *flag.Flag) { c.Command += fmt.Sprintf(" -%s=%s", f.Name, f.Value) })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/ecs-detect:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	switch {
	case c.MaxWait < time.Minute || c.MaxWait > time.Hour:
		return fmt.Errorf("-max-wait must be between 1m and 1h")
	case c.Poll < 100*time.Millisecond || c.Poll > time.Minute:
		return fmt.Errorf("-poll must be between 100ms and 1m")
	case c.Step < 10*time.Millisecond || c.Step > time.Second:
		return fmt.Errorf("-step must be between 10ms and 1s")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "gantry")); err != nil {
		return fmt.Errorf("run from the repository root (no cmd/gantry in %s)", root)
	}
	// The build measured is the checkout as it is now, when the run compiled.
	res := &results{Config: c, Started: time.Now(), Build: benchenv.GantryBuild(ctx, root)}
	res.Runs = runAll(ctx, c)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.Machine = benchenv.Machine()
	if now := benchenv.GantryBuild(ctx, root); now != res.Build {
		res.Build += " (the checkout changed to " + now + " during the run)"
	}
	res.Versions = moduleVersions()
	res.Waiter = waiterDefaults()
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
