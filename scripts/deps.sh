#!/usr/bin/env bash
# deps.sh - install the Debian packages that building and testing dm need.
#
# Silent and fast (one dpkg-query call) when everything is installed; when
# something is missing it runs `apt-get update` once and installs only what is
# missing, as root or through sudo. `make test` and .ci/run call it first, so a
# fresh machine needs nothing by hand. DM_SKIP_DEPS=1 skips it.
set -euo pipefail

# The one list. One group per line, each with why it is here.
packages=(
	# build toolchain
	build-essential pkg-config meson ninja-build
	# libraries dm links: hashing, compression, embedded kv, json, http server and client
	# (gnutls: the client certificates of nodes that libmicrohttpd's TLS receives)
	libssl-dev libzstd-dev liblmdb-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev
	libgnutls28-dev
	# unit tests (cmocka) and the test runner (prove, from perl)
	libcmocka-dev perl
	# fuzzing: clang with its libFuzzer/sanitizer runtimes; clang-format for `make format`
	clang libclang-rt-14-dev clang-format
	# e2e tests and tools: mdb_stat/mdb_dump, python3 (free ports, helpers),
	# curl (raw /rpc and /objects requests in the t052x transfer scenarios)
	lmdb-utils python3 curl
	# benchmarks compare against these (bench/store.sh: restic; bench/transfer.sh: rsync)
	restic rsync
	# database scenarios (e2e t0400: a PostgreSQL data directory in a dot)
	postgresql
	# the btrfs engine: libbtrfsutil (subvolumes, snapshots), mkfs.btrfs and btrfs (pools, tests)
	libbtrfsutil-dev btrfs-progs
	# the etcd kv backend's tests (unit test_kv, e2e t0800): etcd and etcdctl
	etcd-server etcd-client
	# the CSI driver (docs/internals/csi.md): HTTP/2, protobuf-c and protoc-c;
	# its conformance suite's gRPC client (e2e t1000)
	libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler python3-grpcio python3-grpc-tools
	# dotmesh's S3 paths: a PUT with 'Extract: true' unpacks a tar, a GET of a
	# directory answers one
	libarchive-dev
	# the deployment files' check (e2e t1003) reads YAML
	python3-yaml
	# (not here: the S3 scenarios, e2e t112x, run moto_server with boto3, which
	# come with the machine image's Python; Debian 12 has no moto and PyPI is
	# not reachable. tests/e2e/lib-s3.sh fails, never skips, without them.)
	# /metrics: promtool checks its format (e2e t1200), a real Prometheus
	# scrapes it and runs the example dashboard's queries (e2e t1203)
	prometheus
	# the web page's browser test (e2e t1204): Debian's chromium, driven by
	# playwright-core from npm (tests/browser/package-lock.json, below)
	chromium
	# later (docker-API tests):
	# podman
)

if [ "${DM_SKIP_DEPS:-}" = 1 ]; then
	exit 0
fi

# The browser test's npm packages (playwright-core, axe-core), as
# tests/browser/package-lock.json pins them, unless npm installed that lock
# file's packages since it last changed; it needs Node.js 20 and npm.
browser_packages() {
	local dir

	dir=$(cd "$(dirname "$0")/.." && pwd)/tests/browser
	[ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return 0
	if ! command -v npm >/dev/null 2>&1; then
		echo "deps.sh: no npm: the browser test (e2e t1204) needs Node.js 20 and npm" >&2
		return 0
	fi
	echo "deps.sh: installing the browser test's npm packages (npm ci in tests/browser)" >&2
	npm ci --prefix "$dir" --no-audit --no-fund >&2
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system (no dpkg-query); make sure these are installed:" >&2
	echo "  ${packages[*]}" >&2
	exit 0
fi

# dpkg-query prints "name status" for known packages and complains on stderr
# about unknown ones; anything not "install ok installed" is missing.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null |
	awk '$2 == "install" && $3 == "ok" && $4 == "installed" { print $1 }' || true)
missing=()
for p in "${packages[@]}"; do
	if ! grep -qxF -- "$p" <<<"$installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	browser_packages
	exit 0
fi

echo "deps.sh: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo=(sudo)
else
	echo "deps.sh: need root to install packages; run as root:" >&2
	echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"
browser_packages
