#!/usr/bin/env bash
# bench/demo-cold: how long ./scripts/demo.sh takes on a machine that has
# Docker and docker compose v2 but has never built gantry: a fresh clone of
# this checkout's HEAD, with an empty Go module cache, build cache and tools
# cache (private temporary ones: the user's own caches are never touched).
# It runs the demo cold, then again warm, and times where the time goes;
# the result is appended to BENCHMARKS.md.
#
#   bench/demo-cold/run.sh            # from the repository root
#   GANTRY_DOCKER_COMPOSE=/path/to/docker-compose bench/demo-cold/run.sh
#
# docker compose v2 must already be there (the "docker compose" plugin or
# GANTRY_DOCKER_COMPOSE): building it is the one-time ~15 minutes this
# benchmark leaves out, as a user who has Docker Desktop or the
# docker-compose-plugin package never pays it.
set -euo pipefail
# minus A B prints A - B; since T0 prints the seconds since the date +%s.%N T0.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
since() { minus "$(date +%s.%N)" "$1"; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

compose=(docker compose)
[[ -n ${GANTRY_DOCKER_COMPOSE:-} ]] && compose=("$GANTRY_DOCKER_COMPOSE")
compose_version=$("${compose[@]}" version --short 2>/dev/null) || {
  echo "demo-cold: docker compose v2 is needed (the docker compose plugin, or GANTRY_DOCKER_COMPOSE=/path/to/docker-compose): scripts/tools.sh test builds one" >&2
  exit 1
}
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || {
  echo "demo-cold: the Docker engine is not reachable; start it and run again" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/gantry-demo-cold.XXXXXX")
cleanup() {
  chmod -R u+w "$work" 2>/dev/null || true # the module cache is read-only
  rm -rf "$work"
}
trap cleanup EXIT
export GOMODCACHE="$work/gomodcache" GOCACHE="$work/gocache" GANTRY_TOOLS_CACHE="$work/tools"
export GOFLAGS=-buildvcs=false

git clone -q --no-hardlinks "$ROOT" "$work/src"
commit=$(git -C "$work/src" rev-parse --short HEAD)
load_before=$(uptime | sed 's/.*load average: //')

# stamp prefixes every line with the seconds since $t0.
stamp() {
  local line
  while IFS= read -r line; do
    printf '%6.1f %s\n' "$(since "$t0")" "$line"
  done
}

echo "== downloads only (what go build fetches for gantry and gantry-edge, in parallel; a separate empty module cache)" >&2
t0=$(date +%s.%N)
(
  export GOMODCACHE="$work/dl-modcache"
  (cd "$work/src" && go list -deps ./cmd/gantry >/dev/null) &
  (cd "$work/src/edge" && go list -deps ./cmd/gantry-edge >/dev/null) &
  wait
)
download_s=$(since "$t0")
download_mb=$(du -sm "$work/dl-modcache/cache/download" | cut -f1)
chmod -R u+w "$work/dl-modcache" && rm -rf "$work/dl-modcache"

echo "== cold ./scripts/demo.sh" >&2
t0=$(date +%s.%N)
(cd "$work/src" && TIMEFORMAT="cpu %U %S" && time ./scripts/demo.sh --summary-dir "$work/summary" </dev/null 2>&1) 2>&1 | stamp | tee "$work/cold.log" >&2
cold_s=$(since "$t0")
load_mid=$(uptime | sed 's/.*load average: //')

echo "== warm ./scripts/demo.sh (same caches)" >&2
t0=$(date +%s.%N)
(cd "$work/src" && TIMEFORMAT="cpu %U %S" && time ./scripts/demo.sh --summary-dir "$work/summary" </dev/null 2>&1) 2>&1 | stamp | tee "$work/warm.log" >&2
warm_s=$(since "$t0")
load_after=$(uptime | sed 's/.*load average: //')

# at LOG PATTERN prints the time of the first line matching PATTERN.
at() { grep -m1 -E "$2" "$1" | awk '{print $1}'; }
# secs LOG PATTERN prints the N of "... in Ns" on the first matching line.
secs() { grep -m1 -E "$2" "$1" | sed -E 's/.* in ([0-9]+)s.*/\1/'; }
row() { # LOG: gantry build, edge build, setup, app build, demo run
  local log=$1 ready reg v1
  ready=$(at "$log" 'demo: gantry and its tools ready')
  reg=$(at "$log" 'embedded registry on')
  v1=$(at "$log" 'build-push v1 of examples/app')
  printf '%s | %s | %s | %s | %s' "$(secs "$log" 'demo: gantry built in')" "$(secs "$log" 'gantry-edge built in' || true)" \
    "$ready" "$(minus "$v1" "$reg")" "$(minus "$(tail -n1 "$log" | awk '{print $1}')" "$ready")"
}
# cpu LOG prints the CPU seconds (user + system) the run's processes used.
cpu() { grep -m1 -E '^ *[0-9.]+ cpu ' "$1" | awk '{printf "%.0f", $3 + $4}'; }
cold_row=$(row "$work/cold.log")
warm_row=$(row "$work/warm.log")
failed=$(grep -m1 -oE 'failed-requests=[0-9]+' "$work/cold.log" || echo "failed-requests=?")

mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
report=$(
  cat <<EOF

## demo-cold: ./scripts/demo.sh from a fresh clone with empty Go and tools caches ($(date -u '+%Y-%m-%d %H:%M UTC'))

Reproduce: \`bench/demo-cold/run.sh\` (from the repository root; needs Docker and docker compose v2).

- Machine: $(nproc) CPUs ($cpu), $mem memory, Linux $(uname -r), $(go version | cut -d' ' -f3-). Shared and noisy: load average (1, 5, 15 min) $load_before before, $load_mid after the cold run, $load_after at the end.
- Versions: gantry $commit (fresh clone), Docker engine $(docker version --format '{{.Server.Version}}'), docker compose $compose_version ($([[ -n ${GANTRY_DOCKER_COMPOSE:-} ]] && echo "GANTRY_DOCKER_COMPOSE" || echo "CLI plugin")), gantry-edge (Caddy v2.11.9) built from the clone.
- Cold: empty GOMODCACHE, GOCACHE and GANTRY_TOOLS_CACHE (private temporary directories). Warm: the same command again.
- Downloads alone (\`go list -deps\` of both binaries in parallel, another empty module cache): ${download_s}s, ${download_mb} MB of module zips and go.mod files.

| Run | Total (s) | CPU used (s) | gantry build (s) | gantry-edge build (s) | Setup until both are ready (s) | examples/app build in the demo (s) | Demo after setup (s) |
|---|--:|--:|--:|--:|--:|--:|--:|
| cold | $cold_s | $(cpu "$work/cold.log") | $cold_row |
| warm | $warm_s | $(cpu "$work/warm.log") | $warm_row |

CPU used is user + system time of every process of the run (compilers, linkers, gantry, the demo's containers excluded): on a machine this busy the wall times stretch, but a cold run needs at least CPU used / $(nproc) seconds plus what the downloads wait. gantry and gantry-edge build in parallel, so the setup is about the longer of the two, and each includes its module downloads; the demo itself builds examples/app twice (static, trimmed) and deploys v1, v2 blue-green under load, and rolls back (cold run: $failed).
EOF
)
echo "$report"
echo "$report" >>"$ROOT/BENCHMARKS.md"
echo "demo-cold: appended to BENCHMARKS.md" >&2
