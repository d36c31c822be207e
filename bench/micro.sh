#!/usr/bin/env bash
# make bench-micro: Go benchmarks of the per-request hot path, as a table.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
PKGS=${BENCH_PKGS:-"./policy/... ./internal/... ./bench/handlerbench/..."}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
# shellcheck disable=SC2086
$GO test -run XXX -bench . -benchmem -count "${BENCH_COUNT:-1}" $PKGS | tee "$raw" >&2
echo
printf '| package | benchmark | ns/op | B/op | allocs/op |\n|---|---|---|---|---|\n'
awk '
/^pkg: / { pkg = $2; sub("github.com/svidgate/svidgate/", "", pkg) }
/^Benchmark/ {
	ns = "-"; b = "-"; a = "-"
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "ns/op") ns = $i
		if ($(i+1) == "B/op") b = $i
		if ($(i+1) == "allocs/op") a = $i
	}
	name = $1; sub(/-[0-9]+$/, "", name)
	printf "| %s | %s | %s | %s | %s |\n", pkg, name, ns, b, a
}' "$raw"
