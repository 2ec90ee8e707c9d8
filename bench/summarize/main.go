//go:build linux

// Command summarize measures `gantry loadtest summarize` on a large k6 JSON
// output, side by side with its peers in the same run:
//
//   - jq computing the count and mean of http_req_duration in one streaming
//     reduce (the usual ad-hoc way);
//   - k6's own tooling: k6 v1.8.1 cannot replay a JSON output (its
//     `k6 dashboard` subcommand is an extension k6 wants to download and
//     build), so the bench runs `k6-web-dashboard aggregate` from
//     xk6-dashboard v0.8.1, the dashboard module k6 v1.8.1 embeds, which
//     turns a JSON output into the dashboard's events;
//   - k6's in-run aggregation: k6 running the same number of requests with
//     its end-of-test summary and no output, for its peak memory.
//
// The input is made from a short real k6 run against a loopback server (the
// recording), repeated with shifted timestamps and fresh latencies from a
// known distribution until it reaches -size; a second input of -small bytes
// is the first part of the same stream, and a long input the large one at a
// fraction of its rate, to show how memory grows with size and with the
// length of the run. Exact percentiles come from the latencies the
// generator wrote.
//
// Run it from the repository root:
//
//	./scripts/tools.sh bench && go run ./bench/summarize
//
// It prints a Markdown section and appends it, with the machine and the
// versions, to BENCHMARKS.md. The inputs go to a temporary directory (under
// -dir) that is removed at the end unless -keep is set.
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
	// Size and Small are the sizes of the two inputs, in bytes.
	Size, Small int64
	Rounds      int
	// Stretch is how many times slower the long input runs than the large
	// one; 0 leaves it out.
	Stretch int
	// RecordRate and RecordFor shape the recording: a constant arrival
	// rate of requests for a while.
	RecordRate int
	RecordFor  time.Duration
	// Dashboard and K6Run enable the k6 peers.
	Dashboard, K6Run bool
	Seed             uint64
	Dir              string
	Keep             bool
	Profile          bool
	Out              string
	Append           bool
	// Command is the command line that reproduces this run.
	Command string
}

func main() {
	var c config
	var size, small string
	flag.StringVar(&size, "size", "1GB", "size of the large input (k6 JSON lines), e.g. 1GB, 300MB")
	flag.StringVar(&small, "small", "100MB", "size of the small input, the first part of the large one")
	flag.IntVar(&c.Stretch, "long-stretch", 40, "the long input is the large one this many times slower (same lines and values, a longer run), for gantry only; 0 leaves it out")
	flag.IntVar(&c.Rounds, "rounds", 3, "runs of each tool on each input; times are medians")
	flag.IntVar(&c.RecordRate, "record-rate", 400, "requests per second of the real k6 recording")
	flag.DurationVar(&c.RecordFor, "record-for", 5*time.Second, "duration of the real k6 recording")
	flag.BoolVar(&c.Dashboard, "dashboard", true, "measure k6-web-dashboard aggregate (xk6-dashboard v0.8.1, built into .bin if missing)")
	flag.BoolVar(&c.K6Run, "k6-run", true, "measure k6's own in-run summary over as many requests as each input holds")
	flag.Uint64Var(&c.Seed, "seed", 1, "seed of the synthesized latencies")
	flag.StringVar(&c.Dir, "dir", os.TempDir(), "directory for the inputs (needs about 1.2 × (2 × size + small) free)")
	flag.BoolVar(&c.Keep, "keep", false, "keep the inputs and outputs instead of removing them")
	flag.BoolVar(&c.Profile, "profile", true, "profile loadtest.Summarize in-process on the small input and report where its CPU time goes")
	flag.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file the results section is appended to")
	flag.BoolVar(&c.Append, "append", true, "append the results to -out; false only prints them")
	flag.Parse()
	c.Command = "./scripts/tools.sh bench && go run ./bench/summarize"
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "append" && f.Name != "out" && f.Name != "keep" { // they do not change the results
			c.Command += fmt.Sprintf(" -%s=%s", f.Name, f.Value)
		}
	})

	var err error
	if c.Size, err = parseSize(size); err == nil {
		c.Small, err = parseSize(small)
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, c)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/summarize:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	switch {
	case c.Size < 10e6 || c.Size > 100e9:
		return fmt.Errorf("-size must be between 10MB and 100GB")
	case c.Small < 1e6 || c.Small >= c.Size:
		return fmt.Errorf("-small must be at least 1MB and below -size")
	case c.Rounds < 1 || c.Rounds > 20:
		return fmt.Errorf("-rounds must be between 1 and 20")
	case c.Stretch < 0 || c.Stretch == 1 || c.Stretch > 1000:
		return fmt.Errorf("-long-stretch must be 0 (no long input) or between 2 and 1000")
	case c.RecordRate < 10 || c.RecordRate > 5000 || c.RecordFor < 2*time.Second || c.RecordFor > time.Minute:
		return fmt.Errorf("-record-rate must be between 10 and 5000, -record-for between 2s and 1m")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "gantry")); err != nil {
		return fmt.Errorf("run from the repository root (no cmd/gantry in %s)", root)
	}
	need := c.Size + c.Small
	if c.Stretch > 0 {
		need += c.Size
	}
	if err := checkFree(c.Dir, need*6/5); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(c.Dir, "gantry-bench-summarize-")
	if err != nil {
		return err
	}
	if c.Keep {
		logf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	res := &results{Config: c, Started: time.Now(), Build: benchenv.GantryBuild(ctx, root)}
	b, err := newBench(ctx, c, root, tmp)
	if err != nil {
		return err
	}
	if err := b.measureAll(ctx, res); err != nil {
		return err
	}
	res.Machine = benchenv.Machine()
	if now := benchenv.GantryBuild(ctx, root); now != res.Build {
		res.Build += " (the checkout changed to " + now + " during the run)"
	}
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

// checkFree fails unless dir's file system has need bytes free.
func checkFree(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("check free space in %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %s free, the inputs need about %s; free some space, pass -dir elsewhere or a smaller -size", dir, mb(free), mb(need))
	}
	return nil
}

// parseSize reads 1GB, 300MB, 5e8 (decimal units, as MB/s are reported).
func parseSize(s string) (int64, error) {
	var v float64
	var unit string
	if n, _ := fmt.Sscanf(s, "%g%s", &v, &unit); n == 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional kB, MB or GB", s)
	}
	mult := map[string]float64{"": 1, "B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q; use kB, MB or GB", s, unit)
	}
	return int64(v * mult), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
