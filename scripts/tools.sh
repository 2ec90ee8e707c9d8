#!/usr/bin/env bash
# Installs the pinned tools gantry's tests (group "test", the default), its
# benchmarks ("bench") and its demo ("demo") run against into .bin/ of the
# checkout. Each tool is built once per version into a cache outside the
# checkout (GANTRY_TOOLS_CACHE, default ~/.cache/gantry-tools), so a fresh
# clone reuses it; .bin/<name> links to the cached binary. Idempotent.
# Debian packages are installed only when running as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.bin"
CACHE="${GANTRY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gantry-tools}"
PLATFORM="$(uname -s)-$(uname -m)"
mkdir -p "$BIN" "$CACHE"

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
# COMPOSE_MIN is the oldest docker compose gantry takes as it is (a chosen
# floor: gantry is tested with COMPOSE_VERSION).
COMPOSE_MIN=2.20.0
GO_TOOLS_BENCH=(
  "crane       github.com/google/go-containerregistry/cmd/crane      v0.22.1"
  "regctl      github.com/regclient/regclient/cmd/regctl             v0.11.7"
)
# iproute2 and util-linux (nsenter): the Swarm tests' stand-in for the routing
# mesh; chromium: the loadtest report's tests open report.html in a real
# headless browser (testenv.Chromium); unzip, curl, git: scripts/install.sh's
# tests (zip archives, downloads, builds from source).
APT_TEST=(openssh-server iproute2 util-linux chromium unzip curl git)
APT_BENCH=(skopeo jq) # jq: bench/summarize's ad-hoc peer

say() { echo "tools: $*" >&2; }

# cached prints the cache path of tool name built as want (package@version
# and build env, or a source hash): one directory per version and key.
cached() {
  local name=$1 ver=$2 want=$3
  echo "$CACHE/$name/$ver-$(printf '%s %s' "$want" "$PLATFORM" | sha256sum | cut -c1-12)/$name"
}

# link points .bin/<name> at target unless it already does.
link() {
  [[ "$(readlink "$BIN/$1" 2>/dev/null)" == "$2" ]] || ln -sfn "$2" "$BIN/$1"
}

# adopt moves a binary a previous tools.sh built into .bin/ (stamped with the
# same want) into the cache instead of building it again; it succeeds only
# then.
adopt() {
  local name=$1 want=$2 dest=$3
  [[ -f "$BIN/$name" && ! -L "$BIN/$name" && -x "$BIN/$name" && "$(cat "$BIN/.$name.version" 2>/dev/null)" == "$want" ]] || return 1
  mkdir -p "$(dirname "$dest")"
  cp "$BIN/$name" "$dest.tmp$$" && mv -f "$dest.tmp$$" "$dest"
  rm -f "$BIN/.$name.version"
  say "$name: moved the one .bin/ had into $dest"
}

install_go() {
  local name=$1 pkg=$2 ver=$3 env=() goflags=-buildvcs=false kv
  local want="$pkg@$ver${4:+ ${*:4}}" dest
  dest=$(cached "$name" "$ver" "$want")
  if [[ ! -x "$dest" ]] && ! adopt "$name" "$want" "$dest"; then
    for kv in "${@:4}"; do # GOFLAGS=... adds to -buildvcs=false
      if [[ $kv == GOFLAGS=* ]]; then goflags+=" ${kv#GOFLAGS=}"; else env+=("$kv"); fi
    done
    say "${*:4}${4:+ }go install $pkg@$ver (into $dest)"
    local start=$SECONDS tmp
    tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
    env "${env[@]}" GOBIN="$tmp" GOFLAGS="$goflags" go install "$pkg@$ver"
    mkdir -p "$(dirname "$dest")"
    mv -f "$tmp/$name" "$dest" # atomic: a concurrent run sees all or nothing
    rm -rf "$tmp"
    say "$name built in $((SECONDS - start))s"
  fi
  link "$name" "$dest"
}

