package testenv

import "os"

// killPID ends pid. The sshd peer runs on Linux and macOS only; this keeps
// the package building for every release target's go vet.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// stopPID cannot freeze a process on Windows; it ends it instead.
func stopPID(pid int) { killPID(pid) }
