#!/usr/bin/env bash
# Build the pinned Kubo and go-ethereum into .tools/bin (once), and install
# Debian's PostgreSQL server when it is missing. Called by `make setup`.
#
# Never fails the setup: an engine that cannot be had is reported here, and the
# tests that need it skip with the reason written to .tools/<name>.unavailable.
# Go's module and build caches stay in their default per-user places, so a
# second clean clone on the same machine rebuilds from cache in seconds.
set -uo pipefail
cd "$(dirname "$0")/.."

KUBO_VERSION=v0.43.1  # must match scripts/kubo-build/go.mod (test_engines.py checks)
GETH_MODULE=github.com/ethereum/go-ethereum
GETH_VERSION=v1.17.10

TOOLS=$PWD/.tools
BIN=$TOOLS/bin
mkdir -p "$BIN"

unavailable() {  # name, reason: remembered for the tests' skip message
  echo "$2" >"$TOOLS/$1.unavailable"
  echo "$1: $2"
}

# Whether $BIN/<exe> exists and reports the pinned version.
kubo_ok() { [ -x "$BIN/ipfs" ] && [ "$("$BIN/ipfs" version --number 2>/dev/null)" = "${KUBO_VERSION#v}" ]; }
geth_ok() { [ -x "$BIN/geth" ] && "$BIN/geth" version 2>/dev/null | grep -qx "Version: ${GETH_VERSION#v}-stable"; }

build_kubo() {
  # Not `go install github.com/ipfs/kubo/cmd/ipfs@VERSION`: Kubo's go.mod replaces
  # go-libp2p with a fork the module proxy does not serve. scripts/kubo-build
  # pins the same Kubo with the go-libp2p release that replaced the fork (see its
  # tools.go); its go.sum fixes every module's checksum.
  (cd scripts/kubo-build &&
    nice -n 10 go build -mod=readonly -trimpath -buildvcs=false -o "$BIN/ipfs.partial" \
      github.com/ipfs/kubo/cmd/ipfs) &&
    mv "$BIN/ipfs.partial" "$BIN/ipfs"
}

build_geth() {
  GOBIN=$BIN nice -n 10 go install -trimpath -buildvcs=false "$GETH_MODULE/cmd/geth@$GETH_VERSION"
}

provision_go_tool() {  # name, check, build
  local name=$1 check=$2 build=$3 start
  if $check; then
    rm -f "$TOOLS/$name.unavailable"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    unavailable "$name" "no Go toolchain on this machine: $name was not built (the tests that need it skip)"
    return 0
  fi
  echo "$name: building the pinned version with $(go version | cut -d' ' -f3) (a few minutes, once)"
  start=$SECONDS
  if $build && $check; then
    rm -f "$TOOLS/$name.unavailable"
    echo "$name: built in $((SECONDS - start)) s"
  else
    unavailable "$name" "building the pinned $name failed (see make setup's output); the tests that need it skip"
  fi
}

provision_go_tool kubo kubo_ok build_kubo
provision_go_tool geth geth_ok build_geth

# PostgreSQL: the tests run a private cluster with the server's initdb and pg_ctl.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgresql: installing Debian's postgresql package (initdb and pg_ctl for the tests)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } ||
      echo "postgresql: the install failed: the PostgreSQL tests will skip."
  else
    echo "postgresql: the server (initdb, pg_ctl) is not installed and needs root and apt: the PostgreSQL tests will skip."
  fi
fi
exit 0
