#!/usr/bin/env bash
# Builds the compose demo's three images FROM scratch out of binaries built on
# this host (make demo-compose-images builds them first into bin/static/):
#
#   svidgate-demo/spire:dev   spire-server (static, cgo sqlite) and spire-agent
#   svidgate-demo/app:dev     svidgate, httpecho, grpcecho, democlient, probe
#   svidgate-demo/redis:dev   redis-server with the libraries ldd lists, probe
#
# Nothing is pulled. Each image's build context is a staged root filesystem
# in bin/static/ctx/NAME (hard links, so staging costs nothing); Docker's
# layer cache makes a rebuild with unchanged binaries take seconds.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATIC=${STATIC:-$ROOT/bin/static}
TAG=${DEMO_TAG:-dev}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}

die() { echo "compose demo: $*" >&2; exit 1; }

for b in spire-server spire-agent svidgate httpecho grpcecho democlient probe; do
	[ -x "$STATIC/$b" ] || die "$STATIC/$b missing: run 'make demo-compose-images'"
	if ldd "$STATIC/$b" >/dev/null 2>&1; then
		die "$STATIC/$b is dynamically linked; a FROM scratch image needs a static binary"
	fi
done
[ -n "$REDIS_SERVER" ] || die "redis-server not found: apt-get install -y redis-server"

# stage NAME: an empty root filesystem in bin/static/ctx/NAME/rootfs.
stage() {
	rm -rf "$STATIC/ctx/$1"
	mkdir -p "$STATIC/ctx/$1/rootfs"
	mkdir -m 1777 "$STATIC/ctx/$1/rootfs/tmp"
	echo "$STATIC/ctx/$1/rootfs"
}
# put FILE DEST: hard-links (or copies) FILE to DEST, following symlinks.
put() {
	mkdir -p "$(dirname "$2")"
	ln -f "$(readlink -f "$1")" "$2" 2>/dev/null || cp -L "$1" "$2"
}

fs=$(stage spire)
put "$STATIC/spire-server" "$fs/spire-server"
put "$STATIC/spire-agent" "$fs/spire-agent"
mkdir -p "$fs/run/spire/server" "$fs/run/spire/agent" "$fs/var/lib/spire/server" "$fs/var/lib/spire/agent" "$fs/etc/spire"

fs=$(stage app)
for b in svidgate httpecho grpcecho democlient probe; do
	put "$STATIC/$b" "$fs/$b"
done
mkdir -m 1777 "$fs/audit"
mkdir -p "$fs/run/spire/agent" "$fs/etc/svidgate/gateways" "$fs/etc/svidgate/policies"

fs=$(stage redis)
put "$REDIS_SERVER" "$fs/usr/bin/redis-server"
put "$STATIC/probe" "$fs/probe"
# Every library ldd resolves, at the path it resolves to, and the loader.
while read -r lib; do
	put "$lib" "$fs$lib"
done < <(ldd "$REDIS_SERVER" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
mkdir -p "$fs/data"
chmod 1777 "$fs/data"

for img in spire app redis; do
	echo "compose demo: building svidgate-demo/$img:$TAG"
	# Quiet unless it fails (the legacy builder's deprecation notice included).
	if ! out=$(docker build -q -t "svidgate-demo/$img:$TAG" -f "$HERE/images/$img.Dockerfile" "$STATIC/ctx/$img" 2>&1); then
		echo "$out" >&2
		die "docker build of svidgate-demo/$img:$TAG failed"
	fi
done
docker images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^svidgate-demo/' | sort
