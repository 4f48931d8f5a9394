#!/usr/bin/env bash
# Stop the broker that start.sh started with the same KAFKA_PORT / KAFKA_RUN_DIR.
#
# Sends SIGTERM, waits up to KAFKA_STOP_TIMEOUT seconds (default 30) for a clean
# shutdown, then sends SIGKILL. The log stays in the run folder, but the data folder is removed.
# Exits 0 when no broker from that run folder is running.
set -euo pipefail

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-${TMPDIR:-/tmp}/pivotwatch-kafka-$KAFKA_PORT}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
pid_file="$KAFKA_RUN_DIR/kafka.pid"

log() { echo "kafka/stop.sh: $*" >&2; }

# The pid may have been reused after a crash, so only a kafka.Kafka process that was
# started with this run folder's config counts as ours.
is_our_broker() {
    local pid="$1"
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $KAFKA_RUN_DIR/server.properties"
}

main() {
    local pid deadline
    if [[ ! -f "$pid_file" ]]; then
        log "no pid file at $pid_file: nothing to stop"
        return
    fi
    pid="$(cat "$pid_file")"
    if ! is_our_broker "$pid"; then
        log "process $pid from $pid_file is not running (or is not this broker): nothing to stop"
        rm -f "$pid_file"
        return
    fi

    kill -TERM "$pid"
    deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while is_our_broker "$pid" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if is_our_broker "$pid"; then
        log "broker $pid did not stop within ${KAFKA_STOP_TIMEOUT} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi

    rm -f "$pid_file"
    rm -rf "$KAFKA_RUN_DIR/data"
    log "stopped broker $pid (log kept in $KAFKA_RUN_DIR/kafka.log)"
}

main "$@"
