#!/usr/bin/env bash
# Registers a workload with the SPIRE server of DIR, parented to its agent.
# Does nothing when an entry for SPIFFE_ID with the same selectors exists.
#
#   spire/register.sh DIR SPIFFE_ID SELECTOR [SELECTOR...]
#   spire/register.sh .demo/spire spiffe://example.org/web unix:path:/abs/path/svidgate
#
# Environment: X509_SVID_TTL (seconds; default: the server's, 1h).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] || die "usage: $(basename "$0") DIR SPIFFE_ID SELECTOR [SELECTOR...]"
DIR=$(cd "$1" && pwd)
ID=$2
shift 2
# shellcheck disable=SC1091
. "$DIR/env"
need_bins

show=(entry show -socketPath "$SERVER_SOCKET" -spiffeID "$ID")
create=(entry create -socketPath "$SERVER_SOCKET" -parentID "$NODE_ID" -spiffeID "$ID")
for sel in "$@"; do
	show+=(-selector "$sel")
	create+=(-selector "$sel")
done
existing=$("$SPIRE_BIN/spire-server" "${show[@]}" 2>/dev/null || true)
if grep -q '^Entry ID' <<<"$existing"; then
	echo "spire: $ID already registered ($*)"
	exit 0
fi
if [ -n "${X509_SVID_TTL:-}" ]; then
	create+=(-x509SVIDTTL "$X509_SVID_TTL")
fi
"$SPIRE_BIN/spire-server" "${create[@]}" >/dev/null
echo "spire: registered $ID ($*)"
