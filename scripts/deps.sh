#!/usr/bin/env bash
# Installs the Debian packages that make needs, when they are missing, so that
# `make demo` and `make test` work on a fresh machine:
#   deps.sh build   gcc and libc6-dev: spire-server uses cgo (sqlite) and is
#                   linked statically; go test -race needs cgo too
#   deps.sh test    the same and redis-server (the rate-limit tests run a real one)
set -euo pipefail

need=()
if ! command -v gcc >/dev/null 2>&1; then
	need+=(gcc libc6-dev)
elif [ ! -e "$(gcc -print-file-name=libc.a)" ]; then
	need+=(libc6-dev)
fi
if [ "${1:-build}" = test ] && ! command -v redis-server >/dev/null 2>&1; then
	need+=(redis-server)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "missing: ${need[*]} (Debian package names); install them and run make again" >&2
	exit 1
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
	sudo=sudo
fi
echo "installing ${need[*]} (apt-get)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
