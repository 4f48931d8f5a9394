#!/usr/bin/env bash
# Build (once) and start Google's in-memory Pub/Sub server on 127.0.0.1:PORT, in the background.
#
# Usage: start.sh PORT
# The binary is cached in ${PIVOTWATCH_CACHE:-$HOME/.cache/pivotwatch}/pstest-<hash>,
# where the hash covers go.mod, go.sum and main.go, so a change to any of them rebuilds it.
# Pid and log go to ${TMPDIR:-/tmp}/pivotwatch-pstest-PORT. Clients reach the server
# with PUBSUB_EMULATOR_HOST=127.0.0.1:PORT. Stop it with stop.sh PORT.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${PIVOTWATCH_CACHE:-${HOME:-/tmp}/.cache/pivotwatch}"
start_timeout="${PSTEST_START_TIMEOUT:-30}"

log() { echo "pstest/start.sh: $*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

port_is_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

build_binary() {
    local source_hash binary
    source_hash="$(cat "$script_dir/go.mod" "$script_dir/go.sum" "$script_dir/main.go" | sha256sum | cut -c1-16)"
    binary="$cache_root/pstest-$source_hash/pstest"
    if [[ ! -x "$binary" ]]; then
        command -v go >/dev/null || fail "go not found: building the Pub/Sub server needs Go (see go.mod for the version)"
        log "building $binary"
        mkdir -p "$(dirname "$binary")"
        # Build to a temporary name so an interrupted build never leaves a broken cached binary.
        (cd "$script_dir" && go build -o "$binary.tmp" .) >&2 || fail "go build failed in $script_dir"
        mv "$binary.tmp" "$binary"
    fi
    echo "$binary"
}

main() {
    local port="${1:-}" run_dir binary pid deadline
    [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) \
        || fail "invalid PORT '$port': expected a TCP port number from 1 to 65535 (usage: start.sh PORT)"
    run_dir="${TMPDIR:-/tmp}/pivotwatch-pstest-$port"

    binary="$(build_binary)"
    if [[ -f "$run_dir/pstest.pid" ]]; then
        log "a pid file from an earlier start exists in $run_dir; stopping that server first"
        "$script_dir/stop.sh" "$port"
    fi
    port_is_open "$port" && fail "port 127.0.0.1:$port is already in use by another process; choose a free PORT"

    mkdir -p "$run_dir"
    # setsid keeps the server out of the caller's process group (see scripts/kafka/start.sh).
    setsid "$binary" -port "$port" </dev/null >"$run_dir/pstest.log" 2>&1 &
    pid=$!
    echo "$pid" >"$run_dir/pstest.pid"

    deadline=$((SECONDS + start_timeout))
    until port_is_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            log "the Pub/Sub server did not accept connections on 127.0.0.1:$port within ${start_timeout} s; last lines of $run_dir/pstest.log:"
            tail -n 20 "$run_dir/pstest.log" >&2
            "$script_dir/stop.sh" "$port" || true
            exit 1
        fi
        sleep 0.2
    done
    log "Pub/Sub server (pid $pid) is ready on 127.0.0.1:$port"
    echo "127.0.0.1:$port"
}

main "$@"
