#!/usr/bin/env bash
# install.sh puts the gantry binary pinned by the action's ref on a GitHub
# Actions runner. A release ref (v1, v1.2, v1.2.3) is downloaded from the
# GitHub release of that ref, checked against its checksums.txt and kept in
# the runner's tool cache with its archive, which every cache hit re-hashes
# against checksums.txt (a copy that fails is downloaded again); any other ref (a branch, a commit SHA, a local
# action) is built from the action's own checkout instead.
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
# are cached in $RUNNER_TOOL_CACHE/gantry/<ref>-<sha256[:12]>/<arch>/; source
# builds go to $RUNNER_TEMP/gantry-src-build/.
#
# Environment (all optional):
#   GANTRY_VERSION             explicit release to install (v1.2.3; 1.2.3 is accepted)
#   GANTRY_ACTION_REF          the action's ref (github.action_ref)
#   GANTRY_ACTION_REPOSITORY   the action's repository (github.action_repository)
#                              both are derived from the script's location under
#                              .../_actions/<owner>/<repo>/<ref>/ when empty
#   GANTRY_RELEASE_BASE_URL    where releases live (default https://github.com)
#   GANTRY_SRC_DIR             the gantry source tree to build (default: the
#                              repository this script belongs to)
#   GANTRY_INSTALL_RETRY_SECONDS  pause before re-checking a moving tag (v1)
#                              whose archive and checksums.txt disagree (10)
#   GITHUB_TOKEN               sent as a bearer token to https://github.com only
#   RUNNER_OS, RUNNER_ARCH, RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_OUTPUT,
#   GITHUB_PATH                as set by the runner; outside Actions the platform
#                              comes from uname and outputs are printed to stdout
set -euo pipefail

readonly module_path="github.com/gantry-dev/gantry"
readonly default_repository="gantry-dev/gantry"
readonly default_base_url="https://github.com"
readonly checksums_name="checksums.txt"

log() { printf 'gantry install: %s\n' "$*"; }

die() {
	if [[ "${GITHUB_ACTIONS:-}" == "true" ]]; then
		printf '::error title=gantry install::%s\n' "$*" >&2
	else
		printf 'gantry install: error: %s\n' "$*" >&2
	fi
	exit 1
}

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

# A ref that names a release: v1, v1.2, v1.2.3 or v1.2.3-rc.1.
is_release_ref() { [[ "$1" =~ ^v[0-9]+(\.[0-9]+(\.[0-9]+(-[0-9A-Za-z.]+)?)?)?$ ]]; }

# A full version names one release and never moves (a mismatch is not retried).
is_full_version() { [[ "$1" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]]; }