# install_module builds the main package at the root of module@version from
# the module cache into the tools cache and links .bin/<name>.
install_module() {
  local name=$1 ver=$3 want="$2@$3" dest dir
  dest=$(cached "$name" "$ver" "$want")
  if [[ ! -x "$dest" ]] && ! adopt "$name" "$want" "$dest"; then
    say "go build $want (into $dest)"
    local start=$SECONDS tmp
    dir=$(go mod download -json "$want" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n "$dir" ]] || { say "go mod download $want gave no directory; check the Go proxy (GOPROXY) is reachable"; return 1; }
    tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
    (cd "$dir" && GOFLAGS=-buildvcs=false go build -trimpath -o "$tmp/$name" .)
    mkdir -p "$(dirname "$dest")"
    mv -f "$tmp/$name" "$dest" # atomic: a concurrent run sees all or nothing
    rm -rf "$tmp"
    say "$name built in $((SECONDS - start))s"
  fi
  link "$name" "$dest"
}

# compose_version prints the x.y.z that "docker compose" (or the command in
# its arguments) reports, or nothing when it does not run.
compose_version() {
  local v cmd=(docker compose)
  (($#)) && cmd=("$@")
  v=$("${cmd[@]}" version --short 2>/dev/null) || return 0
  v=${v#v}
  [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] && echo "${BASH_REMATCH[0]}"
  return 0
}

# compose_ok succeeds when version $1 is a docker compose v2 at least
# COMPOSE_MIN.
compose_ok() {
  [[ -n $1 && ${1%%.*} == 2 ]] && [[ "$(printf '%s\n%s\n' "$COMPOSE_MIN" "$1" | sort -V | head -n1)" == "$COMPOSE_MIN" ]]
}

# build_compose builds docker compose from a copy of its module (the module
# cache is read-only) into the tools cache and links .bin/docker-compose.
build_compose() {
  local want="$COMPOSE_MODULE@$COMPOSE_VERSION" dest
  dest=$(cached docker-compose "$COMPOSE_VERSION" "$want")
  if [[ ! -x "$dest" ]] && ! adopt docker-compose "$want" "$dest"; then
    say "docker compose $COMPOSE_VERSION is not in $CACHE yet: building it (about 15 minutes on 2 cores from an empty Go cache, 1-2 with a warm one)"
    local start=$SECONDS dir
    dir=$(go mod download -json "$want" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n "$dir" ]] || { say "go mod download $want gave no directory; check the Go proxy (GOPROXY) is reachable"; return 1; }
    (
      tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
      trap 'rm -rf "$tmp"' EXIT
      cp -R "$dir/." "$tmp/src"
      chmod -R u+w "$tmp/src"
      cd "$tmp/src"
      GOFLAGS=-buildvcs=false go build -trimpath \
        -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
        -o "$tmp/docker-compose" ./cmd
      mkdir -p "$(dirname "$dest")"
      mv -f "$tmp/docker-compose" "$dest"
    )
    say "docker compose built in $((SECONDS - start))s"
  fi
  link docker-compose "$dest"
}

# plugin_install puts .bin/docker-compose as the Docker CLI plugin in dir,
# only when dir has no docker-compose or has one this script put there (its
# checksum is in dir/.docker-compose.gantry): never a user's own.
plugin_install() {
  local dir=$1 mark="$1/.docker-compose.gantry" sum what="none was there"
  sum=$(sha256sum <"$BIN/docker-compose" | cut -c1-64)
  if [[ -e "$dir/docker-compose" ]]; then
    [[ -f $mark && "$(sha256sum <"$dir/docker-compose" | cut -c1-64)" == "$(cat "$mark")" ]] || return 0
    [[ "$(cat "$mark")" != "$sum" ]] || return 0
    what="replacing the one an earlier tools.sh put there"
  fi
  mkdir -p "$dir"
  install -m 0755 "$BIN/docker-compose" "$dir/docker-compose.tmp$$"
  mv -f "$dir/docker-compose.tmp$$" "$dir/docker-compose"
  echo "$sum" >"$mark"
  say "installed docker compose $COMPOSE_VERSION as the Docker CLI plugin $dir/docker-compose ($what)"
}

# install_compose gives the tests docker compose: the pinned build as
# .bin/docker-compose, and "docker compose" through the CLI plugin. A plugin
# already there is kept (an older one is reported, never replaced); as root
# the system-wide plugin dir gets a copy when it has none, so that every
# user (the tests' SSH deploy user among them) has "docker compose".
install_compose() {
  build_compose
  if [[ $(id -u) -eq 0 ]]; then
    local d found=""
    for d in /usr/local/lib /usr/local/libexec /usr/lib /usr/libexec; do
      [[ -e "$d/docker/cli-plugins/docker-compose" ]] && found="$d/docker/cli-plugins"
    done
    plugin_install "${found:-/usr/local/lib/docker/cli-plugins}"
  fi
  local v
  v=$(compose_version)
  if [[ -z $v ]]; then
    plugin_install "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
    v=$(compose_version)
  fi
  if ! compose_ok "$v"; then
    say "\"docker compose\" reports ${v:-nothing} (gantry needs v2 >= $COMPOSE_MIN); not replacing your plugin: tests that deploy will fail until you replace it (e.g. with $BIN/docker-compose)"
  fi
}

# demo_compose makes sure the demo has docker compose v2: the one
# GANTRY_DOCKER_COMPOSE or "docker compose" runs when it is recent enough,
# else the pinned build as .bin/docker-compose, which scripts/demo.sh hands
# to gantry by path. Nothing is installed as a Docker plugin.
demo_compose() {
  local v
  if [[ -n ${GANTRY_DOCKER_COMPOSE:-} ]]; then
    v=$(compose_version "$GANTRY_DOCKER_COMPOSE")
    compose_ok "$v" && return 0
    say "GANTRY_DOCKER_COMPOSE=$GANTRY_DOCKER_COMPOSE reports ${v:-nothing}, not docker compose v2 >= $COMPOSE_MIN; unset it or point it at one"
    return 1
  fi
  v=$(compose_version)
  compose_ok "$v" && return 0
  if [[ -n $v ]]; then
    say "\"docker compose\" here is $v; the demo needs v2 >= $COMPOSE_MIN and uses its own copy by path (your plugin stays as it is)"
  else
    say "\"docker compose\" (v2) is not installed; the demo uses its own copy by path and installs no Docker plugin"
  fi
  build_compose
}

# install_edge builds edge/cmd/gantry-edge, static and stripped (it goes into
# FROM-scratch images), once per hash of the edge module's sources.
install_edge() {
  local want dest
  want=$(cd "$ROOT/edge" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
  dest=$(cached gantry-edge src "$want")
  if [[ ! -x "$dest" ]] && ! adopt gantry-edge "$want" "$dest"; then
    local start=$SECONDS tmp
    say "go build gantry-edge (Caddy + gantry's upstreams module; 2-5 minutes on 2 cores from an empty Go cache)"
    tmp=$(mktemp -d "$CACHE/.build.XXXXXX")
    (cd "$ROOT/edge" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$tmp/gantry-edge" ./cmd/gantry-edge)
    mkdir -p "$(dirname "$dest")"
    mv -f "$tmp/gantry-edge" "$dest"
    rm -rf "$tmp"
    say "gantry-edge built in $((SECONDS - start))s"
  fi
  link gantry-edge "$dest"
  link caddy gantry-edge
  echo "$want" >"$BIN/.gantry-edge.version" # the sources' hash, for reports
}

install_apt() {
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then return 0; fi
  if [[ $(id -u) -ne 0 ]]; then
    say "not root; install these Debian packages yourself: ${missing[*]}"
    return 0
  fi
  say "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

groups=("$@")
((${#groups[@]})) || groups=(test)
for g in "${groups[@]}"; do
  case "$g" in
    test | bench | demo) ;;
    *) say "unknown group $g (want test, bench or demo)"; exit 1 ;;
  esac
done
for g in "${groups[@]}"; do
  case "$g" in
    test)
      for t in "${GO_TOOLS_TEST[@]}"; do install_go $t; done
      for t in "${GO_MODULES_TEST[@]}"; do install_module $t; done
      install_edge
      install_compose
      install_apt "${APT_TEST[@]}"
      ;;
    bench)
      for t in "${GO_TOOLS_TEST[@]}" "${GO_TOOLS_BENCH[@]}"; do install_go $t; done
      for t in "${GO_MODULES_TEST[@]}"; do install_module $t; done
      install_edge
      install_compose
      install_apt "${APT_BENCH[@]}"
      ;;
    demo)
      demo_compose
      install_edge
      ;;
  esac
done
exit 0
