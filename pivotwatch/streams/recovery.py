"""Rebuilding the correlator's state after a restart or a rebalance.

The correlator's state of one key is a function of that key's events inside the window,
and every event of a key is on one partition of the events topic. So the events topic is
the correlator's changelog. When a worker is given an events partition, it reads the
partition from the start of the window up to the group's committed offset, and feeds
those events to the correlator with publication turned off. What was already published
is read back from the alerts topic, so a chain keeps its id and its revision count and
nothing is published twice.

Guarantees and limits:

- Events are read from the first offset whose record timestamp (the time Kafka appended
  it, not the event time) is inside the window plus the allowed lateness. Records older
  than that were outside the window already.
- A record processed before a crash but not committed is processed again after it; the
  correlator's deduplication by event id and the restored publication state keep the
  alerts the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pivotwatch.connectors.producer import kafka_client_config
from pivotwatch.correlator.engine import Correlator
from pivotwatch.schemas.event import Event, EventBatch
from pivotwatch.settings import Settings

__all__ = ["RecoveryResult", "StateRecovery"]

logger = logging.getLogger(__name__)

_batch_decoder = msgspec.json.Decoder(EventBatch)


@dataclass
class RecoveryResult:
    """Counts of the records one recovery read."""

    partitions: int = 0
    event_batches: int = 0
    events: int = 0
    alerts: int = 0
    seconds: float = 0.0


class StateRecovery:
    """Reads the events and alerts topics back into a correlator (blocking; run in a thread)."""

    def __init__(self, settings: Settings, correlator: Correlator) -> None:
        self.settings = settings
        self.correlator = correlator

    def recover(self, partitions: Iterable[int]) -> RecoveryResult:
        """Rebuild the state of the given events partitions and the publication state."""
        started = time.monotonic()
        result = RecoveryResult()
        wanted = sorted(set(partitions))
        config = kafka_client_config(self.settings.kafka)
        consumer = KafkaConsumer(**config, enable_auto_commit=False)
        admin = KafkaAdminClient(**config)
        try:
            events_topic = self.settings.topics.events
            tps = [TopicPartition(events_topic, partition) for partition in wanted]
            committed = self._committed(admin, tps)
            horizon_ms = self._horizon_ms()
            for tp in tps:
                stop = committed.get(tp, 0)
                if stop > 0:
                    result.partitions += 1
                    self._replay_events(consumer, tp, horizon_ms, stop, result)
            self._restore_published(consumer, horizon_ms, result)
        finally:
            consumer.close()
            admin.close()
        result.seconds = time.monotonic() - started
        return result

    def _horizon_ms(self) -> int:
        correlation = self.settings.correlation
        span = correlation.window_seconds + correlation.allowed_lateness_seconds
        return int((time.time() - span) * 1000)

    def _committed(
        self, admin: KafkaAdminClient, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if not tps:
            return {}
        group = self.settings.worker.app_id
        offsets = admin.list_group_offsets({group: tps}).get(group, {})
        return {
            tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0
        }

    def _start_offset(
        self, consumer: KafkaConsumer, tp: TopicPartition, horizon_ms: int
    ) -> int | None:
        found = consumer.offsets_for_times({tp: horizon_ms}).get(tp)
        return None if found is None else int(found.offset)

    def _replay_events(
        self,
        consumer: KafkaConsumer,
        tp: TopicPartition,
        horizon_ms: int,
        stop: int,
        result: RecoveryResult,
    ) -> None:
        start = self._start_offset(consumer, tp, horizon_ms)
        if start is None or start >= stop:
            return
        events: list[Event] = []
        for value in _read_range(consumer, tp, start, stop):
            try:
                batch = _batch_decoder.decode(value)
            except msgspec.DecodeError as error:
                logger.warning(
                    "skipped an invalid events message of partition %d during recovery: %s",
                    tp.partition,
                    error,
                )
                continue
            result.event_batches += 1
            events.extend(batch.events)
        result.events += len(events)
        self.correlator.restore(events)
        logger.info(
            "rebuilt correlator state of events partition %d from offsets %d to %d: %d events",
            tp.partition,
            start,
            stop,
            len(events),
        )

    def _restore_published(
        self, consumer: KafkaConsumer, horizon_ms: int, result: RecoveryResult
    ) -> None:
        topic = self.settings.topics.alerts
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        published: list[dict[str, object]] = []
        for partition in partitions:
            tp = TopicPartition(topic, partition)
            end = consumer.end_offsets([tp])[tp]
            start = self._start_offset(consumer, tp, horizon_ms)
            if start is None or start >= end:
                continue
            for value in _read_range(consumer, tp, start, end):
                try:
                    published.append(orjson.loads(value))
                except orjson.JSONDecodeError:
                    continue
        result.alerts = len(published)
        self.correlator.restore_published(published)


def _read_range(
    consumer: KafkaConsumer, tp: TopicPartition, start: int, stop: int
) -> Iterable[bytes]:
    """Yield the values of ``tp`` from offset ``start`` up to, not including, ``stop``."""
    consumer.assign([tp])
    consumer.seek(tp, start)
    position = start
    idle_polls = 0
    while position < stop:
        records = consumer.poll(timeout_ms=1000).get(tp, [])
        if not records:
            idle_polls += 1
            if idle_polls > 30:
                logger.error(
                    "recovery read of %s[%d] stalled at offset %d of %d",
                    tp.topic,
                    tp.partition,
                    position,
                    stop,
                )
                return
            continue
        idle_polls = 0
        for record in records:
            if record.offset >= stop:
                return
            position = record.offset + 1
            yield record.value
