# shellcheck shell=bash
# Helpers shared by spire/*.sh. Sourced, not run.
#
# A SPIRE directory DIR, made by up.sh, holds:
#   server.conf agent.conf   rendered from the templates next to this file
#   server.sock agent.sock   the server API and the Workload API
#   data/                    server datastore and keys, agent SVID and keys
#   logs/                    server.log agent.log
#   pids/                    server.pid agent.pid (each a process group leader)
#   env                      shell variables describing the above

SPIRE_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SPIRE_ROOT=$(dirname "$SPIRE_SCRIPTS")
SPIRE_BIN=${SPIRE_BIN:-$SPIRE_ROOT/bin/spire}

die() { echo "spire: $*" >&2; exit 1; }

# spire_dir DIR: prints DIR as an absolute path, creating it.
spire_dir() {
	[ -n "${1:-}" ] || die "usage: $(basename "$0") DIR"
	mkdir -p "$1" && (cd "$1" && pwd)
}

need_bins() {
	local b
	for b in spire-server spire-agent; do
		[ -x "$SPIRE_BIN/$b" ] || die "$SPIRE_BIN/$b not found: run 'make spire' (builds SPIRE from spire/tools)"
	done
}

# alive PIDFILE: true when the process named in PIDFILE runs.
alive() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	kill -0 "$pid" 2>/dev/null
}

# stop PIDFILE NAME: SIGTERM to the process group, SIGKILL after 10 s.
stop() {
	local pidfile=$1 name=$2 pid i
	if ! alive "$pidfile"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(cat "$pidfile")
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "spire: $name ($pid) ignored SIGTERM for 10s, sending SIGKILL" >&2
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

# wait_for SECONDS WHAT CMD...: runs CMD every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for i in $(seq $((secs * 5))); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}
