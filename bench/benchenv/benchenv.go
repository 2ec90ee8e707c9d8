// Package benchenv holds what gantry's benchmarks share in their reports.
package benchenv

import (
	"fmt"
	"os"
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
