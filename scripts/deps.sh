#!/bin/sh
# Installs the Debian packages quoterd builds, tests and runs with, when
# any is missing. Used by `make deps`, which `make run`, `make test` and
# `make cluster` call; `make bench` calls it as `deps.sh bench`, which
# installs only what building and bench/run.py need.
#
#   deps.sh [--list] [bench]
#
# --list prints the packages one a line, installed or not, and installs
# nothing.
set -eu
list=0
which=all
for arg; do
	case $arg in
	--list) list=1 ;;
	bench) which=bench ;;
	*)
		echo "usage: deps.sh [--list] [bench]" >&2
		exit 2
		;;
	esac
done
# Building the programs (make all): compiler, generators, libraries.
pkgs="build-essential pkg-config libgrpc-dev libprotobuf-c-dev grpc-proto libprotobuf-dev
protobuf-c-compiler protobuf-compiler liblmdb-dev libssl-dev libxxhash-dev zlib1g-dev
libutf8proc-dev libmicrohttpd-dev"
if [ "$which" = bench ]; then
	# bench/run.py: python3 (standard library only), h2load, gnuplot,
	# and valgrind (callgrind's instruction counts).
	pkgs="$pkgs python3 nghttp2-client gnuplot-nox valgrind"
else
	# By line: unit tests, fuzzing and formatting, metrics (promtool
	# checks the rules), tests (strace injects faults into workers); man
	# pages, the Debian package and the systemd unit; nginx, python3-yaml,
	# curl and openssl for the scale-out tests and scripts/cluster
	# (openssl also makes the TLS tests' certificates).
	pkgs="$pkgs lmdb-utils libcmocka-dev
clang libclang-rt-14-dev clang-format
prometheus
python3 python3-grpcio python3-grpc-tools python3-pytest strace
git mandoc man-db lintian debhelper systemd
nginx python3-yaml curl openssl"
fi
if [ "$list" = 1 ]; then
	printf '%s\n' $pkgs
	exit 0
fi
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
