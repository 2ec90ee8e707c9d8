//go:build unix

package k6run

import (
	"os"
	"os/exec"
	"syscall"
)

// interruptOnCancel makes a cancelled context send k6 SIGINT, on which it
// stops the test and still writes its outputs, instead of killing it. k6
// gets its own process group so that a Ctrl-C or a runner's signal to
// gantry's group does not reach it too: a second SIGINT makes k6 quit at
// once, without its outputs.
func interruptOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
}
