// Command deploy-swarm is the deploy-swarm action as a standalone binary; inputs come from INPUT_ variables.
package main

import (
	"context"
	"os"

	"github.com/gantry-dev/gantry/internal/action"
	"github.com/gantry-dev/gantry/internal/cli"
)

func main() {
	os.Exit(cli.RunAction(context.Background(), "deploy-swarm", action.OSEnv()))
}
