#!/usr/bin/env bash
# Stops the SPIRE agent and server that spire/up.sh started in DIR. Data stays
# in DIR, so a later up.sh resumes; remove DIR to start from scratch.
#
#   spire/down.sh DIR
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

[ -n "${1:-}" ] || die "usage: $(basename "$0") DIR"
[ -d "$1" ] || exit 0
DIR=$(cd "$1" && pwd)
stop "$DIR/pids/agent.pid" spire-agent
stop "$DIR/pids/server.pid" spire-server
