// Command stockcaddy stands in for a Caddy without gantry-edge's relay
// command: "run" blocks until SIGTERM, any other command is refused the way
// Caddy's command line (cobra) refuses one it does not know.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "run" {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		return
	}
	cmd := ""
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	fmt.Fprintf(os.Stderr, "Error: unknown command %q for \"caddy\"\nRun 'caddy --help' for usage.\n", cmd)
	os.Exit(1)
}
