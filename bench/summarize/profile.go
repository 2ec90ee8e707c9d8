//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/gantry-dev/gantry/internal/loadtest"
)

// profile is where loadtest.Summarize spends its CPU time on one input.
type profile struct {
	Path    string
	Took    time.Duration
	Bytes   int64
	Buckets []bucket
	Top     string // go tool pprof -top, flat
}

// bucket is the cumulative share of the samples in one function.
type bucket struct {
	What, Func string
	Share      float64 // of all samples, in %
}

// buckets are the functions the report splits the time into: each share is
// cumulative (a function's share includes what it calls).
var buckets = []bucket{
	{What: "decoding each line with encoding/json (all of it)", Func: "encoding/json.Unmarshal"},
	{What: "… of which the validity pre-scan json.Unmarshal makes before decoding", Func: "encoding/json.checkValid"},
	{What: "… of which parsing the RFC 3339 times", Func: "time.(*Time).UnmarshalJSON"},
	{What: "… of which reflection (field lookup by name, type names)", Func: "encoding/json.indirect"},
	{What: "allocating (strings for tags, slices)", Func: "runtime.mallocgc"},
	{What: "garbage collection in the background", Func: "runtime.gcBgMarkWorker"},
	{What: "the accumulator (stats, groups, seconds, histograms)", Func: "github.com/gantry-dev/gantry/internal/loadtest.(*accumulator).addPoint"},
	{What: "… of which HDR histograms", Func: "github.com/gantry-dev/gantry/internal/loadtest.record"},
	{What: "splitting lines (bufio.Scanner) and reading the file", Func: "bufio.(*Scanner).Scan"},
}

// profileSummarize runs loadtest.SummarizeFile on path under the CPU
// profiler, in this process, and reads the profile with go tool pprof.
func profileSummarize(ctx context.Context, dir, path string) (*profile, error) {
	p := &profile{Path: filepath.Join(dir, "summarize.cpu.pprof")}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	p.Bytes = st.Size()
	f, err := os.Create(p.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, err
	}
	start := time.Now()
	_, err = loadtest.SummarizeFile(path)
	p.Took = time.Since(start)
	pprof.StopCPUProfile()
	if err != nil {
		return nil, err
	}

	cum, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=400", p.Path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -top -cum %s: %w", p.Path, err)
	}
	shares := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(cum)))
	for sc.Scan() {
		// flat flat% sum% cum cum% name
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasSuffix(f[4], "%") {
			continue
		}
		var share float64
		if _, err := fmt.Sscanf(f[4], "%g%%", &share); err == nil {
			shares[strings.Join(f[5:], " ")] = share
		}
	}
	for _, b := range buckets {
		for name, share := range shares {
			if name == b.Func || strings.HasPrefix(name, b.Func+" ") {
				b.Share = max(b.Share, share)
			}
		}
		p.Buckets = append(p.Buckets, b)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=20", p.Path).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof -top %s: %w", p.Path, err)
	}
	for _, line := range strings.SplitAfter(string(top), "\n") {
		if !strings.HasPrefix(line, "File:") && !strings.HasPrefix(line, "Build ID:") {
			p.Top += line
		}
	}
	return p, nil
}
