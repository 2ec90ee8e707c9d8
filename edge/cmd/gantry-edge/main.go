// Command gantry-edge is Caddy with gantry's dynamic upstreams (see package
// upstreams): the edge proxy of gantry's blue-green and canary deploys. It is
// used exactly like caddy, e.g. "gantry-edge run --resume".
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/gantry-dev/gantry/edge/upstreams"
)

func main() { caddycmd.Main() }
