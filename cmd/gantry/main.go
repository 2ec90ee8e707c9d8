// Command gantry runs gantry's actions from a laptop or any CI system.
package main

import (
	"context"
	"os"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/cli"
)

func main() {
	os.Exit(cli.Run(context.Background(), os.Args[1:], action.OSEnv()))
}
