#!/usr/bin/env bash
# install.sh puts the gantry binary of the action's own version on a GitHub
# Actions runner. A release commit (what the tags v1, v1.2 and v1.2.3 point
# at) carries a VERSION file naming its exact release, vX.Y.Z: that immutable
# release's archive is downloaded, checked against the release's
# checksums.txt, its provenance attestation verified with
# `gh attestation verify` where gh and a token are at hand, and kept in the
# runner's tool cache with its archive, which every cache hit re-hashes
# against checksums.txt (a copy that fails is downloaded again). A checkout
# without VERSION (a branch, another commit, a local action) is built from
# the action's own source instead, and so is a release that cannot be
# downloaded (no route to github.com, DNS, timeout, HTTP 5xx or 404), with a
# warning that says why and how to mirror releases. A checksum mismatch or a
# failed attestation is never built around: it fails the step.
#
# Usage:
#   install.sh [--add-path]           resolve the binary; writes bin, version,
#                                     need-build and need-go to GITHUB_OUTPUT
#   install.sh --build [--add-path]   build ./cmd/gantry from the action's
#                                     checkout into the bin path planned above
#
# --add-path also appends the directory of the binary to GITHUB_PATH.
#
# Outputs: bin (absolute path of the gantry executable), version, need-build
# and need-go (true when no go on PATH is as new as go.mod asks). Releases
# are cached in $RUNNER_TOOL_CACHE/gantry/<version>-<sha256[:12]>/<arch>/;
# source builds go to $RUNNER_TEMP/gantry-src-build/.
#
# Releases are read from <base>/<owner>/<repo>/releases/download/<vX.Y.Z>/
# (checksums.txt and gantry_<os>_<arch>.tar.gz, .zip on Windows). A mirror
# keeps that layout; point the action's release-base-url input (or
# GANTRY_RELEASE_BASE_URL) at its base.
#
# Environment (all optional):
#   GANTRY_VERSION             explicit release to install (v1.2.3; 1.2.3 is
#                              accepted). It must be downloadable: when it is
#                              not, the step fails (it asked for a release
#                              binary, not a build of this action's source)
#   GANTRY_ACTION_REF          the action's ref (github.action_ref)
#   GANTRY_ACTION_REPOSITORY   the action's repository (github.action_repository)
#                              both are derived from the script's location under
#                              .../_actions/<owner>/<repo>/<ref>/ when empty
#   GANTRY_INPUT_RELEASE_BASE_URL  the action's release-base-url input; wins
#                              over GANTRY_RELEASE_BASE_URL
#   GANTRY_RELEASE_BASE_URL    where releases live (default https://github.com,
#                              also on GHES: gantry's releases are on github.com)
#   GANTRY_SRC_DIR             the gantry source tree to build (default: the
#                              repository this script belongs to)
#   GANTRY_INSTALL_CONNECT_TIMEOUT  seconds to connect to the release server (10)
#   GANTRY_INSTALL_MAX_TIME    seconds one download attempt may take (120); an
#                              attempt that moves no byte for 20 s is cut short
#   GANTRY_INSTALL_RETRIES     retries of a download after a timeout, a refused
#                              connection or HTTP 408/429/5xx (2)
#   GANTRY_VERIFY_ATTESTATION  auto (default): verify the archive's provenance
#                              with `gh attestation verify` when releases come
#                              from https://github.com, the runner belongs to
#                              github.com, gh has the attestation command and a
#                              token is set; otherwise log that only the sha256
#                              against checksums.txt was checked. always: verify
#                              also for a mirror, and fail when it cannot.
#                              never: check only the sha256
#   GH_TOKEN, GITHUB_TOKEN, GANTRY_GITHUB_TOKEN  token gh uses for the
#                              attestation (the first one set; the actions pass
#                              the job's token as GANTRY_GITHUB_TOKEN). It goes
#                              to gh in its environment, never on a command
#                              line; GITHUB_TOKEN is also sent as a bearer token
#                              to https://github.com downloads
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_OUTPUT,
#   GITHUB_PATH, GITHUB_SERVER_URL  as set by the runner; outside Actions the
#                              platform comes from uname and outputs are printed
#                              to stdout
set -euo pipefail

