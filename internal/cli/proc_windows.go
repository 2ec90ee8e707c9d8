package cli

import (
	"errors"
	"os/exec"
)

// errBackgroundUnix is why a background load test cannot run on Windows:
// stopping it needs SIGINT, so that k6 writes its verdict.
var errBackgroundUnix = errors.New("loadtest mode start/stop runs on Linux and macOS runners only (stopping k6 needs SIGINT); use mode: run on Windows")

func detach(*exec.Cmd) error { return errBackgroundUnix }

func interrupt(int) error { return errBackgroundUnix }

func killPID(int) {}

func signalable(int) bool { return false }
