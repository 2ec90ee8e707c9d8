//go:build linux

// Command cloudrun-overhead measures what a fresh GitHub runner pays from the
// start of a Cloud Run deploy step to its first Cloud Run API call, side by
// side for
//
//   - gantry: a cold install of the release binary through the project's own
//     scripts/install.sh (fresh tool cache every round) from a release server
//     on 127.0.0.1 that counts the bytes it sends and can cap its link, then
//     the installed `gantry deploy-cloudrun` exactly as
//     actions/deploy-cloudrun runs it (INPUT_ variables), with Google
//     credentials from a Workload Identity Federation exchange with
//     internal/fakes/githubfake and internal/fakes/googlefake, against the
//     Cloud Run fake internal/fakes/runfake behind a gRPC call detector;
//   - the Google Cloud SDK: whether this machine's package index offers it
//     (it cannot be downloaded here, so its archive size and install time are
//     the published and reported figures), and, when gcloud is installed,
//     the measured time from `gcloud run deploy` starting to its first
//     Cloud Run request, with the same WIF exchange against the same fakes
//     through a local proxy.
//
// Run it from the repository root:
//
//	go run ./bench/cloudrun-overhead                  # loopback, uncapped
//	go run ./bench/cloudrun-overhead -link-mbit=0,200  # also at 200 Mbit/s
//
// It prints a Markdown table and appends it, with the machine and the
// versions, to BENCHMARKS.md. Every server it starts listens on 127.0.0.1
// only; everything it starts (servers, processes, temp dirs) is stopped and
// removed when it ends, also on failure or Ctrl-C. Nothing reaches the
// network.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-dev/gantry/bench/benchenv"
)

// config is one run's settings.
type config struct {
	// Runs is the number of rounds per configuration.
	Runs int
	// LinksMbit are the release server's link caps, one gantry
	// configuration each; 0 is loopback speed.
	LinksMbit []int
	// Version is the release the installer asks for (the action's ref) and
	// ReleaseVersion what the binary is stamped with.
	Version, ReleaseVersion string
	// Gcloud measures an installed gcloud when one is on PATH.
	Gcloud bool
	// StepTimeout bounds every process the benchmark starts.
	StepTimeout time.Duration
	Out         string
	Append      bool
	// Command is the command line that reproduces this run.
	Command string
}

func main() {
	var c config
	flag.IntVar(&c.Runs, "runs", 5, "rounds per configuration (fresh tool cache, fresh fakes each); the table shows medians and ranges")
	links := flag.String("link-mbit", "0", "comma-separated caps of the release server's link in Mbit/s, one gantry configuration each (0: loopback speed), e.g. 0,200")
	flag.StringVar(&c.Version, "ref", "v1", "action ref the installer is given (GANTRY_ACTION_REF), such as v1; it installs the release the checkout's VERSION names (-release-version) whatever the ref")
	flag.StringVar(&c.ReleaseVersion, "release-version", "v1.0.0-bench", "version stamped into the release binary (-X internal/version.Version)")
	flag.BoolVar(&c.Gcloud, "gcloud", true, "also time an installed gcloud (skipped when none is on PATH)")
	flag.DurationVar(&c.StepTimeout, "step-timeout", 2*time.Minute, "longest any one install or deploy may run")
	flag.StringVar(&c.Out, "out", "BENCHMARKS.md", "Markdown file the results section is appended to")
	flag.BoolVar(&c.Append, "append", true, "append the results to -out; false only prints them")
	flag.Parse()
	c.Command = "go run ./bench/cloudrun-overhead"
	flag.Visit(func(f *flag.Flag) { c.Command += fmt.Sprintf(" -%s=%s", f.Name, f.Value) })
	for _, s := range strings.Split(*links, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bench/cloudrun-overhead: -link-mbit: %q is not a whole number of Mbit/s\n", s)
			os.Exit(2)
		}
		c.LinksMbit = append(c.LinksMbit, n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/cloudrun-overhead:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.Runs < 1 || c.Runs > 100 {
		return fmt.Errorf("-runs must be from 1 to 100")
	}
	if c.StepTimeout <= 0 {
		return fmt.Errorf("-step-timeout must be positive")
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "gantry")); err != nil {
		return fmt.Errorf("run from the repository root (no cmd/gantry in %s)", root)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "install.sh")); err != nil {
		return fmt.Errorf("no scripts/install.sh in %s", root)
	}
	tmp, err := os.MkdirTemp("", "gantry-bench-cro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	b, err := newBench(ctx, c, root, tmp)
	if err != nil {
		return err
	}
	defer b.Close()

	res := &results{Config: c, Release: b.rel, Gantry: map[int][]gantrySample{}}
	res.Gcloud = probeGcloud(ctx)
	logf("gcloud: %s", res.Gcloud.summary())
	measureGcloud := c.Gcloud && res.Gcloud.Path != ""
	for r := range c.Runs {
		for _, mbit := range c.LinksMbit {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s := b.gantryRound(ctx, mbit)
			res.Gantry[mbit] = append(res.Gantry[mbit], s)
			if s.Err != nil {
				logf("run %d/%d gantry (%s) FAILED: %v", r+1, c.Runs, linkName(mbit), s.Err)
				continue
			}
			logf("run %d/%d gantry (%s): install %.2fs, first Cloud Run call (%s) at %.2fs, %d bytes downloaded, deploy %s in %.1fs",
				r+1, c.Runs, linkName(mbit), s.Install.Seconds(), s.FirstMethod, s.FirstCall.Seconds(), s.Downloaded, s.Result, s.DeployDone.Seconds())
		}
		if measureGcloud {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s := b.gcloudRound(ctx, res.Gcloud.Path)
			res.GcloudSamples = append(res.GcloudSamples, s)
			if s.Err != nil {
				logf("run %d/%d gcloud FAILED: %v", r+1, c.Runs, s.Err)
				continue
			}
			logf("run %d/%d gcloud: first Cloud Run request (%s) at %.2fs", r+1, c.Runs, s.FirstTarget, s.FirstCall.Seconds())
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res.Machine = benchenv.Machine()
	res.Versions = b.versions(ctx, res.Gcloud)
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

func linkName(mbit int) string {
	if mbit == 0 {
		return "loopback, uncapped"
	}
	return fmt.Sprintf("%d Mbit/s", mbit)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