readonly module_path="github.com/gantry-dev/gantry"
readonly default_repository="gantry-dev/gantry"
readonly default_base_url="https://github.com"
readonly checksums_name="checksums.txt"
# The workflow whose attestations vouch for a release's archives.
readonly release_workflow=".github/workflows/release.yml"

log() { printf 'gantry install: %s\n' "$*"; }

# escape_data escapes a workflow command's message: %, CR and LF.
escape_data() {
	local s=$1
	s=${s//'%'/'%25'}
	s=${s//$'\r'/'%0D'}
	s=${s//$'\n'/'%0A'}
	printf '%s' "$s"
}

die() {
	if [[ "${GITHUB_ACTIONS:-}" == "true" ]]; then
		printf '::error title=gantry install::%s\n' "$(escape_data "$*")" >&2
	else
		printf 'gantry install: error: %s\n' "$*" >&2
	fi
	exit 1
}

warn() {
	if [[ "${GITHUB_ACTIONS:-}" == "true" ]]; then
		printf '::warning title=gantry install::%s\n' "$(escape_data "$*")"
	else
		printf 'gantry install: warning: %s\n' "$*"
	fi
}

# printable replaces control characters, so that a bad value quoted in an
# error stays on one line.
printable() { printf '%s' "$1" | LC_ALL=C tr -c '[:print:]' '?'; }

# unix_path turns a Windows path (C:\a\b) into the form git-bash works with
# (/c/a/b); elsewhere it returns its argument.
unix_path() {
	if [[ -n "$1" ]] && command -v cygpath >/dev/null 2>&1; then
		cygpath -u -- "$1"
	else
		printf '%s\n' "$1"
	fi
}

# native_path returns the form the runner and other shells read: C:/a/b on
# Windows, the path itself elsewhere.
native_path() {
	if command -v cygpath >/dev/null 2>&1; then
		cygpath -m -- "$1"
	else
		printf '%s\n' "$1"
	fi
}

# set_output writes name=value to GITHUB_OUTPUT (stdout outside Actions).
set_output() {
	local name=$1 value=$2
	case "$value" in
	*$'\n'* | *$'\r'*) die "refusing to write output $name: its value contains a line break" ;;
	esac
	if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
		printf '%s=%s\n' "$name" "$value" >>"$GITHUB_OUTPUT"
	else
		printf '%s=%s\n' "$name" "$value"
	fi
}

# add_to_path appends a directory to GITHUB_PATH, in the runner's own path form.
add_to_path() {
	local dir=$1
	if [[ -z "${GITHUB_PATH:-}" ]]; then
		log "GITHUB_PATH is not set; not adding $dir to PATH"
		return 0
	fi
	if command -v cygpath >/dev/null 2>&1; then
		dir=$(cygpath -w -- "$dir")
	fi
	printf '%s\n' "$dir" >>"$GITHUB_PATH"
	log "added $dir to PATH"
}

sha256_of() {
	local sum
	if command -v sha256sum >/dev/null 2>&1; then
		sum=$(sha256sum <"$1")
	elif command -v shasum >/dev/null 2>&1; then
		sum=$(shasum -a 256 <"$1")
	elif command -v openssl >/dev/null 2>&1; then
		sum=$(openssl dgst -sha256 -r <"$1")
	else
		die "no sha256sum, shasum or openssl on PATH to verify the download"
	fi
	printf '%s\n' "${sum%% *}" | tr 'A-F' 'a-f'
}

# version_at_least reports whether dotted version $1 >= $2 (go1.26.8, 1.26.0);
# a pre-release suffix (1.27rc1) counts as its base version.
version_at_least() {
	local a=${1#go} b=${2#go} i x y
	a=${a%%[!0-9.]*}
	b=${b%%[!0-9.]*}
	local IFS=.
	local -a av bv
	read -r -a av <<<"$a"
	read -r -a bv <<<"$b"
	for i in 0 1 2; do
		x=${av[i]:-0}
		y=${bv[i]:-0}
		if ((10#$x > 10#$y)); then return 0; fi
		if ((10#$x < 10#$y)); then return 1; fi
	done
	return 0
}

# derive_from_path sets path_repository and path_ref when the directory lies
# under .../_actions/<owner>/<repo>/<ref>, where the runner unpacks actions.
derive_from_path() {
	local dir=$1 tail="" base
	path_repository=""
	path_ref=""
	while [[ "$dir" == */* && "${dir##*/}" != "_actions" ]]; do
		base=${dir##*/}
		if [[ -n "$base" ]]; then
			tail="$base${tail:+/$tail}"
		fi
		dir=${dir%/*}
	done
	[[ "${dir##*/}" == "_actions" ]] || return 0
	local owner=${tail%%/*} rest=${tail#*/}
	[[ "$rest" != "$tail" ]] || return 0
	local repo=${rest%%/*} ref=${rest#*/}
	[[ "$ref" != "$rest" && -n "$ref" ]] || return 0
	path_repository="$owner/$repo"
	path_ref=$ref
}

# A release version: v1.2.3 or v1.2.3-rc.1. Only these have releases; v1 and
# v1.2 are plain git tags that move with every release.
readonly release_version_re='^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z][0-9A-Za-z.-]*)?$'
is_release_version() { [[ "$1" =~ $release_version_re ]]; }

# read_version_file prints the release named by the VERSION file $1: exactly
# one line vX.Y.Z (an optional final newline, nothing else), or it fails.
read_version_file() {
	local file=$1 size content
	size=$(wc -c <"$file" | tr -d ' ') || die "cannot read $file"
	if ((size > 64)); then
		die "$file holds $size bytes, not one version line such as v1.2.3; this checkout is not a release commit as the release workflow writes it"
	fi
	content=$(
		cat -- "$file"
		printf x
	)
	content=${content%x}
	content=${content%$'\n'}
	if ! is_release_version "$content"; then
		die "$file holds '$(printable "$content")', not one line vX.Y.Z; this checkout is not a release commit as the release workflow writes it"
	fi
	printf '%s\n' "$content"
}

# positive_number checks that env variable $1 (value $2) is a number of
# seconds above zero.
positive_number() {
	if [[ ! "$2" =~ ^[0-9]+(\.[0-9]+)?$ || "$2" =~ ^0+(\.0+)?$ ]]; then
		die "$1 '$(printable "$2")' is not a number of seconds above zero"
	fi
}

# fetch downloads $1 into $2 and returns 0, or returns 1 with fetch_failure
# saying what went wrong (HTTP status, DNS, refused, timeout).
fetch() {
	local url=$1 out=$2 code="" rc=0
	local errfile="$work_dir/curl.err"
	local -a args=(--fail --location --silent --show-error
		--connect-timeout "$connect_timeout" --max-time "$max_time" --speed-limit 1 --speed-time 20
		--retry "$retries" --retry-connrefused
		--output "$out" --write-out '%{http_code}')
	fetch_failure=""
	if [[ -n "${GITHUB_TOKEN:-}" && "$base_url" == "$default_base_url" && "$GITHUB_TOKEN" != *[$'\r\n']* ]]; then
		# The header goes through stdin so the token never shows in argv.
		code=$(printf 'Authorization: Bearer %s\n' "$GITHUB_TOKEN" |
			curl "${args[@]}" --header @- "$url" 2>"$errfile") || rc=$?
	else
		code=$(curl "${args[@]}" "$url" 2>"$errfile") || rc=$?
	fi
	if ((rc == 0)); then
		return 0
	fi
	if [[ "$code" =~ ^[1-9][0-9][0-9]$ ]]; then
		fetch_failure="HTTP $code"
	else
		# The last curl error line, without its "curl: (7) " prefix.
		local detail
		detail=$(grep '^curl: (' "$errfile" 2>/dev/null | tail -n 1 || true)
		detail=${detail#curl: (*) }
		fetch_failure="${detail:-no answer} (curl exit $rc)"
	fi
	fetch_failure=$(printable "$fetch_failure")
	return 1
}

# find_cached prints the install directory of a complete cached copy for
# the current source, key (<version>-<sha prefix>) and arch.
find_cached() {
	local dir="$cache_root/$1/$goarch"
	if [[ -f "$dir.complete" && -x "$dir/$exe_name" ]] &&
		grep -qxF "source=$source_id" "$dir.complete"; then
		printf '%s\n' "$dir"
		return 0
	fi
	return 1
}

# extract unpacks archive $1 into directory $2.
extract() {
	local archive=$1 dest=$2
	case "$archive_ext" in
	tar.gz) tar -xzf "$archive" -C "$dest" ;;
	zip)
		if command -v unzip >/dev/null 2>&1; then
			unzip -q -o "$archive" -d "$dest"
		else
			# The paths reach PowerShell as environment variables, never as code.
			# shellcheck disable=SC2016
			GANTRY_ZIP=$(native_path "$archive") GANTRY_DEST=$(native_path "$dest") \
				powershell.exe -NoProfile -NonInteractive -Command \
				'Expand-Archive -LiteralPath $env:GANTRY_ZIP -DestinationPath $env:GANTRY_DEST -Force'
		fi
		;;
	esac
}

# verify_cached re-hashes the cached copy in $1 against sha256 $2 from the
# release's checksums.txt: the archive kept beside it must have that sum and
# the binary must be the one in it. On failure it sets cache_mismatch.
verify_cached() {
	local dir=$1 expected=$2 kept="$1.$archive_ext" actual check
	if [[ ! -f "$kept" ]]; then
		cache_mismatch="the release archive is not kept beside it"
		return 1
	fi
	actual=$(sha256_of "$kept")
	if [[ "$actual" != "$expected" ]]; then
		cache_mismatch="its archive has sha256 $actual, checksums.txt lists $expected"
		return 1
	fi
	check=$(mktemp -d "$work_dir/check.XXXXXX")
	if ! extract "$kept" "$check" >/dev/null 2>&1 || [[ ! -f "$check/$exe_name" ]] ||
		[[ "$(sha256_of "$check/$exe_name")" != "$(sha256_of "$dir/$exe_name")" ]]; then
		rm -rf "$check"
		cache_mismatch="the cached $exe_name is not the one in its release archive"
		return 1
	fi
	rm -rf "$check"
}

# use_cached finishes with the cached copy in $1 when it passes verify_cached
# against sum $2; otherwise it removes that copy and returns, so that it is
# downloaded again.
use_cached() {
	local dir=$1 expected=$2 how=$3
	if verify_cached "$dir" "$expected"; then
		log "cache hit: gantry $version ($goos/$goarch) in $dir, re-hashed against sha256 $expected from checksums.txt; $how"
		finish_install "$dir" "$expected"
	fi
	log "the cached gantry $version in $dir does not match checksums.txt ($cache_mismatch); downloading it again"
	rm -rf "$dir" "$dir.complete" "$dir.$archive_ext"
}

# finish_install writes the outputs for an installed binary (whose release
# archive has sha256 $2) and exits.
finish_install() {
	local dir=$1 sum=$2
	mkdir -p "$memo_dir"
	printf '%s\n%s\n' "$dir" "$sum" >"$memo_file"
	set_output bin "$(native_path "$dir/$exe_name")"
	set_output version "$version"
	set_output need-build false
	set_output need-go false
	if [[ "$add_path" == "true" ]]; then
		add_to_path "$dir"
	fi
	exit 0
}

# gh_token prints the token gh gets for the attestation: GH_TOKEN, then
# GITHUB_TOKEN, then the job's token the action passes.
gh_token() {
	local t
	for t in "${GH_TOKEN:-}" "${GITHUB_TOKEN:-}" "${GANTRY_GITHUB_TOKEN:-}"; do
		if [[ -n "$t" && "$t" != *[$'\r\n']* ]]; then
			printf '%s' "$t"
			return 0
		fi
	done
	return 1
}

# verify_provenance checks the attestation of archive $1 (sha256 $2, already
# matched against checksums.txt) with gh, when it can and should; a failed
# verification ends the script, a skipped one is logged with what was checked.
verify_provenance() {
	local archive=$1 sum=$2 skip="" token=""
	local signer="$repository/$release_workflow"
	if [[ "$verify_attestation" == "never" ]]; then
		skip="GANTRY_VERIFY_ATTESTATION=never"
	elif ! command -v gh >/dev/null 2>&1; then
		skip="no gh (GitHub CLI) on PATH"
	elif ! gh attestation verify --help >/dev/null 2>&1; then
		skip="the gh on PATH has no attestation command (gh 2.49 or newer has)"
	elif ! token=$(gh_token); then
		skip="no GH_TOKEN, GITHUB_TOKEN or GANTRY_GITHUB_TOKEN for gh"
	elif [[ "$verify_attestation" == "auto" && "$base_url" != "$default_base_url" ]]; then
		skip="releases come from the mirror $base_url (GANTRY_VERIFY_ATTESTATION=always verifies them against github.com's attestations too)"
	elif [[ "$verify_attestation" == "auto" && -n "${GITHUB_SERVER_URL:-}" && "${GITHUB_SERVER_URL%/}" != "$default_base_url" ]]; then
		skip="this runner belongs to $GITHUB_SERVER_URL, whose job token cannot read github.com's attestations (set GH_TOKEN to a github.com token and GANTRY_VERIFY_ATTESTATION=always to verify)"
	fi
	if [[ -n "$skip" ]]; then
		if [[ "$verify_attestation" == "always" ]]; then
			die "cannot verify the provenance of $asset of gantry $version: $skip; GANTRY_VERIFY_ATTESTATION=always refuses a binary checked only against checksums.txt; nothing installed"
		fi
		log "provenance not verified ($skip); checked: sha256 $sum of $asset equals its entry in checksums.txt of the same release ($release_url/$checksums_name)"
		return 0
	fi
	log "verifying the provenance of $asset: gh attestation verify --repo $repository --signer-workflow $signer"
	local out="$work_dir/gh.out" rc=0
	# The token reaches gh through its environment only.
	GH_TOKEN=$token GH_HOST=github.com GH_PROMPT_DISABLED=1 GH_NO_UPDATE_NOTIFIER=1 \
		gh attestation verify "$archive" --repo "$repository" --signer-workflow "$signer" >"$out" 2>&1 || rc=$?
	if ((rc != 0)); then
		local detail
		detail=$(grep -v '^[[:space:]]*$' "$out" | tail -n 1 || true)
		detail=${detail//"$token"/***}
		die "provenance check failed for $asset of gantry $version: gh attestation verify --repo $repository --signer-workflow $signer exited $rc ($(printable "$detail")); nothing installed"
	fi
	log "verified the provenance of $asset: an attestation signed by $signer (gh attestation verify), besides sha256 $sum from checksums.txt"
}

# install_release downloads, verifies and caches the release binary, writes
# the outputs and exits. It returns (setting download_failure) when the
# release cannot be downloaded; a checksum mismatch, a malformed
# checksums.txt or a failed attestation end the script.
install_release() {
	local dir
	# 1. This job already resolved the version (RUNNER_TEMP lives for one
	# job): the same copy, re-hashed against the sum this job read from
	# checksums.txt.
	if [[ -f "$memo_file" ]]; then
		local memo_sum
		{ read -r dir && read -r memo_sum; } <"$memo_file" || true
		if [[ -n "$dir" && "$memo_sum" =~ ^[0-9a-f]{64}$ && -f "$dir.complete" && -x "$dir/$exe_name" ]]; then
			use_cached "$dir" "$memo_sum" "resolved earlier in this job, nothing downloaded"
		fi
	fi
	# 2. Any other cached copy is re-hashed against the release's
	# checksums.txt, fetched here.
	local checksums="$work_dir/$checksums_name" archive="$work_dir/$asset"
	log "resolving gantry $version from $release_url"
	if ! fetch "$release_url/$checksums_name" "$checksums"; then
		download_failure="$release_url/$checksums_name: $fetch_failure"
		return 0
	fi

	local expected count
	expected=$(tr -d '\r' <"$checksums" | awk -v name="$asset" '$2 == name || $2 == "*" name { print tolower($1) }' | sort -u)
	count=$(printf '%s' "$expected" | grep -c . || true)
	if ((count == 0)); then
		die "checksums.txt of gantry $version ($repository) has no entry for $asset; refusing to install an unverified binary"
	fi
	if ((count > 1)); then
		die "checksums.txt of gantry $version ($repository) lists $asset more than once with different sums; refusing to install"
	fi
	if [[ ! "$expected" =~ ^[0-9a-f]{64}$ ]]; then
		die "checksums.txt of gantry $version ($repository) has a malformed sum for $asset: $(printable "$expected")"
	fi

	local key="$version-${expected:0:12}"
	if dir=$(find_cached "$key"); then
		use_cached "$dir" "$expected" "only $checksums_name downloaded"
	fi

	log "downloading $release_url/$asset"
	if ! fetch "$release_url/$asset" "$archive"; then
		download_failure="$release_url/$asset: $fetch_failure"
		return 0
	fi
	local actual
	actual=$(sha256_of "$archive")
	if [[ "$actual" != "$expected" ]]; then
		die "checksum mismatch for $asset of gantry $version: expected sha256 $expected from checksums.txt, got $actual; nothing installed and nothing built: a release never changes, so the download was altered on its way (check the release-base-url mirror, proxies) or the release was tampered with"
	fi
	log "verified sha256 $actual of $asset against checksums.txt"
	verify_provenance "$archive" "$actual"

	mkdir -p "$cache_root"
	local stage
	stage=$(mktemp -d "$cache_root/.stage.XXXXXX")
	stage_dir=$stage
	mkdir "$stage/$goarch"
	extract "$archive" "$stage/$goarch" || die "could not unpack $asset of gantry $version"
	if [[ ! -f "$stage/$goarch/$exe_name" ]]; then
		die "$asset of gantry $version has no $exe_name at its top level; nothing installed"
	fi
	chmod +x "$stage/$goarch/$exe_name"

	dir="$cache_root/$key/$goarch"
	mkdir -p "$cache_root/$key"
	if [[ -f "$dir.complete" && -x "$dir/$exe_name" ]]; then
		log "another job cached gantry $version meanwhile; using $dir"
	else
		rm -rf "$dir" "$dir.complete" "$dir.$archive_ext"
		mv "$stage/$goarch" "$dir"
		# The archive stays beside the binary, so that every later cache hit
		# can be re-hashed against checksums.txt.
		mv "$archive" "$dir.$archive_ext"
		printf 'source=%s\nsha256=%s\nasset=%s\n' "$source_id" "$expected" "$asset" >"$dir.complete"
		log "installed gantry $version ($goos/$goarch) in $dir"
	fi
	rm -rf "$stage"
	stage_dir=""
	finish_install "$dir" "$expected"
}

# plan_build writes the outputs that make the action build gantry from source.
plan_build() {
	local reason=$1 need_go=true have=""
	log "building gantry from source: $reason"
	local want
	want=$(awk '$1 == "go" { print $2; exit }' "$src_root/go.mod" 2>/dev/null || true)
	if command -v go >/dev/null 2>&1; then
		# GOTOOLCHAIN=local and a neutral directory: report the Go on PATH
		# instead of switching to (and downloading) another toolchain.
		have=$( (cd / && GOTOOLCHAIN=local go env GOVERSION) 2>/dev/null || true)
		if [[ -n "$have" && -n "$want" ]] && version_at_least "$have" "$want"; then
			need_go=false
		fi
	fi
	if [[ "$need_go" == "true" ]]; then
		log "need Go ${want:-(unknown)} to build; found ${have:-no go on PATH}"
	else
		log "using $have on PATH (go.mod wants $want)"
	fi
	set_output need-build true
	set_output need-go "$need_go"
	set_output bin "$(native_path "$build_dir/$exe_name")"
	set_output version "$build_version"
}

# build compiles ./cmd/gantry with the release's flags.
build() {
	command -v go >/dev/null 2>&1 || die "go is not on PATH; run actions/setup-go before install.sh --build"
	[[ -f "$src_root/go.mod" ]] || die "no go.mod in $src_root; cannot build gantry from source"
	mkdir -p "$build_dir"
	local ldflags="-s -w -X $module_path/internal/version.Version=$build_version"
	log "building ./cmd/gantry in $src_root (version $build_version)"
	(cd "$src_root" && CGO_ENABLED=0 GOWORK=off go build -trimpath -ldflags "$ldflags" -o "$build_dir/$exe_name" ./cmd/gantry) ||
		die "go build of ./cmd/gantry in $src_root failed (see the compiler output above)"
	log "built $build_dir/$exe_name"
	set_output bin "$(native_path "$build_dir/$exe_name")"
	if [[ "$add_path" == "true" ]]; then
		add_to_path "$build_dir"
	fi
}

# --- arguments --------------------------------------------------------------

mode=resolve
add_path=false
for arg in "$@"; do
	case "$arg" in
	--build) mode=build ;;
	--add-path) add_path=true ;;
	-h | --help)
		# The comment block at the top of this file.
		awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*) die "unknown argument: $arg (want --build and/or --add-path)" ;;
	esac
done

# --- settings ---------------------------------------------------------------

if [[ -n "${GANTRY_INPUT_RELEASE_BASE_URL:-}" ]]; then
	base_url=$GANTRY_INPUT_RELEASE_BASE_URL
	base_url_from="the release-base-url input"
elif [[ -n "${GANTRY_RELEASE_BASE_URL:-}" ]]; then
	base_url=$GANTRY_RELEASE_BASE_URL
	base_url_from="GANTRY_RELEASE_BASE_URL"
else
	base_url=$default_base_url
	base_url_from="the default"
fi
if [[ ! "$base_url" =~ ^https?://[^/[:space:]]+(/[^[:space:]]*)?$ || "$base_url" == *[[:cntrl:]]* ]]; then
	die "$base_url_from '$(printable "$base_url")' is not an http:// or https:// URL without spaces (the base a mirror serves <owner>/<repo>/releases/download/<version>/ under, such as https://mirror.example.com/github)"
fi
base_url=${base_url%/}

connect_timeout=${GANTRY_INSTALL_CONNECT_TIMEOUT:-10}
max_time=${GANTRY_INSTALL_MAX_TIME:-120}
retries=${GANTRY_INSTALL_RETRIES:-2}
positive_number GANTRY_INSTALL_CONNECT_TIMEOUT "$connect_timeout"
positive_number GANTRY_INSTALL_MAX_TIME "$max_time"
if [[ ! "$retries" =~ ^([0-9]|10)$ ]]; then
	die "GANTRY_INSTALL_RETRIES '$(printable "$retries")' is not a whole number from 0 to 10"
fi
verify_attestation=${GANTRY_VERIFY_ATTESTATION:-auto}
case "$verify_attestation" in
auto | always | never) ;;
*) die "GANTRY_VERIFY_ATTESTATION '$(printable "$verify_attestation")' is not auto, always or never" ;;
esac

# --- platform ---------------------------------------------------------------

runner_os=${RUNNER_OS:-}
runner_arch=${RUNNER_ARCH:-}
if [[ -z "$runner_os" ]]; then
	case "$(uname -s)" in
	Linux) runner_os=Linux ;;
	Darwin) runner_os=macOS ;;
	MINGW* | MSYS* | CYGWIN*) runner_os=Windows ;;
	*) runner_os=$(uname -s) ;;
	esac
fi
if [[ -z "$runner_arch" ]]; then
	case "$(uname -m)" in
	x86_64 | amd64) runner_arch=X64 ;;
	aarch64 | arm64) runner_arch=ARM64 ;;
	*) runner_arch=$(uname -m) ;;
	esac
