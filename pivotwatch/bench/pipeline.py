"""Measurements through Kafka: the raw client limit, pipeline throughput, latency, scaling.

Every phase uses topics and a consumer group new to it (`isolated_settings`), so one
broker serves the whole run and no phase sees another's records.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from pivotwatch.bench.generator import GeneratedRecord, GeneratorConfig, LoadGenerator
from pivotwatch.bench.kafka_load import PacedRun, produce_all, start_paced_producer
from pivotwatch.errors import BrokerError
from pivotwatch.settings import Settings
from pivotwatch.streams.app import Pipeline
from pivotwatch.streams.runner import OffsetWatcher, running_worker
from pivotwatch.streams.scenario import isolated_settings
from pivotwatch.streams.topics import ensure_topics

__all__ = [
    "LatencyResult",
    "RateResult",
    "ScalingResult",
    "measure_latency",
    "measure_pipeline",
    "measure_raw_limit",
    "measure_scaling",
    "phase_settings",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateResult:
    records: int
    bytes: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class LatencyResult:
    target_rate: float
    sent: int
    send_seconds: float
    chains: int
    """Chains whose closing record was sent."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from sending each chain's closing record to its alert on the alert topic."""
    drain_seconds: float = 0.0
    """Time after the last record was sent until every record was processed."""

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


@dataclass(frozen=True, slots=True)
class ScalingResult:
    workers: int
    records: int
    seconds: float
    """From 10 % of the raw records committed to all of them (start-up and group join excluded)."""

    @property
    def rate(self) -> float:
        return 0.9 * self.records / self.seconds if self.seconds else 0.0


def phase_settings(base: Settings, generator: LoadGenerator) -> Settings:
    """Fresh topics and group, and the fleet's cluster-to-account map, as a deployment sets it."""
    settings = isolated_settings(base)
    correlation = settings.correlation.model_copy(
        update={
            "cluster_accounts": {
                **settings.correlation.cluster_accounts,
                **generator.cluster_accounts(),
            }
        }
    )
    return settings.model_copy(update={"correlation": correlation})


