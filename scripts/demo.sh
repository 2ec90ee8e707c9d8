#!/usr/bin/env bash
# Runs the local demo of gantry's chain on embedded defaults (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go run ./cmd/gantry demo "$@"
