#!/usr/bin/env bash
# Start a single-node Apache Kafka broker in KRaft mode on 127.0.0.1, in the background.
#
# The broker jars come from Maven Central through pom.xml beside this script and are
# cached in ${PIVOTWATCH_CACHE:-$HOME/.cache/pivotwatch}/kafka-<version>. Every start
# formats a new, empty log directory, so no topic or offset survives a restart.
#
# Environment:
#   KAFKA_PORT             PLAINTEXT listener port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default: a free port)
#   KAFKA_RUN_DIR          folder for config, data, pid and log
#                          (default ${TMPDIR:-/tmp}/pivotwatch-kafka-$KAFKA_PORT)
#   KAFKA_HEAP_OPTS        JVM heap options (default "-Xms256m -Xmx1g")
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to serve metadata (default 120)
#   KAFKA_PYTHON           Python with kafka-python, used for the readiness check
#
# Prints the bootstrap address on the last line of stdout. Stop it with stop.sh and the
# same KAFKA_PORT / KAFKA_RUN_DIR.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$script_dir/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_RUN_DIR="${KAFKA_RUN_DIR:-${TMPDIR:-/tmp}/pivotwatch-kafka-$KAFKA_PORT}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
cache_root="${PIVOTWATCH_CACHE:-${HOME:-/tmp}/.cache/pivotwatch}"

log() { echo "kafka/start.sh: $*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

port_is_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$script_dir/pom.xml" | head -n 1
}

# Copy the broker jars into the cache, unless a complete earlier copy is already there.
fetch_jars() {
    local lib_dir="$1"
    if [[ -f "$lib_dir/.complete" ]]; then
        return
    fi
    command -v mvn >/dev/null || fail "mvn not found: install Maven (apt-get install maven) to fetch the Kafka jars"
    log "fetching Kafka jars from Maven Central into $lib_dir"
    rm -rf "$lib_dir"
    mkdir -p "$lib_dir"
    mvn -q -B -Dstyle.color=never -f "$script_dir/pom.xml" \
        dependency:copy-dependencies -DoutputDirectory="$lib_dir" -DincludeScope=runtime \
        >&2 || fail "mvn dependency:copy-dependencies failed for $script_dir/pom.xml"
    touch "$lib_dir/.complete"
}

# A broker that an earlier start.sh left running with the same run folder is stopped first.
stop_previous() {
    if [[ -f "$KAFKA_RUN_DIR/kafka.pid" ]]; then
        log "a pid file from an earlier start exists in $KAFKA_RUN_DIR; stopping that broker first"
        KAFKA_PORT="$KAFKA_PORT" KAFKA_RUN_DIR="$KAFKA_RUN_DIR" "$script_dir/stop.sh"
    fi
    if port_is_open "$KAFKA_PORT"; then
        fail "port 127.0.0.1:$KAFKA_PORT is already in use by another process; set KAFKA_PORT to a free port"
    fi
    if port_is_open "$KAFKA_CONTROLLER_PORT"; then
        fail "controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is already in use; set KAFKA_CONTROLLER_PORT to a free port"
    fi
}

write_server_properties() {
    cat >"$KAFKA_RUN_DIR/server.properties" <<EOF
# Written by scripts/kafka/start.sh: one process is both broker and KRaft controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$KAFKA_RUN_DIR/data

# A single node cannot replicate: every internal topic gets one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1

# Fewer internal partitions than the defaults (50) so the first consumer group starts fast.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8

# Test-friendly group and topic behaviour.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.partitions=4
delete.topic.enable=true
EOF
}

write_log4j_config() {
    cat >"$KAFKA_RUN_DIR/log4j2.properties" <<'EOF'
# Written by scripts/kafka/start.sh: everything goes to stdout, which start.sh sends to kafka.log.
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
}

