//go:build unix

package testenv

import "syscall"

// killPID sends SIGKILL to pid.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// stopPID sends SIGSTOP to pid: it stays alive but answers nothing.
func stopPID(pid int) { _ = syscall.Kill(pid, syscall.SIGSTOP) }
