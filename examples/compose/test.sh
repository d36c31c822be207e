#!/usr/bin/env bash
# The compose demo's test (make test-compose, run by .ci/run): builds the
# images, brings the demo up with the tour, checks the tour's outcomes as the
# gateways answered them and as their audit trails recorded them, tears the
# demo down and checks that no container, network or volume of it is left.
#
# Without a Docker engine it says so and exits 0: it was not run, it did not
# pass. Ends with "compose demo test: N passed, M failed"; exits 1 on a failure.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROJECT=svidgate-demo

if ! docker info >/dev/null 2>&1; then
	echo "compose demo test: not run (no Docker engine)"
	exit 0
fi

LOG=$(mktemp -d "${TMPDIR:-/tmp}/svidgate-compose-test.XXXXXX")
passed=0
failed=0
check() { # check DESCRIPTION CMD...
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then
		passed=$((passed + 1))
		echo "ok    $what"
	else
		failed=$((failed + 1))
		echo "FAIL  $what"
	fi
}
has() { grep -qF -- "$1" "$LOG/up.log"; }
finish() {
	echo "compose demo test: $passed passed, $failed failed  (logs in $LOG)"
	[ "$failed" -eq 0 ]
	exit
}
teardown() { "$HERE/demo.sh" down >"$LOG/down.log" 2>&1; }
trap 'teardown' EXIT

echo "compose demo test: building the images (make demo-compose-images)"
t0=$SECONDS
if ! make -C "$ROOT" --no-print-directory demo-compose-images >"$LOG/build.log" 2>&1; then
	tail -n 30 "$LOG/build.log"
	check "images build" false
	finish
fi
check "images build ($((SECONDS - t0))s)" true

echo "compose demo test: demo.sh up (bounded waits; transcript in $LOG/up.log)"
t0=$SECONDS
# The whole up is bounded too, in case compose itself hangs.
timeout 600 "$HERE/demo.sh" up >"$LOG/up.log" 2>&1
rc=$?
cat "$LOG/up.log"
check "demo.sh up and the tour exit 0 ($((SECONDS - t0))s)" test "$rc" -eq 0

# What the gateways answered, as the tour printed it.
check "1. web → httpecho: 200 with web's identity in XFCC" has "✓ httpecho received X-Forwarded-Client-Cert: By=spiffe://example.org/demo/httpecho-gw;URI=spiffe://example.org/demo/web"
check "2. batch → httpecho: 403" has "✓ 403 Forbidden: forbidden: no rule matched"
check "3. web → grpcecho UnaryCall: OK" has "✓ OK; grpcecho received X-Forwarded-Client-Cert"
check "4. web → grpcecho EmptyCall: PermissionDenied" has "✓ PermissionDenied"
check "5. edge without a token: 401" has "✓ without a token: 401 Unauthorized"
check "5. edge with the partner's JWT-SVID: 200" has "✓ with the JWT-SVID: 200 OK"
check "5. httpecho saw the edge as the caller" has "URI=spiffe://example.org/demo/edge"
check "6. burst over two replicas limited by one Redis bucket" grep -qE "✓ [0-5] passed, ([5-9]|10) got 429" "$LOG/up.log"
check "6. both replicas refused with Retry-After" has "✓ every replica refused some"
check "7. audit records of the tour's outcomes" test "$(grep -c '✓ .*\.jsonl: ' "$LOG/up.log")" -ge 5
check "7. every audit trail verifies" has "✓ svidgate audit verify httpecho-gw.jsonl: ok:"
check "7. service graph printed" has "edges: who called whom"
check "no unexpected result in the tour" bash -c "! grep -q 'UNEXPECTED' '$LOG/up.log'"

# The audit trail once more, from the host, with svidgate's own CLI in the
# sidecar's container.
compose=(docker compose)
docker compose version >/dev/null 2>&1 || compose=(docker-compose)
ex() { "${compose[@]}" -p "$PROJECT" -f "$HERE/compose.yaml" exec -T "$@"; }
ex httpecho-gw /svidgate audit query /audit/httpecho-gw.jsonl /audit/httpecho-b-gw.jsonl -decision limited -json >"$LOG/limited.jsonl" 2>&1
check "audit query finds the limited requests" grep -q '"rule":"web-pulls-reports"' "$LOG/limited.jsonl"
ex edge /svidgate audit query /audit/edge.jsonl -caller 'spiffe://example.org/demo/partner' -json >"$LOG/edge.jsonl" 2>&1
check "audit query finds the partner at the edge" grep -q '"sub":"spiffe://example.org/demo/partner"' "$LOG/edge.jsonl"
# Every trail is 0600 and owned by its gateway's uid: read them as root in a
# one-off container of the tour-audit service.
for f in httpecho-gw httpecho-b-gw grpcecho-gw web-gw batch-gw edge; do
	check "audit verify $f.jsonl" "${compose[@]}" -p "$PROJECT" -f "$HERE/compose.yaml" run --rm -T \
		--entrypoint /svidgate tour-audit audit verify "/audit/$f.jsonl"
done

echo "compose demo test: make demo-compose-down"
trap - EXIT
make -C "$ROOT" --no-print-directory demo-compose-down >"$LOG/down.log" 2>&1
check "demo-compose-down exits 0" test $? -eq 0
label="label=com.docker.compose.project=$PROJECT"
check "no container left" test -z "$(docker ps -aq --filter "$label")"
check "no network left" test -z "$(docker network ls -q --filter "$label")"
check "no volume left" test -z "$(docker volume ls -q --filter "$label")"
finish
