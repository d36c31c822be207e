#!/usr/bin/env bash
# The local svidgate demo: SPIRE, two sample services behind inbound svidgate
# sidecars and two client workloads' outbound sidecars, all as local processes
# with state, logs and pidfiles in .demo/ of the repository.
#
#   examples/local/demo.sh up     # make demo: start, run the demo client, wait for Ctrl-C
#   examples/local/demo.sh down   # make demo-down: stop everything up started
#
# DEMO_DETACH=1 makes `up` return after the transcript and leave everything running.
#
#   web  ──▶ web-gw   :28001 ──mTLS──▶ httpecho-gw :28443 ──▶ httpecho :28080
#            web-gw   :28002 ──mTLS──▶ grpcecho-gw :28444 ──▶ grpcecho :28090
#   batch ─▶ batch-gw :28011 ──mTLS──▶ httpecho-gw (denied by policy)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEMO=$ROOT/.demo
TD=example.org
SERVICES=(httpecho grpcecho)
GATEWAYS=(httpecho-gw grpcecho-gw web-gw batch-gw)

if [ -t 1 ]; then
	say() { printf '\033[1m%s\033[0m\n' "$*"; }
else
	say() { printf '%s\n' "$*"; }
fi
die() { echo "demo: $*" >&2; exit 1; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pidfile FILE: SIGTERM to the process group, SIGKILL after 10 s.
stop_pidfile() {
	local f=$1 pid i
	alive "$f" || { rm -f "$f"; return 0; }
	pid=$(cat "$f")
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "demo: $(basename "$f" .pid) ignored SIGTERM, killing" >&2
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

down() {
	local name
	for name in "${GATEWAYS[@]}" "${SERVICES[@]}"; do
		stop_pidfile "$DEMO/pids/$name.pid"
	done
	"$ROOT/spire/down.sh" "$DEMO/spire"
}

# start NAME CMD...: runs CMD in its own session with its log and pidfile.
start() {
	local name=$1
	shift
	setsid "$@" >>"$DEMO/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$DEMO/pids/$name.pid"
}

wait_ready() {
	local name=$1 url=$2 i
	for i in $(seq 150); do
		if curl -fsS -o /dev/null "$url" 2>/dev/null; then
			return 0
		fi
		alive "$DEMO/pids/$name.pid" || break
		sleep 0.2
	done
	tail -n 20 "$DEMO/logs/$name.log" >&2 || true
	die "$name is not ready ($url); log: $DEMO/logs/$name.log"
}

up() {
	local name
	[ -x "$ROOT/bin/svidgate" ] || die "bin/svidgate missing: run 'make demo' (builds it)"
	for name in "${GATEWAYS[@]}" "${SERVICES[@]}"; do
		if alive "$DEMO/pids/$name.pid"; then
			die "the demo already runs ($name); stop it with 'make demo-down'"
		fi
	done
	mkdir -p "$DEMO"/{bin,logs,pids,etc/audit}
	trap 'echo; say "stopping the demo"; down; exit 0' INT TERM
	# A failed start leaves nothing behind.
	trap 'rc=$?; if [ "$rc" -ne 0 ]; then echo "demo: start failed, stopping what was started" >&2; down; fi' EXIT

	say "== SPIRE"
	# A stopped demo starts SPIRE afresh: the agent SVID kept in its data
	# directory may have expired since, and a join token is single-use.
	if ! alive "$DEMO/spire/pids/server.pid" && ! alive "$DEMO/spire/pids/agent.pid"; then
		rm -rf "$DEMO/spire"
	fi
	SPIRE_SERVER_PORT=28081 TRUST_DOMAIN=$TD "$ROOT/spire/up.sh" "$DEMO/spire"

	say "== building the sample services and the demo client"
	(cd "$ROOT" && go build -o "$DEMO/bin/httpecho" ./examples/services/httpecho &&
		go build -o "$DEMO/bin/grpcecho" ./examples/services/grpcecho &&
		go build -o "$DEMO/bin/democlient" ./examples/local/democlient)

	say "== workloads: one copy of svidgate per identity, registered by unix:path"
	rm -rf "$DEMO/etc/gateways" "$DEMO/etc/policies"
	cp -r "$HERE/gateways" "$HERE/policies" "$DEMO/etc/"
	declare -A ids=(
		[httpecho-gw]=demo/httpecho-gw [grpcecho-gw]=demo/grpcecho-gw
		[web-gw]=demo/web [batch-gw]=demo/batch
	)
	for name in "${GATEWAYS[@]}"; do
		mkdir -p "$DEMO/bin/$name"
		cp "$ROOT/bin/svidgate" "$DEMO/bin/$name/svidgate"
		"$ROOT/spire/register.sh" "$DEMO/spire" "spiffe://$TD/${ids[$name]}" "unix:path:$DEMO/bin/$name/svidgate"
	done

	say "== services and sidecars"
	start httpecho "$DEMO/bin/httpecho" -listen 127.0.0.1:28080
	start grpcecho "$DEMO/bin/grpcecho" -listen 127.0.0.1:28090
	for name in "${GATEWAYS[@]}"; do
		SPIFFE_ENDPOINT_SOCKET=unix://$DEMO/spire/agent.sock \
			start "$name" "$DEMO/bin/$name/svidgate" run -config "$DEMO/etc/gateways/$name.toml"
	done
	local port=29901
	for name in "${GATEWAYS[@]}"; do
		wait_ready "$name" "http://127.0.0.1:$port/readyz"
		echo "demo: $name ready (spiffe://$TD/${ids[$name]})"
		port=$((port + 1))
	done

	say "== demo client"
	local rc=0
	"$DEMO/bin/democlient" || rc=$?

	cat <<INFO

$(say "== where to look")
  audit trail   $DEMO/etc/audit/*.jsonl   (one JSON record per request)
  metrics       http://127.0.0.1:29901/metrics  (httpecho-gw; grpcecho-gw :29902, web-gw :29903, batch-gw :29904)
  status        http://127.0.0.1:29901/v1/status  (SVID, serial, expiry, policy sha256 and last reload)
  health        /healthz and /readyz on the same admin ports
  logs          $DEMO/logs/
  live policy   edit $DEMO/etc/policies/httpecho.toml (e.g. set batch's rule to mode = "enforce");
                svidgate reloads it, a broken file leaves the old policy in force
  try           curl -s http://127.0.0.1:28001/orders/7 | jq .xfcc
INFO
	if [ -n "${DEMO_DETACH:-}" ]; then
		trap - INT TERM EXIT
		echo "demo: left running; stop with 'make demo-down'"
		return "$rc"
	fi
	echo
	say "running; Ctrl-C stops everything (or 'make demo-down' from another terminal)"
	while :; do
		sleep 1 &
		wait $! || true
		for name in "${GATEWAYS[@]}" "${SERVICES[@]}"; do
			if ! alive "$DEMO/pids/$name.pid"; then
				echo "demo: $name stopped unexpectedly; log: $DEMO/logs/$name.log" >&2
				down
				exit 1
			fi
		done
	done
}

case "${1:-}" in
up) up ;;
down) down ;;
*) die "usage: $0 up|down" ;;
esac
