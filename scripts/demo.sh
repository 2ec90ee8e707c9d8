#!/usr/bin/env bash
# Runs the local demo of gantry's chain on embedded defaults (see README):
# installs the pinned peers it needs (docker compose v2, the edge proxy),
# then builds, pushes, deploys blue-green under load and rolls back on this
# machine's Docker engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
./scripts/tools.sh test
exec go run ./cmd/gantry demo "$@"
