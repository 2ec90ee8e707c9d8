// Package benchenv holds what gantry's benchmarks share in their reports.
package benchenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine describes this machine for a benchmark section: CPUs, memory,
// kernel and Go.
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kB int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kB); err == nil {
			mem = fmt.Sprintf("%.1f GiB memory", float64(kB)/(1<<20))
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs (nproc; %s), %s, %s, %s %s/%s", runtime.NumCPU(), cpu, mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

const header = `# Benchmarks

Each benchmark in ` + "`bench/<name>`" + ` is reproduced by one command and appends a dated section here, with the machine and the versions of every tool compared. The machines are shared: compare the ratios within a section, not absolute times across sections.
`

// AppendSection appends md to path (BENCHMARKS.md), creating it with its
// header when missing.
func AppendSection(path, md string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(path, []byte(header), 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(md); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// GantryBuild describes the checkout a benchmark measures: its commit, and
// whether it has uncommitted changes.
func GantryBuild(ctx context.Context, root string) string {
	commit := "unknown commit"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
		if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
			commit += " + uncommitted changes"
		}
	}
	return "dev build of " + commit
}
