//go:build !windows

package cli

import (
	"errors"
	"os/exec"
	"syscall"
)

// detach makes cmd a session of its own, so that it outlives this step.
func detach(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return nil
}

// interrupt sends SIGINT to pid; a process already gone is no error.
func interrupt(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// killPID sends SIGKILL to pid.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// signalable tells whether pid exists and may be signaled.
func signalable(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }
