#!/usr/bin/env bash
# Runs gantry's whole test suite on a fresh machine: installs the pinned test
# peers and linters, then gofmt, go vet, staticcheck and go test. Extra
# arguments go to go test (e.g. -run TestPush).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

./scripts/tools.sh test

echo "== gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.bin/*'))"
if [[ -n "$unformatted" ]]; then
  echo "gofmt: these files need gofmt -w:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
./.bin/staticcheck ./...
echo "== actionlint"
./.bin/actionlint -shellcheck= .github/workflows/*.yml examples/*/.github/workflows/*.yml
echo "== go test"
go test -count=1 -timeout 30m ./... "$@"
# Fuzz targets, one per parser of user input: PACKAGE TARGET. Their seed
# corpora (and testdata/fuzz) already ran in go test above; this stage
# mutates each for FUZZTIME (10s) in CI or with FUZZ=1.
fuzz_targets=(
  "./internal/verify FuzzParseChecks"
  "./internal/verify FuzzServedCommit"
  "./internal/action FuzzDurationInput"
  "./internal/action FuzzSplitList"
  "./internal/action FuzzOutputs"
  "./internal/action FuzzParseEnvLine"
  "./internal/composefile FuzzParseEnvFile"
  "./internal/cli FuzzReadDigestImages"
  "./internal/cli FuzzImageRef"
  "./internal/cli FuzzParseScale"
  "./internal/cli FuzzReadEnvFile"
  "./internal/loadtest FuzzParseThresholdFlag"
  "./internal/loadtest FuzzScanPoint"
  "./internal/deploy/ecs FuzzRenderTaskDefinition"
  "./internal/ssh FuzzCommand"
)
for f in $(grep -rlE '^func Fuzz' --include='*_test.go' internal); do
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | cut -d' ' -f2); do
    if [[ " ${fuzz_targets[*]} " != *" ./$(dirname "$f") $name "* ]]; then
      echo "fuzz: $name ($f) is not in fuzz_targets in scripts/test.sh"; exit 1
    fi
  done
done
if [[ "${CI:-}" == "true" || "${FUZZ:-}" == "1" ]]; then
  echo "== fuzz (${#fuzz_targets[@]} targets, ${FUZZTIME:-10s} each)"
  for t in "${fuzz_targets[@]}"; do
    read -r pkg target <<<"$t"
    echo "-- $target ($pkg)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-10s}" "$pkg"
  done
fi
echo "== edge module (gantry-edge)"
(cd edge && go vet ./... && ../.bin/staticcheck ./... && go test -count=1 -timeout 20m ./...)
