// Package release holds tests of the install path that puts the pinned gantry binary on a runner (scripts/install.sh).
package release