fi
goos=""
goarch=""
case "$runner_os" in
Linux) goos=linux ;;
macOS) goos=darwin ;;
Windows) goos=windows ;;
esac
case "$runner_arch" in
X64) goarch=amd64 ;;
ARM64) goarch=arm64 ;;
esac
exe_name=gantry
archive_ext=tar.gz
if [[ "$goos" == "windows" ]]; then
	exe_name=gantry.exe
	archive_ext=zip
fi
asset="gantry_${goos}_${goarch}.${archive_ext}"

# --- locations --------------------------------------------------------------

script_path=$(unix_path "${BASH_SOURCE[0]}")
script_dir=$(cd -- "$(dirname -- "$script_path")" && pwd)
src_root=${GANTRY_SRC_DIR:-$script_dir/..}
src_root=$(cd -- "$(unix_path "$src_root")" && pwd) || die "GANTRY_SRC_DIR $GANTRY_SRC_DIR is not a directory"

temp_root=$(unix_path "${RUNNER_TEMP:-${TMPDIR:-/tmp}}")
tool_cache=$(unix_path "${RUNNER_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}}")
cache_root="$tool_cache/gantry"
build_dir="$temp_root/gantry-src-build"

# --- which gantry -----------------------------------------------------------

derive_from_path "$src_root"
action_ref=${GANTRY_ACTION_REF:-}
repository=${GANTRY_ACTION_REPOSITORY:-}
if [[ -z "$action_ref" && -n "$path_ref" ]]; then
	action_ref=$path_ref
	repository=${repository:-$path_repository}
	log "action ref $action_ref of $path_repository taken from the action path $src_root"
