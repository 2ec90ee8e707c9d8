// Package version holds gantry's version, set at build time with
// -ldflags "-X github.com/gantry-dev/gantry/internal/version.Version=v1.2.3".
package version

// Version is the release this binary was built from, or "dev".
var Version = "dev"
