#!/usr/bin/env bash
# bench/setup-overhead: what putting gantry on a runner costs a job, under
# act in host mode: a job of one bare `run: true` step against a job that
# runs the setup action (`uses: gantry-dev/gantry@v1`, resolved to a copy of
# this checkout) and then `gantry version`, with the runner's tool cache warm
# (the release already there: re-hashed, not downloaded), cold (an empty
# tool cache: downloaded from a local release server that serves this
# checkout's build as GitHub serves release assets, and checked against its
# checksums.txt) and with no release (the server answers 404: built from the
# action's source, Go module cache warm, Go build cache empty, as on a fresh
# runner with setup-go's module cache). Rounds interleave the kinds; the
# table shows medians and appends to BENCHMARKS.md.
#
#   bench/setup-overhead/run.sh [ROUNDS]      # from the repository root; default 5
#
# Needs act (ACT, default .bin/act: scripts/tools.sh test builds it), go,
# git and python3 (the release server). Nothing leaves loopback.
set -euo pipefail
# minus A B prints A - B; since T0 prints the seconds since the date +%s.%N T0.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
since() { minus "$(date +%s.%N)" "$1"; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
rounds=${1:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "setup-overhead: ROUNDS must be a positive number, not $rounds" >&2; exit 1; }
ACT=${ACT:-$ROOT/.bin/act}
[[ -x $ACT ]] || { echo "setup-overhead: no act at $ACT; run scripts/tools.sh test (or set ACT=/path/to/act)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup-overhead: python3 is needed for the local release server; apt-get install python3" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gantry-setup-overhead.XXXXXX")
server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
load_before=$(uptime | sed 's/.*load average: //')

# The action: this checkout's HEAD, as a runner would fetch gantry-dev/gantry@v1.
git clone -q --no-hardlinks "$ROOT" "$work/gantry"
commit=$(git -C "$work/gantry" rev-parse --short HEAD)

# The release: built as goreleaser does (static, trimmed, stamped), packed
# as the archive install.sh expects, with checksums.txt.
arch=$(go env GOARCH)
asset="gantry_linux_${arch}.tar.gz"
mkdir -p "$work/release"
(cd "$work/gantry" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
  -ldflags "-s -w -X github.com/gantry-dev/gantry/internal/version.Version=v1" -o "$work/release/gantry" ./cmd/gantry)
tar -C "$work/release" -czf "$work/release/$asset" gantry
(cd "$work/release" && sha256sum "$asset" >checksums.txt)
release_bytes=$(stat -c %s "$work/release/$asset")

# The release server: /<owner>/<repo>/releases/download/<tag>/<asset> for any
# tag, as GitHub answers it; with GONE set, 404 for everything.
cat >"$work/serve.py" <<'EOF'
import http.server, os, sys
root = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        path = os.path.join(root, name)
        if "/releases/download/" not in self.path or not os.path.isfile(os.path.join(root, "on")) or name not in ("checksums.txt", os.environ["ASSET"]):
            self.send_error(404)
            return
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
touch "$work/release/on"
ASSET=$asset python3 "$work/serve.py" "$work/release" >"$work/port" &
server_pid=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
base="http://127.0.0.1:$(head -n1 "$work/port")"

# act fetches every uses: of a composite action, even a skipped one: the
# setup action's actions/setup-go (used only without Go) gets a no-op
# stand-in so that nothing reaches github.com.
mkdir -p "$work/setup-go"
printf 'name: setup-go stand-in\ninputs:\n  go-version-file: {required: false}\n  cache-dependency-path: {required: false}\nruns:\n  using: composite\n  steps:\n    - run: "true"\n      shell: bash\n' >"$work/setup-go/action.yml"
setup_go=$(grep -ho 'actions/setup-go@[0-9a-f]*' "$work/gantry/action.yml" | head -n1)

# The consumer repository.
mkdir -p "$work/repo/.github/workflows"
cat >"$work/repo/.github/workflows/overhead.yml" <<'EOF'
name: overhead
on: push
jobs:
  bare:
    runs-on: ubuntu-latest
    steps:
      - run: "true"
  setup:
    runs-on: ubuntu-latest
    steps:
      - uses: gantry-dev/gantry@v1
      - run: gantry version
EOF
echo '-P ubuntu-latest=-self-hosted' >"$work/repo/.actrc"
git -C "$work/repo" init -q
git -C "$work/repo" add -A
git -C "$work/repo" -c user.email=b@example.com -c user.name=b commit -qm overhead

# job KIND TOOLCACHE prints the seconds one act run of the job took.
job() {
  local kind=$1 cache=$2 name=setup t0 log="$work/act-$1.log"
  [[ $kind == bare ]] && name=bare
  local extra=()
  [[ $kind == source ]] && extra+=(--env "GOCACHE=$work/gocache-source")
  t0=$(date +%s.%N)
  # act's host mode keeps the runner's tool cache in $XDG_CACHE_HOME/act
  # (RUNNER_TOOL_CACHE given with --env does not reach it).
  if ! (cd "$work/repo" && XDG_CACHE_HOME="$cache" "$ACT" push -j "$name" \
    --local-repository "gantry-dev/gantry@v1=$work/gantry" \
    --local-repository "$setup_go=$work/setup-go" \
    --env "GANTRY_RELEASE_BASE_URL=$base" --env GOFLAGS=-buildvcs=false \
    ${extra[@]+"${extra[@]}"} >"$log" 2>&1); then
    echo "setup-overhead: the $kind job failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  local took
  took=$(since "$t0")
  grep -q 'Job succeeded' "$log" || { echo "setup-overhead: the $kind job did not report success:" >&2; tail -n 30 "$log" >&2; exit 1; }
  case $kind in
    cold) grep -q 'gantry install: installed gantry' "$log" ;;
    warm) grep -q 'gantry install: cache hit' "$log" ;;
    *) true ;;
  esac || { echo "setup-overhead: the $kind job did not install as a $kind one:" >&2; grep 'gantry install' "$log" >&2; exit 1; }
  if [[ $kind != bare ]]; then # act's own timing of the steps
    steps[$kind.install]+="$(step "$log" 'Main bash "$GITHUB_ACTION_PATH/scripts/install.sh" --add-path') "
    steps[$kind.action]+="$(step "$log" 'Main gantry-dev/gantry@v1') "
    steps[$kind.post]+="$(step "$log" 'Post gantry-dev/gantry@v1') "
    steps[$kind.version]+="$(step "$log" 'Main gantry version') "
  fi
  echo "$took" >"$work/took"
}

