// Command crashapp is the broken release of bench/deploy-under-load: it
// exits with status 1 as soon as it starts, as a service with a missing
// setting or a bad migration does.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "crashapp: DATABASE_URL is not set; exiting")
	os.Exit(1)
}
