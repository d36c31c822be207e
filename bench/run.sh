#!/usr/bin/env bash
# make bench: svidgate against nginx and HAProxy on this machine, over loopback.
# BENCH_QUICK=1 for a ~3-minute smoke run (1 round, short windows).
# Extra flags go to bench/runner (e.g. -variants b,d -cells h1,h1knee -rounds 5).
# SVIDGATE_BIN=<path>: measure that svidgate build instead of the working tree's.
# BASELINE=<git rev> (or BASELINE_BIN=<path>): also run each svidgate variant with
# that build, as twins b@base and c@base in the same rounds, and compare them.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=bench/out
BIN=$OUT/bin

if [ -n "${BASELINE:-}" ] && [ -n "${BASELINE_BIN:-}" ]; then
	echo "bench: set BASELINE (a git revision) or BASELINE_BIN (a binary), not both" >&2
	exit 2
fi
if [ -n "${BASELINE:-}" ] && ! BASEREV=$(git rev-parse --short --verify --quiet "$BASELINE^{commit}"); then
	echo "bench: BASELINE=$BASELINE is not a commit of this repository" >&2
	exit 2
fi
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

# The baseline: svidgate of BASELINE, built from `git archive` in a temporary
# directory (the working tree and the index are left alone), or BASELINE_BIN.
BASEARGS=()
if [ -n "${BASELINE:-}" ]; then
	echo "bench: building the baseline, svidgate at $BASEREV" >&2
	BASETMP=$(mktemp -d)
	trap 'rm -rf "$BASETMP"' EXIT
	git archive "$BASEREV" | tar -x -C "$BASETMP"
	(cd "$BASETMP" && $GO build -o "$OLDPWD/$BIN/svidgate-base" ./cmd/svidgate)
	rm -rf "$BASETMP"
	trap - EXIT
	BASEARGS=(-baseline "$BIN/svidgate-base" -baseline-name "$BASELINE ($BASEREV)")
elif [ -n "${BASELINE_BIN:-}" ]; then
	cp "$BASELINE_BIN" "$BIN/svidgate-base"
	BASEARGS=(-baseline "$BIN/svidgate-base" -baseline-name "$BASELINE_BIN")
fi

exec "$BIN/runner" -dir "$OUT" -bin "$BIN" "${BASEARGS[@]}" "$@"