fi
if [[ -z "$repository" ]]; then
	repository=${path_repository:-$default_repository}
fi
if [[ ! "$repository" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]]; then
	die "action repository '$(printable "$repository")' is not of the form owner/name"
fi

# The exact release of this checkout: the release workflow writes VERSION
# into each release commit (the one v1, v1.2 and v1.2.3 point at).
src_version=""
if [[ -f "$src_root/VERSION" ]]; then
	src_version=$(read_version_file "$src_root/VERSION")
fi

explicit=false
version=$src_version
if [[ -n "${GANTRY_VERSION:-}" ]]; then
	version=$GANTRY_VERSION
	if [[ "$version" =~ ^[0-9] ]]; then
		version="v$version"
	fi
	if ! is_release_version "$version"; then
		die "GANTRY_VERSION '$(printable "$GANTRY_VERSION")' is not a release version: want one such as v1.2.3 (v1 and v1.2 are moving git tags without a release of their own)"
	fi
	# A version other than the checkout's own cannot be built from this
	# source instead: it must be downloaded.
	if [[ "$version" != "$src_version" ]]; then
		explicit=true
	fi
fi

# The version stamped into a source build: the checkout's release, else the
# ref when it is a plain name.
build_version=dev
if [[ -n "$src_version" ]]; then
	build_version=$src_version
