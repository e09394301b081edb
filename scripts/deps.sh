#!/bin/sh
# Installs the Debian packages quoterd builds, tests and runs with, when
# any is missing. Used by `make deps`, which `make run` and `make test` call.
set -eu
pkgs="build-essential pkg-config libgrpc-dev libprotobuf-c-dev grpc-proto libprotobuf-dev
protobuf-c-compiler protobuf-compiler liblmdb-dev lmdb-utils libcmocka-dev zlib1g-dev
clang libclang-rt-14-dev
python3 python3-grpcio python3-grpc-tools python3-pytest"
[ "${1:-}" = bench ] && pkgs="$pkgs nghttp2-client gnuplot-nox fortunes"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: not root; install these packages:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists of a fresh machine may be missing or stale.
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
