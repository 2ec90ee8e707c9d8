#!/usr/bin/env bash
# Runs the local demo of gantry's chain on embedded defaults (see README):
# checks the Docker engine first, installs only what the demo needs (docker
# compose v2 when none is installed, used by path and never as a Docker
# plugin; the edge proxy) while gantry builds, then builds, pushes, deploys
# blue-green under load and rolls back on this machine's Docker engine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

die() {
  echo "demo: $*" >&2
  exit 1
}
command -v docker >/dev/null 2>&1 ||
  die "the docker CLI is not installed; install Docker Engine (https://docs.docker.com/engine/install/) and run again"
if ! out=$(docker version --format '{{.Server.Version}}' 2>&1); then
  die "the Docker engine is not reachable ($(tail -n1 <<<"$out")); start it (e.g. sudo systemctl start docker) or set DOCKER_HOST, then run again"
fi
command -v go >/dev/null 2>&1 ||
  die "go is not installed; install Go (https://go.dev/dl/; go.mod names the version) and run again"

# gantry builds while tools.sh builds the edge proxy: on 2 cores the two
# overlap their module downloads and links. gantry, gantry-edge and the
# demo's app all build static and trimmed, so they share the compiled
# standard library and the packages they have in common.
mkdir -p .bin
start=$SECONDS
(
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o .bin/gantry ./cmd/gantry
  echo "demo: gantry built in $((SECONDS - start))s" >&2
) &
gantry_pid=$!
if ! ./scripts/tools.sh demo; then
  kill "$gantry_pid" 2>/dev/null || true
  wait "$gantry_pid" 2>/dev/null || true
  die "installing the demo's tools failed (see above)"
fi
wait "$gantry_pid" || die "building gantry failed (see above)"
echo "demo: gantry and its tools ready in $((SECONDS - start))s" >&2

# The demo's own docker compose, when tools.sh built one, runs by path.
if [[ -z ${GANTRY_DOCKER_COMPOSE:-} && -x .bin/docker-compose ]]; then
  export GANTRY_DOCKER_COMPOSE="$PWD/.bin/docker-compose"
fi
exec .bin/gantry demo "$@"