elif [[ -n "$action_ref" && "$action_ref" =~ ^[A-Za-z0-9._/+-]+$ ]]; then
	build_version=$action_ref
fi

if [[ "$mode" == "build" ]]; then
	build
	exit 0
fi

# --- resolve ----------------------------------------------------------------

if [[ -z "$version" ]]; then
	if [[ -z "$action_ref" ]]; then
		plan_build "no VERSION file and no action ref (a local action such as uses: ./actions/<name>, or an action path outside _actions/); building the checkout at $src_root"
	else
		plan_build "ref $action_ref is not a release commit (no VERSION file in $src_root: a branch or another commit); building that source"
	fi
	exit 0
fi
if [[ "$explicit" == "true" ]]; then
	log "installing gantry $version as GANTRY_VERSION asks${src_version:+ (this checkout is $src_version)}"
elif [[ -n "$action_ref" && "$action_ref" != "$version" ]]; then
	log "action ref $action_ref is release $version (its VERSION file)"
fi
if [[ -z "$goos" || -z "$goarch" ]]; then
	if [[ "$explicit" == "true" ]]; then
		die "no gantry release binary for $runner_os/$runner_arch; GANTRY_VERSION $version cannot be installed here"
	fi
	plan_build "no release binary for $runner_os/$runner_arch"
	exit 0
