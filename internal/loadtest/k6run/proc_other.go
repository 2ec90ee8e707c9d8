//go:build !unix

package k6run

import "os/exec"

// interruptOnCancel leaves exec's default, killing k6: there is no SIGINT to
// send here.
func interruptOnCancel(*exec.Cmd) {}
