#!/usr/bin/env bash
# Installs the pinned tools gantry's tests (and, with "bench", its benchmarks)
# run against into .bin/ of the checkout. Idempotent: a tool already built at
# its pinned version is not rebuilt. Debian packages are installed only when
# running as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.bin"
mkdir -p "$BIN"

# name  package                                                version
GO_TOOLS_TEST=(
  "registry    github.com/distribution/distribution/v3/cmd/registry  v3.1.2"
  "staticcheck honnef.co/go/tools/cmd/staticcheck                    v0.8.2"
  "act         github.com/nektos/act                                 v0.2.89"
  "actionlint  github.com/rhysd/actionlint/cmd/actionlint            v1.7.12"
)
GO_TOOLS_BENCH=(
  "crane       github.com/google/go-containerregistry/cmd/crane      v0.22.1"
  "regctl      github.com/regclient/regclient/cmd/regctl             v0.11.7"
)
APT_TEST=()
APT_BENCH=(skopeo)

install_go() {
  local name=$1 pkg=$2 ver=$3
  local stamp="$BIN/.$name.version"
  if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$pkg@$ver" ]]; then
    return 0
  fi
  echo "tools: go install $pkg@$ver" >&2
  GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "$pkg@$ver"
  echo "$pkg@$ver" >"$stamp"
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
      if ((${#APT_TEST[@]})); then install_apt "${APT_TEST[@]}"; fi
      ;;
    bench)
      for t in "${GO_TOOLS_TEST[@]}" "${GO_TOOLS_BENCH[@]}"; do install_go $t; done
      install_apt "${APT_BENCH[@]}"
      ;;
    *) echo "tools: unknown group $g (want test or bench)" >&2; exit 1 ;;
  esac
done
exit 0
