#!/usr/bin/env bash
# svidgate's docker compose demo (examples/compose/compose.yaml).
#
#   examples/compose/demo.sh up     # make demo-compose: start from scratch, register, wait, run the tour
#   examples/compose/demo.sh tour   # run the tour again against the running demo
#   examples/compose/demo.sh down   # make demo-compose-down: remove containers, networks, volumes
#
# The images must exist (make demo-compose-images). Compose is `docker compose`
# when that plugin answers, else the standalone `docker-compose`. Every wait is
# bounded; a failed `up` prints the logs of what failed and leaves the demo
# running for a look (`down` removes it).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=svidgate-demo
TD=example.org
NODE_ID=spiffe://$TD/node/agent
SERVER_SOCKET=/run/spire/server/api.sock
# uid → SPIFFE ID, as in compose.yaml's header.
ENTRIES=(
	"1001 spiffe://$TD/demo/httpecho-gw"
	"1002 spiffe://$TD/demo/grpcecho-gw"
	"1003 spiffe://$TD/demo/web"
	"1004 spiffe://$TD/demo/batch"
	"1005 spiffe://$TD/demo/edge"
	"1006 spiffe://$TD/demo/partner"
)
SERVICES=(spire-server spire-agent redis httpecho httpecho-gw httpecho-b httpecho-b-gw
	grpcecho grpcecho-gw web-gw batch-gw edge)
UP_TIMEOUT=${DEMO_UP_TIMEOUT:-120}

if [ -t 1 ]; then
	say() { printf '\033[1m%s\033[0m\n' "$*"; }
else
	say() { printf '%s\n' "$*"; }
fi
die() { echo "compose demo: $*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
	COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	COMPOSE=(docker-compose)
else
	die "neither 'docker compose' nor 'docker-compose' is installed"
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$HERE/compose.yaml" "$@"; }
server() { compose exec -T spire-server /spire-server "$@"; }

# health SERVICE: the container's health status (healthy, starting, unhealthy,
# or "none"/"missing").
health() {
	local id
	id=$(compose ps -q "$1" 2>/dev/null || true)
	[ -n "$id" ] || { echo missing; return; }
	docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing
}

# wait_healthy SECONDS SERVICE...: until every SERVICE is healthy.
wait_healthy() {
	local secs=$1 s pending deadline
	shift
	deadline=$((SECONDS + secs))
	while :; do
		pending=()
		for s in "$@"; do
			[ "$(health "$s")" = healthy ] || pending+=("$s")
		done
		[ ${#pending[@]} -eq 0 ] && return 0
		if [ $SECONDS -ge $deadline ]; then
			for s in "${pending[@]}"; do
				echo "compose demo: $s is $(health "$s") after ${secs}s; its last log lines:" >&2
				compose logs --no-color --tail 20 "$s" >&2 || true
			done
			return 1
		fi
		sleep 1
	done
}

down() {
	compose --profile tour down --volumes --remove-orphans --timeout 20 2>&1 | grep -v '^$' || true
	# Backstop: anything still labelled with the project (a one-off container
	# left by an interrupted run, say).
	local ids
	ids=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
	[ -z "$ids" ] || docker rm -f $ids >/dev/null
	ids=$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
	[ -z "$ids" ] || docker network rm $ids >/dev/null
	ids=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
	[ -z "$ids" ] || docker volume rm $ids >/dev/null
	echo "compose demo: removed (project $PROJECT)"
}

tour() {
	say "== the tour (democlient as the workload spiffe://$TD/demo/partner, uid 1006, in the client pod)"
	local since rc=0
	since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	compose run --rm -T tour || rc=$?
	TOUR_SINCE=$since compose run --rm -T tour-audit || rc=$?
	return "$rc"
}

up() {
	local img start=$SECONDS
	docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"
	for img in spire app redis; do
		docker image inspect "svidgate-demo/$img:${DEMO_TAG:-dev}" >/dev/null 2>&1 ||
			die "image svidgate-demo/$img:${DEMO_TAG:-dev} missing: run 'make demo-compose-images' (or 'make demo-compose')"
	done
	say "== a clean slate: removing what an earlier run left"
	down >/dev/null

	say "== SPIRE server"
	compose up -d spire-server
	wait_healthy 60 spire-server || die "spire-server did not become healthy"

	say "== registering workloads by uid (unix:uid:N), parented to the agent's join token alias"
	local e uid id out token
	for e in "${ENTRIES[@]}"; do
		read -r uid id <<<"$e"
		server entry create -socketPath "$SERVER_SOCKET" -parentID "$NODE_ID" \
			-spiffeID "$id" -selector "unix:uid:$uid" >/dev/null ||
			die "could not register $id"
		printf '   %-40s unix:uid:%s\n' "$id" "$uid"
	done
	out=$(server token generate -socketPath "$SERVER_SOCKET" -spiffeID "$NODE_ID" -ttl 600) ||
		die "could not generate a join token"
	token=$(awk '/^Token:/ {print $2}' <<<"$out")
	[ -n "$token" ] || die "unexpected output of token generate: $out"

	say "== SPIRE agent (join token), Redis, services, sidecars, edge"
	SPIRE_JOIN_TOKEN=$token compose up -d "${SERVICES[@]}"
	say "== waiting until every gateway holds its SVID (/readyz), at most ${UP_TIMEOUT}s"
	wait_healthy "$UP_TIMEOUT" "${SERVICES[@]}" || die "the demo did not come up; 'make demo-compose-down' removes it"
	compose ps
	echo "compose demo: up in $((SECONDS - start))s"

	local rc=0
	tour || rc=$?
	local c="${COMPOSE[*]} -p $PROJECT -f examples/compose/compose.yaml"
	cat <<INFO

$(say "== where to look")
  containers    $c ps
  logs          $c logs httpecho-gw
  status        $c exec -T httpecho-gw /probe -print http://127.0.0.1:9901/v1/status
  audit trail   $c exec -T httpecho-gw /svidgate audit query /audit/httpecho-gw.jsonl
  graph (live)  $c exec -T httpecho-gw /probe -print 'http://127.0.0.1:9901/graph?format=mermaid'
  live policy   edit examples/compose/policies/httpecho.toml (mounted read-only): both replicas' sidecars reload it
  tour again    examples/compose/demo.sh tour
  remove all    make demo-compose-down
INFO
	return "$rc"
}

case "${1:-}" in
up) up ;;
tour) tour ;;
down) down ;;
*) die "usage: $0 up|tour|down" ;;
esac
