#!/usr/bin/env bash
# Stop the Pub/Sub server that start.sh PORT started. Exits 0 when none is running.
#
# Usage: stop.sh PORT
set -euo pipefail

log() { echo "pstest/stop.sh: $*" >&2; }

main() {
    local port="${1:-}" run_dir pid_file pid
    [[ "$port" =~ ^[0-9]+$ ]] || { log "error: invalid PORT '$port': expected a TCP port number (usage: stop.sh PORT)"; exit 1; }
    run_dir="${TMPDIR:-/tmp}/pivotwatch-pstest-$port"
    pid_file="$run_dir/pstest.pid"
    if [[ ! -f "$pid_file" ]]; then
        log "no pid file at $pid_file: nothing to stop"
        return
    fi
    pid="$(cat "$pid_file")"
    rm -f "$pid_file"
    # The pid may have been reused after a crash, so only a pstest process on this port counts.
    if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "pstest -port $port "; then
        log "process $pid from $pid_file is not running (or is not this server): nothing to stop"
        return
    fi
    kill -TERM "$pid"
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped Pub/Sub server $pid"
}

main "$@"