fi

work_dir=$(mktemp -d "$temp_root/gantry-install.XXXXXX")
stage_dir=""
cleanup() {
	rm -rf "$work_dir"
	if [[ -n "$stage_dir" ]]; then rm -rf "$stage_dir"; fi
}
trap cleanup EXIT

release_url="$base_url/$repository/releases/download/$version"
source_id="$base_url/$repository"
memo_dir="$temp_root/gantry-install-memo"
memo_file="$memo_dir/${repository//\//_}_${version}_${goos}_${goarch}"
download_failure=""
fetch_failure=""

# install_release exits when it installed gantry; it returns when the release
# could not be downloaded. (Not called as "install_release || ...": that
# would switch off set -e inside it.)
install_release
if [[ "$explicit" == "true" ]]; then
	die "could not download gantry $version from $download_failure; nothing installed: GANTRY_VERSION (the version input) asks for that release's binary, which this action's source is not. Mirror the release and set release-base-url (or GANTRY_RELEASE_BASE_URL), or leave the version empty to install this action's own version"
fi
warn "could not download gantry $version from $download_failure; building gantry $version from this action's own source instead (slower; sets up Go when the runner has none). To install the release binary without reaching github.com, mirror $checksums_name and the gantry_<os>_<arch> archives of $repository's release $version to <mirror>/$repository/releases/download/$version/ and set the action's release-base-url input (or the GANTRY_RELEASE_BASE_URL variable) to <mirror>"
plan_build "the release $version could not be downloaded"