# step LOG NAME prints the seconds act reports for the step NAME in LOG.
step() {
  grep -F "Success - $2 [" "$1" | head -n1 | sed -E 's/.*\[([^]]*)\]$/\1/' | awk '{
    d = $0
    if (d ~ /ms$/) { sub(/ms$/, "", d); s = d / 1000 }
    else { sub(/s$/, "", d); n = split(d, p, "m"); s = (n == 2) ? p[1] * 60 + p[2] : p[1] }
    printf "%.3f", s }'
}

# run KIND CACHE runs one job and adds its time to times[KIND].
run() {
  job "$@"
  times[$1]+="$(cat "$work/took") "
}

declare -A times steps
warm_cache="$work/cache-warm"
job cold "$warm_cache" # fills the warm cache
grep -q 'gantry v1' "$work/act-cold.log" || { echo "setup-overhead: the setup job did not run the released gantry:" >&2; tail -n 30 "$work/act-cold.log" >&2; exit 1; }
steps=()
for r in $(seq "$rounds"); do
  run bare "$warm_cache"
  run warm "$warm_cache"
  run cold "$work/cache-cold-$r"
  echo "setup-overhead: round $r of $rounds done" >&2
done
rm -f "$work/release/on" # no release: install.sh builds from source
run source "$work/cache-source"
grep -qi 'build' "$work/act-source.log" || { echo "setup-overhead: the no-release job did not build from source:" >&2; tail -n 30 "$work/act-source.log" >&2; exit 1; }
load_after=$(uptime | sed 's/.*load average: //')

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
b=$(median <<<"${times[bare]}")
row() { # KIND LABEL
  local m s="" k
  m=$(median <<<"${times[$1]}")
  for k in install action version post; do
    if [[ -n ${steps[$1.$k]:-} ]]; then s+=" $(median <<<"${steps[$1.$k]}") |"; else s+=" |"; fi
  done
  printf '| %s | %s | %s | %.2f |%s %s |\n' "$2" "$(wc -w <<<"${times[$1]}")" "$m" "$(minus "$m" "$b")" "$s" "$(tr ' ' '\n' | grep . | xargs printf '%.1f ' <<<"${times[$1]}")"
}
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
report=$(
  cat <<EOF

## setup-overhead: the setup action under act, against a bare step ($(date -u '+%Y-%m-%d %H:%M UTC'))

Reproduce: \`bench/setup-overhead/run.sh $rounds\` (from the repository root; act from \`scripts/tools.sh test\`).

- Machine: $(nproc) CPUs ($cpu), $mem memory, Linux $(uname -r), $(go version | cut -d' ' -f3-). Shared and noisy: load average (1, 5, 15 min) $load_before before, $load_after after.
- Versions: gantry $commit (the action and the release, built from it: $release_bytes bytes archived), $("$ACT" --version), host mode (\`-P ubuntu-latest=-self-hosted\`).
- Each row is one \`act push -j JOB\` from start to exit, medians over the rounds (interleaved); act's own start is in every row, so the difference to the bare job is what the setup costs a job. The step columns are act's own timings (medians): install.sh is the part gantry controls; the rest of the whole setup action and its post step are act running a composite action (its skipped setup-go and build steps, copying the action), which GitHub's runner does in its own way.
- warm: \`uses: gantry-dev/gantry@v1\` + \`run: gantry version\` with the release already in the tool cache (re-hashed against checksums.txt, not downloaded). cold: an empty tool cache (a fresh \`XDG_CACHE_HOME\`, where act keeps it), the release downloaded from a local server (loopback: no network time) and checked. no release: the server answers 404, so install.sh builds ./cmd/gantry from the action's source with a warm Go module cache and an empty build cache (one run).

| Job | Runs | Median (s) | Over the bare job (s) | install.sh step (s) | whole setup action (s) | \`gantry version\` step (s) | setup action's post step (s) | Every run (s) |
|---|--:|--:|--:|--:|--:|--:|--:|---|
$(row bare 'bare: `run: true`')
$(row warm 'setup, warm tool cache, + `gantry version`')
$(row cold 'setup, cold: download + checksum, + `gantry version`')
$(row source 'setup, no release: source build, + `gantry version`')
EOF
)
echo "$report"
echo "$report" >>"$ROOT/BENCHMARKS.md"
echo "setup-overhead: appended to BENCHMARKS.md" >&2
