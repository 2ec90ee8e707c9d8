// Command push benchmarks pushing one image to three registries: gantry
// build-push and promote against crane, regctl and skopeo, each on fresh
// distribution registries behind counting proxies, timing a cold fan-out and
// an unchanged re-push and counting the bytes each registry receives.
//
// Run it from the repository root after ./scripts/tools.sh bench:
//
//	go run ./bench/push
//
// It prints a Markdown table and appends it, with the machine and the tool
// versions, to BENCHMARKS.md. Everything it starts (registries, proxies,
// tools, temp dirs) is stopped and removed when it ends, also on failure or
// Ctrl-C.
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

// benchSHA is the commit every push is tagged for (sha-be7c0de).
const benchSHA = "be7c0de5a1f2e3d4c5b6a7980123456789abcdef"

type config struct {
	SizeMB, Layers, Runs int
	Out                  string
	Append               bool
	// Command is the command line that reproduces this run.
	Command string
}

func main() {
	var c config
	flag.IntVar(&c.SizeMB, "size", 300, "total image size in MB (10^6 bytes) of random data")
	flag.IntVar(&c.Layers, "layers", 10, "number of layers")
	flag.IntVar(&c.Runs, "runs", 3, "rounds per tool; the table shows medians")
	flag.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file the results section is appended to")
	flag.BoolVar(&c.Append, "append", true, "append the results to -out; false only prints them")
	linkMbit := flag.Int("link-mbit", 0, "cap each registry's upload link at this many Mbit/s (0: loopback speed)")
	flag.Parse()
	linkBytesPerSec = int64(*linkMbit) * 1_000_000 / 8
	c.Command = "go run ./bench/push"
	flag.Visit(func(f *flag.Flag) { c.Command += fmt.Sprintf(" -%s=%s", f.Name, f.Value) })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/push:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.Runs < 1 || c.SizeMB < 1 || c.Layers < 1 {
		return fmt.Errorf("-runs, -size and -layers must be at least 1")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "gantry")); err != nil {
		return fmt.Errorf("run from the repository root (no cmd/gantry in %s)", root)
	}
	tmp, err := os.MkdirTemp("", "gantry-bench-push-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b, err := newBench(ctx, root, tmp)
	if err != nil {
		return err
	}
	defer b.Close()

	logf("generating %d MB in %d layers (OCI layout)", c.SizeMB, c.Layers)
	start := time.Now()
	b.layout, err = writeLayout(filepath.Join(tmp, "layout"), int64(c.SizeMB)*1e6, c.Layers, tagFor(benchSHA))
	if err != nil {
		return fmt.Errorf("generate image: %w", err)
	}
	logf("image %s: %d blobs, %d bytes compressed, in %.1fs", b.layout.Digest, len(b.layout.Blobs), b.layout.BlobBytes(), time.Since(start).Seconds())
	if err := b.startSource(ctx); err != nil {
		return err
	}

	res := &results{Config: c, Layout: b.layout, Samples: map[string][]sample{}}
	for r := range c.Runs {
		for _, t := range tools {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s := b.round(ctx, t)
			res.Samples[t.Name] = append(res.Samples[t.Name], s)
			if s.Err != nil {
				logf("run %d/%d %-18s FAILED: %v", r+1, c.Runs, t.Name, s.Err)
				continue
			}
			logf("run %d/%d %-18s cold %6.2fs  unchanged %5.2fs  sent %s  digest round %.2fs", r+1, c.Runs, t.Name,
				s.Cold.Seconds(), s.Unchanged.Seconds(), mb(sum(s.ColdCounts).Sent), s.DigestRound.Seconds())
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

// tagFor is the tag gantry gives a commit: sha- and its first 7 hex digits.
func tagFor(sha string) string { return "sha-" + sha[:7] }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