# fetch downloads $1 into $2. It returns 0 on success and 4 when the server
# answers 404; any other failure ends the script.
fetch() {
	local url=$1 out=$2 code="" rc=0
	local errfile="$work_dir/curl.err"
	local -a args=(--fail --location --retry 3 --retry-delay 2 --retry-connrefused --connect-timeout 30
		--max-time 600 --silent --show-error --output "$out" --write-out '%{http_code}')
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
	if [[ "$code" == "404" ]]; then
		return 4
	fi
	local detail
	detail=$(head -n 1 "$errfile" 2>/dev/null || true)
	die "could not download $url (HTTP ${code:-none}, curl exit $rc${detail:+: $detail})"
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

# install_release downloads, verifies and caches the release binary, writes
# the outputs and exits. It returns (setting not_found_reason) when the
# release or its asset for this platform does not exist.
install_release() {
	local dir
	# 1. This job already resolved the ref (RUNNER_TEMP lives for one job):
	# the same copy, re-hashed against the sum this job read from checksums.txt.
	if [[ -f "$memo_file" ]]; then
		local memo_sum
		{ read -r dir && read -r memo_sum; } <"$memo_file" || true
		if [[ -n "$dir" && "$memo_sum" =~ ^[0-9a-f]{64}$ && -f "$dir.complete" && -x "$dir/$exe_name" ]]; then
			use_cached "$dir" "$memo_sum" "resolved earlier in this job, nothing downloaded"
		fi
	fi
	# 2. Any other cached copy is re-hashed against the release's
	# checksums.txt, fetched below.

	# A moving tag's assets are replaced one by one while a release runs;
	# a mismatch then is retried a few times before it counts as tampering.
	local attempt=1 attempts=1
	if ! is_full_version "$version"; then
		attempts=3
	fi
	while :; do
		download_release
		if [[ "$outcome" == "not-found" ]]; then
			return 0
		fi
		if ((attempt >= attempts)); then
			die "$mismatch_reason; nothing installed"
		fi
		attempt=$((attempt + 1))
		log "$mismatch_reason; $version is a moving tag that a release may be updating: retrying in ${retry_seconds}s (attempt $attempt of $attempts)"
		sleep "$retry_seconds"
	done
}

# download_release fetches checksums.txt and the archive and installs the
# archive when its sum matches (exiting); otherwise it sets outcome to
# not-found (with not_found_reason) or mismatch (with mismatch_reason).
download_release() {
	local dir
	local release_url="$base_url/$repository/releases/download/$version"
	local checksums="$work_dir/$checksums_name" archive="$work_dir/$asset"
	log "resolving gantry $version from $release_url"
	outcome=not-found
	fetch "$release_url/$checksums_name" "$checksums" || {
		not_found_reason="release $version of $repository not found ($release_url/$checksums_name: HTTP 404)"
		return 0
	}

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
		die "checksums.txt of gantry $version ($repository) has a malformed sum for $asset: $expected"
	fi

	local key="$version-${expected:0:12}"
	# A copy of this content (the version, or a moving tag's current one) is
	# already cached.
	if dir=$(find_cached "$key"); then
		use_cached "$dir" "$expected" "only $checksums_name downloaded"
	fi

	log "downloading $release_url/$asset"
	fetch "$release_url/$asset" "$archive" || {
		not_found_reason="release $version of $repository has no $asset ($goos/$goarch): HTTP 404"
		return 0
	}
	local actual
	actual=$(sha256_of "$archive")
	if [[ "$actual" != "$expected" ]]; then
		outcome=mismatch
		mismatch_reason="checksum mismatch for $asset of gantry $version: expected sha256 $expected from checksums.txt, got $actual"
		return 0
	fi
	log "verified sha256 $actual of $asset"

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
base_url=${GANTRY_RELEASE_BASE_URL:-$default_base_url}
base_url=${base_url%/}

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
	die "action repository '$repository' is not of the form owner/name"
fi

explicit=false
version=$action_ref
if [[ -n "${GANTRY_VERSION:-}" ]]; then
	version=$GANTRY_VERSION
	if [[ "$version" =~ ^[0-9] ]]; then
		version="v$version"
	fi
	if ! is_release_ref "$version"; then
		die "GANTRY_VERSION '$GANTRY_VERSION' is not a release version (want v1, v1.2 or v1.2.3)"
	fi
	if [[ "$version" != "$action_ref" ]]; then
		explicit=true
	fi
fi

# The version stamped into a source build: the ref when it is a plain name.
build_version=dev
if [[ -n "$version" && "$version" =~ ^[A-Za-z0-9._/+-]+$ ]]; then
	build_version=$version
fi

if [[ "$mode" == "build" ]]; then
	build
	exit 0
fi

# --- resolve ----------------------------------------------------------------

work_dir=$(mktemp -d "$temp_root/gantry-install.XXXXXX")
stage_dir=""
cleanup() {
	rm -rf "$work_dir"
	if [[ -n "$stage_dir" ]]; then rm -rf "$stage_dir"; fi
}
trap cleanup EXIT

source_id="$base_url/$repository"
memo_dir="$temp_root/gantry-install-memo"
memo_file="$memo_dir/${repository//\//_}_${version//\//_}_${goos}_${goarch}"
not_found_reason=""
mismatch_reason=""
outcome=""
retry_seconds=${GANTRY_INSTALL_RETRY_SECONDS:-10}
if [[ ! "$retry_seconds" =~ ^[0-9]+$ ]]; then
	die "GANTRY_INSTALL_RETRY_SECONDS '$retry_seconds' is not a number of seconds"
fi

if [[ -z "$version" ]]; then
	plan_build "no action ref (a local action such as uses: ./actions/<name>, or an action path outside _actions/); building the checkout at $src_root"
	exit 0
fi
if ! is_release_ref "$version"; then
	plan_build "ref $version is not a release tag (v1, v1.2, v1.2.3)"
	exit 0
fi
if [[ -z "$goos" || -z "$goarch" ]]; then
	if [[ "$explicit" == "true" ]]; then
		die "no gantry release binary for $runner_os/$runner_arch; GANTRY_VERSION $version cannot be installed here"
	fi
	plan_build "no release binary for $runner_os/$runner_arch"
	exit 0
fi

# install_release exits when it installed gantry; it returns when the release
# or its asset does not exist. (Not called as "install_release || ...": that
# would switch off set -e inside it.)
install_release
if [[ "$explicit" == "true" ]]; then
	die "$not_found_reason; check GANTRY_VERSION"
fi
plan_build "$not_found_reason"
