#!/bin/sh
# Installs the Debian packages quoterd builds, tests and runs with, when
# any is missing. Used by `make deps`, which `make run`, `make test` and
# `make cluster` call. By line: build, fuzz and formatting, metrics
# (promtool checks the rules), tests (strace injects faults into
# workers); man pages, the Debian package and the systemd unit; nginx,
# python3-yaml, curl and openssl for the scale-out tests and
# scripts/cluster (openssl also makes the TLS tests' certificates).
set -eu
pkgs="build-essential pkg-config libgrpc-dev libprotobuf-c-dev grpc-proto libprotobuf-dev
protobuf-c-compiler protobuf-compiler liblmdb-dev lmdb-utils libcmocka-dev libssl-dev
libxxhash-dev zlib1g-dev libutf8proc-dev
clang libclang-rt-14-dev clang-format
libmicrohttpd-dev prometheus
python3 python3-grpcio python3-grpc-tools python3-pytest strace
git mandoc man-db lintian debhelper systemd
nginx python3-yaml curl openssl"
# bench/run.py runs h2load, gnuplot and valgrind (metrics on and off).
[ "${1:-}" = bench ] && pkgs="$pkgs nghttp2-client gnuplot-nox valgrind"
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
# Some packages (nginx) start a system service when installed; the tests
# start their own, on loopback ports of their own, so keep those still.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi
# The package lists of a fresh machine may be missing or stale.
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
