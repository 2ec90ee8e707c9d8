#!/usr/bin/env bash
# Installs the pinned tools gantry's tests (and, with "bench", its benchmarks)
# run against into .bin/ of the checkout. Idempotent: a tool already built at
# its pinned version is not rebuilt. Debian packages are installed only when
# running as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.bin"
mkdir -p "$BIN"

# name  package                                                version  [build env]
GO_TOOLS_TEST=(
  "registry    github.com/distribution/distribution/v3/cmd/registry  v3.1.2"
  "staticcheck honnef.co/go/tools/cmd/staticcheck                    v0.8.2"
  "act         github.com/nektos/act                                 v0.2.89"
  "actionlint  github.com/rhysd/actionlint/cmd/actionlint            v1.7.12"
)
# k6: 2.x is loadtest's default k6-version, 1.x still works; the loadtest
# tests run against both. go install refuses go.k6.io/k6/v2 here (the module
# proxy lists no version of it, so the deprecation check fails), and both
# majors' binaries are named k6: install_module builds each from the proxy's
# copy of its module under its own name.
# name   module           version
GO_MODULES_TEST=(
  "k6      go.k6.io/k6/v2   v2.2.0"
  "k6-v1   go.k6.io/k6      v1.8.1"
)
# The edge proxy is gantry-edge (edge/): Caddy v2.11.9 with gantry's
# reload-free upstreams module, built from this checkout by install_edge and
# also installed as .bin/caddy (it is a complete Caddy).
# docker compose v2 is not packaged in Debian and its go.mod has exclude
# directives, which go install refuses: install_compose builds it by hand.
COMPOSE_MODULE=github.com/docker/compose/v2
COMPOSE_VERSION=v2.40.3
GO_TOOLS_BENCH=(
  "crane       github.com/google/go-containerregistry/cmd/crane      v0.22.1"
  "regctl      github.com/regclient/regclient/cmd/regctl             v0.11.7"
)
# iproute2 and util-linux (nsenter): the Swarm tests' stand-in for the routing
# mesh; chromium: the loadtest report's tests open report.html in a real
# headless browser (testenv.Chromium).
APT_TEST=(openssh-server iproute2 util-linux chromium)
APT_BENCH=(skopeo jq) # jq: bench/summarize's ad-hoc peer

install_go() {
  local name=$1 pkg=$2 ver=$3 env=() goflags=-buildvcs=false kv
  local stamp="$BIN/.$name.version" want="$pkg@$ver${4:+ ${*:4}}"
  if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  for kv in "${@:4}"; do # GOFLAGS=... adds to -buildvcs=false
    if [[ $kv == GOFLAGS=* ]]; then goflags+=" ${kv#GOFLAGS=}"; else env+=("$kv"); fi
  done
  echo "tools: ${*:4}${4:+ }go install $pkg@$ver" >&2
  local start=$SECONDS
  env "${env[@]}" GOBIN="$BIN" GOFLAGS="$goflags" go install "$pkg@$ver"
  echo "$want" >"$stamp"
  echo "tools: $name built in $((SECONDS - start))s" >&2
}

# install_module builds the main package at the root of module@version from
# the module cache into .bin/<name>.
install_module() {
  local name=$1 want="$2@$3" dir
  local stamp="$BIN/.$name.version"
  if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  echo "tools: go build $want into .bin/$name" >&2
  local start=$SECONDS
  dir=$(go mod download -json "$want" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$dir" ]] || { echo "tools: go mod download $want gave no directory" >&2; return 1; }
  (cd "$dir" && GOFLAGS=-buildvcs=false go build -trimpath -o "$BIN/.$name.new" .)
  mv "$BIN/.$name.new" "$BIN/$name"
  echo "$want" >"$stamp"
  echo "tools: $name built in $((SECONDS - start))s" >&2
}

# install_compose builds docker compose from a copy of its module (the module
# cache is read-only) and installs it as .bin/docker-compose and as the Docker
# CLI plugin, so "docker compose" works.
install_compose() {
  local stamp="$BIN/.docker-compose.version" want="$COMPOSE_MODULE@$COMPOSE_VERSION"
  local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  # As root, also the system-wide plugin dir, so that every user (the tests'
  # SSH deploy user among them) has "docker compose".
  local system=""
  [[ $(id -u) -eq 0 ]] && system=/usr/local/lib/docker/cli-plugins
  if [[ -x "$BIN/docker-compose" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] &&
    cmp -s "$BIN/docker-compose" "$plugins/docker-compose" &&
    { [[ -z "$system" ]] || cmp -s "$BIN/docker-compose" "$system/docker-compose"; }; then
    return 0
  fi
  local start=$SECONDS
  if [[ ! -x "$BIN/docker-compose" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "tools: go build $want" >&2
    local dir
    dir=$(go mod download -json "$want" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n "$dir" ]] || { echo "tools: go mod download $want gave no directory" >&2; return 1; }
    (
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      cp -R "$dir/." "$tmp/"
      chmod -R u+w "$tmp"
      cd "$tmp"
      GOFLAGS=-buildvcs=false go build -trimpath \
        -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
        -o "$BIN/docker-compose" ./cmd
    )
    echo "$want" >"$stamp"
  fi
  mkdir -p "$plugins"
  install -m 0755 "$BIN/docker-compose" "$plugins/docker-compose"
  if [[ -n "$system" ]]; then
    mkdir -p "$system"
    install -m 0755 "$BIN/docker-compose" "$system/docker-compose"
  fi
  echo "tools: docker-compose installed in $((SECONDS - start))s (also $plugins/docker-compose)" >&2
}

# install_edge builds edge/cmd/gantry-edge, static and stripped (it goes into
# FROM-scratch images), whenever the edge module's sources changed.
install_edge() {
  local stamp="$BIN/.gantry-edge.version" want
  want=$(cd "$ROOT/edge" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
  if [[ -x "$BIN/gantry-edge" && "$(cat "$stamp" 2>/dev/null)" == "$want" && -e "$BIN/caddy" ]]; then
    return 0
  fi
  local start=$SECONDS
  echo "tools: go build gantry-edge (Caddy + gantry's upstreams module)" >&2
  (cd "$ROOT/edge" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$BIN/gantry-edge" ./cmd/gantry-edge)
  ln -sf gantry-edge "$BIN/caddy"
  echo "$want" >"$stamp"
  echo "tools: gantry-edge built in $((SECONDS - start))s" >&2
}

install_apt() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then return 0; fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "tools: not root; install these Debian packages yourself: ${missing[*]}" >&2
    return 0
  fi
  echo "tools: apt-get install ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

groups=("$@")
((${#groups[@]})) || groups=(test)
for g in "${groups[@]}"; do
  case "$g" in
    test)
      for t in "${GO_TOOLS_TEST[@]}"; do install_go $t; done
      for t in "${GO_MODULES_TEST[@]}"; do install_module $t; done
      install_edge
      install_compose
      if ((${#APT_TEST[@]})); then install_apt "${APT_TEST[@]}"; fi
      ;;
    bench)
      for t in "${GO_TOOLS_TEST[@]}" "${GO_TOOLS_BENCH[@]}"; do install_go $t; done
      for t in "${GO_MODULES_TEST[@]}"; do install_module $t; done
      install_edge
      install_compose
      install_apt "${APT_BENCH[@]}"
      ;;
    *) echo "tools: unknown group $g (want test or bench)" >&2; exit 1 ;;
  esac
done
exit 0
