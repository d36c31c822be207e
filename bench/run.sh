#!/usr/bin/env bash
# make bench: svidgate against nginx and HAProxy on this machine, over loopback.
# BENCH_QUICK=1 for a ~3-minute smoke run (1 round, short windows).
# Extra flags go to bench/runner (e.g. -variants b,d -cells h1,h1knee -rounds 5).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=bench/out
BIN=$OUT/bin

if [ "$(nproc)" -lt 2 ]; then
	echo "bench: needs 2 cores (proxy on core 0, load generator and backend on core 1)" >&2
	exit 1
fi
for tool in taskset; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing (util-linux)" >&2; exit 1; }
done
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
	echo "bench: installing nginx and haproxy (Debian packages)" >&2
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y nginx haproxy
fi
# The packages start system services on install; the benchmark runs its own copies.
for svc in nginx haproxy; do
	if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
		echo "bench: note: the system $svc service is running; it is not used and may cost CPU" >&2
	fi
done

# 10,000 idle connections need more than 10,000 descriptors on each side.
# HAProxy wants two descriptors per connection (client and server side) for its maxconn.
ulimit -n 100000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 30000 ]; then
	echo "bench: note: ulimit -n is $(ulimit -n); the 10k idle-connection cell may fail (raise the hard limit)" >&2
fi

mkdir -p "$BIN" "$OUT/logs"
echo "bench: building" >&2
if [ -n "${SVIDGATE_BIN:-}" ]; then
	# A prebuilt svidgate (e.g. of another commit) instead of the working tree's.
	cp "$SVIDGATE_BIN" "$BIN/svidgate"
else
	$GO build -o "$BIN/svidgate" ./cmd/svidgate
fi
$GO build -o "$BIN/" ./bench/loadgen ./bench/backend ./bench/fakeagent ./bench/certs ./bench/runner

exec "$BIN/runner" -dir "$OUT" -bin "$BIN" "$@"
