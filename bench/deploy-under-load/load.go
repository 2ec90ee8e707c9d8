package main

import (
	"context"
	"path/filepath"

	"github.com/gantry-dev/gantry/bench/k6load"
)

// The load is k6 at a constant arrival rate (bench/k6load).
type (
	load       = k6load.Load
	loadResult = k6load.Result
	request    = k6load.Request
)

var errKind = k6load.ErrKind

// startLoad starts k6 against url for the configured window.
func (b *bench) startLoad(ctx context.Context, name, url string) (*load, error) {
	return k6load.Start(ctx, k6load.Options{
		K6: b.bin["k6"], Dir: filepath.Join(b.tmp, "load-"+name), Env: b.env,
		URL: url, Rate: b.c.Rate, Window: b.c.Window, ReuseConnections: b.c.ReuseConnections,
	})
}
