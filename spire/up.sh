#!/usr/bin/env bash
# Starts a SPIRE server and one agent on loopback in DIR, attests the agent
# with a join token and waits until both are healthy.
#
#   spire/up.sh DIR
#
# Environment: SPIRE_BIN (default bin/spire), TRUST_DOMAIN (example.org),
# SPIRE_SERVER_PORT (28081). Idempotent: what already runs is left alone. A DIR
# whose agent was attested before restarts it from its data_dir: no new join
# token is needed. Stop with spire/down.sh DIR.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

DIR=$(spire_dir "${1:-}")
TRUST_DOMAIN=${TRUST_DOMAIN:-example.org}
SERVER_PORT=${SPIRE_SERVER_PORT:-28081}
# The join token attestor names the agent spiffe://TD/spire/agent/join_token/<token>;
# the token also creates this alias, the parent of every workload entry.
NODE_ID=spiffe://$TRUST_DOMAIN/node/agent
need_bins

mkdir -p "$DIR/data/server" "$DIR/data/agent" "$DIR/logs" "$DIR/pids"
render() {
	sed -e "s|@DIR@|$DIR|g" -e "s|@SERVER_PORT@|$SERVER_PORT|g" \
		-e "s|@TRUST_DOMAIN@|$TRUST_DOMAIN|g" -e "s|@AGENT@|agent|g" \
		"$SPIRE_SCRIPTS/$1.conf.tmpl" >"$DIR/$1.conf"
}
render server
render agent

cat >"$DIR/env" <<ENV
SPIRE_DIR=$DIR
SPIRE_BIN=$SPIRE_BIN
TRUST_DOMAIN=$TRUST_DOMAIN
SERVER_SOCKET=$DIR/server.sock
AGENT_SOCKET=$DIR/agent.sock
NODE_ID=$NODE_ID
ENV

# setsid: each daemon leads its own process group, so down.sh stops all of it
# and a Ctrl-C in this terminal does not reach it.
if alive "$DIR/pids/server.pid"; then
	echo "spire: spire-server already runs in $DIR (pid $(cat "$DIR/pids/server.pid"))"
else
	setsid "$SPIRE_BIN/spire-server" run -config "$DIR/server.conf" >>"$DIR/logs/server.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/server.pid"
fi
if ! wait_for 30 "server" "$SPIRE_BIN/spire-server" healthcheck -socketPath "$DIR/server.sock"; then
	tail -n 20 "$DIR/logs/server.log" >&2 || true
	die "spire-server did not become healthy within 30s (log: $DIR/logs/server.log)"
fi

args=(run -config "$DIR/agent.conf")
if alive "$DIR/pids/agent.pid"; then
	echo "spire: spire-agent already runs in $DIR (pid $(cat "$DIR/pids/agent.pid"))"
	args=()
elif [ -s "$DIR/data/agent/agent-data.json" ]; then
	echo "spire: restarting the agent from $DIR/data/agent (no join token)"
else
	out=$("$SPIRE_BIN/spire-server" token generate -socketPath "$DIR/server.sock" \
		-spiffeID "$NODE_ID" -ttl 600) || die "could not generate a join token"
	token=$(awk '/^Token:/ {print $2}' <<<"$out")
	[ -n "$token" ] || die "unexpected output of token generate: $out"
	args+=(-joinToken "$token")
fi
if [ ${#args[@]} -gt 0 ]; then
	setsid "$SPIRE_BIN/spire-agent" "${args[@]}" >>"$DIR/logs/agent.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/agent.pid"
fi
if ! wait_for 30 "agent" "$SPIRE_BIN/spire-agent" healthcheck -socketPath "$DIR/agent.sock"; then
	tail -n 20 "$DIR/logs/agent.log" >&2 || true
	die "spire-agent did not become healthy within 30s (log: $DIR/logs/agent.log)"
fi
echo "spire: server and agent up in $DIR (trust domain $TRUST_DOMAIN, Workload API unix://$DIR/agent.sock)"