format_storage() {
    local classpath="$1" cluster_id
    cluster_id="$(java -cp "$classpath" kafka.tools.StorageTool random-uuid)"
    # Kafka 4 starts only from a formatted log directory. --standalone makes this node the
    # only voter of a dynamic KRaft quorum.
    java -cp "$classpath" -Dlog4j2.configurationFile="$KAFKA_RUN_DIR/log4j2.properties" \
        kafka.tools.StorageTool format --standalone \
        --cluster-id "$cluster_id" --config "$KAFKA_RUN_DIR/server.properties" \
        >"$KAFKA_RUN_DIR/format.log" 2>&1 \
        || fail "formatting $KAFKA_RUN_DIR/data failed: $(tail -n 20 "$KAFKA_RUN_DIR/format.log")"
}

launch_broker() {
    local classpath="$1"
    # setsid keeps the broker out of the caller's process group, so a Ctrl-C in the
    # terminal reaches the caller, whose cleanup then runs stop.sh.
    # shellcheck disable=SC2086 # KAFKA_HEAP_OPTS holds several JVM flags.
    setsid java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_RUN_DIR/log4j2.properties" \
        -cp "$classpath" kafka.Kafka "$KAFKA_RUN_DIR/server.properties" \
        </dev/null >"$KAFKA_RUN_DIR/kafka.log" 2>&1 &
    echo $! >"$KAFKA_RUN_DIR/kafka.pid"
}

find_python_with_kafka() {
    local candidate
    for candidate in "${KAFKA_PYTHON:-}" "$repo_dir/.venv/bin/python" /tmp/venv/bin/python python3; do
        if [[ -n "$candidate" ]] && "$candidate" -c 'import kafka' >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
}

# Succeed when the broker returns cluster metadata that lists at least one broker.
broker_serves_metadata() {
    local python="$1"
    if [[ -z "$python" ]]; then
        # Without kafka-python, the broker's own start-up line is the signal.
        port_is_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_RUN_DIR/kafka.log"
        return
    fi
    "$python" - "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 <<'EOF'
import sys

from kafka import KafkaAdminClient

admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
try:
    admin.list_topics()
    brokers = admin.describe_cluster()["brokers"]
finally:
    admin.close()
sys.exit(0 if brokers else 1)
EOF
}

wait_until_ready() {
    local pid="$1" python deadline
    python="$(find_python_with_kafka)"
    deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "the broker process $pid exited during start-up; last lines of $KAFKA_RUN_DIR/kafka.log:"
            tail -n 40 "$KAFKA_RUN_DIR/kafka.log" >&2
            rm -f "$KAFKA_RUN_DIR/kafka.pid"
            exit 1
        fi
        if port_is_open "$KAFKA_PORT" && broker_serves_metadata "$python"; then
            return
        fi
        sleep 0.5
    done
    log "the broker did not serve metadata on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT} s; last lines of $KAFKA_RUN_DIR/kafka.log:"
    tail -n 40 "$KAFKA_RUN_DIR/kafka.log" >&2
    KAFKA_PORT="$KAFKA_PORT" KAFKA_RUN_DIR="$KAFKA_RUN_DIR" "$script_dir/stop.sh" || true
    exit 1
}

main() {
    local version lib_dir started_at
    command -v java >/dev/null || fail "java not found: Kafka $(kafka_version) needs Java 17 or later"
    version="$(kafka_version)"
    [[ -n "$version" ]] || fail "no <kafka.version> found in $script_dir/pom.xml"
    lib_dir="$cache_root/kafka-$version"
    KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$(pick_free_port)}"

    fetch_jars "$lib_dir"
    stop_previous

    started_at=$SECONDS
    rm -rf "$KAFKA_RUN_DIR/data"
    mkdir -p "$KAFKA_RUN_DIR"
    write_server_properties
    write_log4j_config
    format_storage "$lib_dir/*"
    launch_broker "$lib_dir/*"

    log "started Kafka $version (pid $(cat "$KAFKA_RUN_DIR/kafka.pid")), log in $KAFKA_RUN_DIR/kafka.log; waiting for it to serve metadata"
    wait_until_ready "$(cat "$KAFKA_RUN_DIR/kafka.pid")"
    log "Kafka $version is ready on 127.0.0.1:$KAFKA_PORT after $((SECONDS - started_at)) s"
    echo "127.0.0.1:$KAFKA_PORT"
}

main "$@"