async def measure_raw_limit(settings: Settings, expected: int) -> RateResult:
    """Consume every raw topic from the start with aiokafka alone, decoding each value (orjson)."""
    topics = list(settings.topics.raw_topics().values())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
        fetch_max_wait_ms=100,
        client_id="pivotwatch-bench-raw",
    )
    await consumer.start()
    try:
        # ensure_topics created every raw topic with this many partitions.
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in range(settings.topics.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count = 0
        size = 0
        started = time.perf_counter()
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if not batches and time.perf_counter() - started > 120:
                raise BrokerError(
                    f"the raw topics held {count} records after 120 s: expected {expected}"
                )
            for messages in batches.values():
                for message in messages:
                    orjson.loads(message.value)
                    size += len(message.value)
                count += len(messages)
        return RateResult(records=count, bytes=size, seconds=time.perf_counter() - started)
    finally:
        await consumer.stop()


async def measure_pipeline(
    settings: Settings, records: int, size: int, timeout: float
) -> RateResult:
    """Start a worker on topics that already hold ``records`` and time it until all are processed.

    The clock starts when the worker has its partitions and stops when the committed
    offsets of the raw topics, then of the events topic, reach the topics' ends.
    """
    pipeline = Pipeline(settings)
    watcher = OffsetWatcher(settings)
    raw_topics = list(settings.topics.raw_topics().values())
    try:
        async with running_worker(pipeline):
            started = time.perf_counter()
            await watcher.wait(raw_topics, timeout)
            await watcher.wait([settings.topics.events], timeout)
            seconds = time.perf_counter() - started
    finally:
        watcher.close()
    return RateResult(records=records, bytes=size, seconds=seconds)


async def _collect_alerts(settings: Settings, seen: dict[str, float], stop: asyncio.Event) -> None:
    """Record the wall-clock time each evidence id first appears in a pivot chain alert."""
    consumer = AIOKafkaConsumer(
        settings.topics.alerts,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        client_id="pivotwatch-bench-alerts",
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    alert = orjson.loads(message.value)
                    if alert.get("kind") != "pivot_chain":
                        continue
                    for evidence in alert.get("evidence", ()):
                        seen.setdefault(evidence["event_id"], now)
    finally:
        await consumer.stop()


async def measure_latency(
    settings: Settings, config: GeneratorConfig, rate: float, seconds: float, timeout: float
) -> LatencyResult:
    """Send records at ``rate`` per second for ``seconds`` to a worker and time each chain's alert.

    The inventory is sent and processed first. A child process sends the records; this
    process runs the worker and a consumer of the alert topic. A chain's latency runs
    from just before its closing record (the ``StopLogging`` call) was handed to the
    producer to the moment the consumer received the first pivot chain alert whose
    evidence holds that record. Both ends are wall clock on this machine, and both
    include client-side delays, so the figure is an upper bound.
    """
    generator = LoadGenerator(config)
    inventory = generator.inventory()
    count = int(rate * seconds)
    ensure_topics(settings)
    pipeline = Pipeline(settings)
    watcher = OffsetWatcher(settings)
    raw_topics = list(settings.topics.raw_topics().values())
    process, ready, result = start_paced_producer(settings, config, count, rate)
    seen: dict[str, float] = {}
    stop = asyncio.Event()
    try:
        async with running_worker(pipeline):
            await produce_all(settings, inventory)
            await watcher.wait(raw_topics, timeout)
            await watcher.wait([settings.topics.events], timeout)
            collector = asyncio.create_task(_collect_alerts(settings, seen, stop))
            await asyncio.to_thread(ready.recv)
            ready.send("go")
            run: PacedRun = await asyncio.to_thread(result.recv)
            sent_done = time.monotonic()
            await watcher.wait(raw_topics, timeout)
            await watcher.wait([settings.topics.events], timeout)
            drain = time.monotonic() - sent_done
            await asyncio.sleep(1.0)
            stop.set()
            await collector
    finally:
        watcher.close()
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
    latencies = [
        seen[event_id] - sent_at
        for event_id, sent_at in run.closing_sent_at.items()
        if event_id in seen
    ]
    missing = len(run.closing_sent_at) - len(latencies)
    if missing:
        logger.warning(
            "%d of %d chains had no pivot chain alert holding their closing record",
            missing,
            len(run.closing_sent_at),
        )
    return LatencyResult(
        target_rate=rate,
        sent=run.sent,
        send_seconds=run.seconds,
        chains=len(run.closing_sent_at),
        latencies=latencies,
        drain_seconds=drain,
    )


def _worker_environment(settings: Settings) -> dict[str, str]:
    topics = settings.topics
    environment = {
        **os.environ,
        "PIVOTWATCH_KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "PIVOTWATCH_WORKER__APP_ID": settings.worker.app_id,
        "PIVOTWATCH_WORKER__SESSION_TIMEOUT_SECONDS": str(settings.worker.session_timeout_seconds),
        "PIVOTWATCH_WORKER__HEARTBEAT_INTERVAL_SECONDS": str(
            settings.worker.heartbeat_interval_seconds
        ),
        "PIVOTWATCH_CORRELATION__CLUSTER_ACCOUNTS": json.dumps(
            settings.correlation.cluster_accounts
        ),
    }
    for name, value in topics.model_dump().items():
        if isinstance(value, str):
            environment[f"PIVOTWATCH_TOPICS__{name.upper()}"] = value
    return environment


def measure_scaling(
    settings: Settings, records: Sequence[GeneratedRecord], workers: int, timeout: float
) -> ScalingResult:
    """Process ``records`` with ``workers`` ``pivotwatch worker`` processes of one consumer group.

    The records are produced before the workers start. The rate is taken between the
    moments 10 % and 100 % of the raw records are committed, so process start-up and
    the consumer group's rebalances before the first commits do not count.
    """
    ensure_topics(settings)
    asyncio.run(produce_all(settings, records))
    watcher = OffsetWatcher(settings)
    raw_topics = list(settings.topics.raw_topics().values())
    targets = watcher.end_offsets(raw_topics)
    total = sum(targets.values())
    environment = _worker_environment(settings)
    command = [
        sys.executable,
        "-c",
        "from pivotwatch.cli.main import main; main()",
        "worker",
        "--loglevel",
        "WARNING",
    ]
    processes = [
        subprocess.Popen(
            command,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(workers)
    ]
    try:
        tenth_at = None
        deadline = time.monotonic() + timeout
        while True:
            lag = sum(watcher.lagging(targets).values())
            now = time.monotonic()
            if tenth_at is None and total - lag >= 0.1 * total:
                tenth_at = now
            if lag == 0:
                break
            if now > deadline:
                raise BrokerError(
                    f"{workers} workers left {lag} of {total} raw records unprocessed "
                    f"after {timeout:.0f} s"
                )
            time.sleep(0.1)
        done_at = time.monotonic()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        watcher.close()
    return ScalingResult(workers=workers, records=total, seconds=done_at - (tenth_at or done_at))
