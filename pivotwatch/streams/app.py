"""The faust-streaming application: topics, agents and the worker's wiring.

Two agents do the work; both stay thin and call plain stages:

- ``normalize`` reads every raw topic in batches, calls `Normalizer`, sends one
  message per correlation key to the events topic and each bad record to the
  dead-letter topic.
- ``correlate`` reads the events topic, calls `Correlator`, and sends each alert
  revision to the alerts topic, keyed by chain id.

Delivery is at-least-once: faust commits a batch's offsets only after flushing its
producer, that is after Kafka has acknowledged every message the agents sent before the
commit (faust-streaming 0.15, ``Consumer._commit_offsets``). The agents therefore hand
messages to the producer without waiting for each acknowledgement. A record processed
twice after a crash is dropped by the deduplication of both stages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
import msgspec
from faust.types import TP, EventT

from pivotwatch.correlator.engine import Correlator
from pivotwatch.schemas.alert import Alert
from pivotwatch.schemas.event import Event, EventBatch
from pivotwatch.settings import Settings
from pivotwatch.streams.batching import encode_batches
from pivotwatch.streams.directory import InventoryDirectory
from pivotwatch.streams.metrics import PipelineMetrics
from pivotwatch.streams.normalizing import Normalizer
from pivotwatch.streams.records import RawMessage
from pivotwatch.streams.recovery import StateRecovery

__all__ = ["AGENT_CORRELATE", "AGENT_NORMALIZE", "Pipeline"]

logger = logging.getLogger(__name__)

AGENT_NORMALIZE = "pivotwatch.normalize"
AGENT_CORRELATE = "pivotwatch.correlate"

_batch_decoder = msgspec.json.Decoder(EventBatch)
_encoder = msgspec.json.Encoder()


def _broker_url(bootstrap: str) -> list[str]:
    return [f"kafka://{address.strip()}" for address in bootstrap.split(",") if address.strip()]


def _raw_message(event: EventT[Any]) -> RawMessage:
    message = event.message
    value = message.value
    if not isinstance(value, bytes):
        value = b"" if value is None else str(value).encode()
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key if isinstance(message.key, bytes) else None,
        value=value,
    )


class Pipeline:
    """One pivotwatch worker: the faust app with its topics, agents and stages."""

    def __init__(self, settings: Settings, correlator: Correlator | None = None) -> None:
        self.settings = settings
        self.app = self._create_app()
        self.normalizer = Normalizer(settings)
        self.correlator = correlator or Correlator.from_settings(settings)
        self.counts: Counter[str] = Counter()
        self.metrics = PipelineMetrics()
        self._declare_topics()
        self.directory = InventoryDirectory(settings, self.normalizer.context)
        self._declare_agents()
        self._ready = asyncio.Event()
        self._ready.set()
        self._owned_partitions: set[int] = set()
        self._key_partitions: dict[str, int] = {}
        # faust types receivers as taking a ``signal`` keyword; ours takes **kwargs.
        self.app.on_partitions_assigned.connect(self._on_partitions_assigned)  # type: ignore[arg-type]

    def start_directory(self) -> None:
        """Read the whole inventory topic before the worker starts, then follow it (blocking)."""
        self.directory.start()

    def stop_directory(self) -> None:
        self.directory.stop()

    def _create_app(self) -> faust.App:
        settings = self.settings
        return faust.App(
            settings.worker.app_id,
            broker=_broker_url(settings.kafka.bootstrap),
            broker_client_id=settings.kafka.client_id,
            broker_commit_interval=0.5,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            topic_partitions=settings.topics.partitions,
            topic_replication_factor=settings.topics.replication_factor,
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            store="memory://",
            datadir=str(settings.worker.data_dir),
            stream_wait_empty=False,
            # Larger buffers and fetches than faust's defaults keep the batches of
            # `take_events` full; on the benchmark load this doubled the throughput.
            stream_buffer_maxsize=16384,
            consumer_max_fetch_size=4 * 1024 * 1024,
            broker_session_timeout=settings.worker.session_timeout_seconds,
            broker_heartbeat_interval=settings.worker.heartbeat_interval_seconds,
        )

    def _declare_topics(self) -> None:
        topics = self.settings.topics
        self.raw_channel = self.app.topic(*topics.raw_topics().values())
        self.events_topic = self.app.topic(topics.events)
        self.alerts_topic = self.app.topic(topics.alerts)
        self.dead_letter_topic = self.app.topic(topics.dead_letter)

    def _declare_agents(self) -> None:
        self.app.agent(self.raw_channel, name=AGENT_NORMALIZE)(self._normalize_agent)
        self.app.agent(self.events_topic, name=AGENT_CORRELATE)(self._correlate_agent)

    async def _normalize_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        worker = self.settings.worker
        async for events in cast(faust.Stream[bytes], stream).take_events(
            worker.batch_size, within=worker.batch_seconds
        ):
            await self.normalize_batch([_raw_message(event) for event in events])
            yield None

    async def _correlate_agent(self, stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        worker = self.settings.worker
        async for events in cast(faust.Stream[bytes], stream).take_events(
            worker.batch_size, within=worker.batch_seconds
        ):
            await self._ready.wait()
            await self.correlate_batch([_raw_message(event) for event in events])
            yield None

    async def normalize_batch(self, messages: Sequence[RawMessage]) -> None:
        """Normalize raw messages and hand the events and dead letters to the producer."""
        started = time.perf_counter()
        output = self.normalizer.process(messages)
        self.counts.update({f"normalize.{name}": count for name, count in output.counts.items()})
        oversized: list[Event] = []
        limit = self.settings.worker.max_message_bytes
        for key, events in output.batches.items():
            for value in encode_batches(key, events, limit, oversized):
                await self.events_topic.send(key=key.encode(), value=value)
        self.counts["normalize.oversized"] += len(oversized)
        for dead in output.dead_letters:
            value, headers = dead.value(limit)
            await self.dead_letter_topic.send(
                key=dead.message.topic.encode(), value=value, headers=headers
            )
        elapsed = time.perf_counter() - started
        self.metrics.observe_normalize(self.normalizer.sources, messages, output, elapsed)
        self.metrics.observe_consumer_lag(self._highwater, messages)

    async def correlate_batch(self, messages: Sequence[RawMessage]) -> None:
        """Correlate event batches and hand the alerts to the producer."""
        started = time.perf_counter()
        alerts: list[Alert] = []
        for message in messages:
            try:
                batch = _batch_decoder.decode(message.value)
            except msgspec.DecodeError as error:
                logger.error(
                    "events message is invalid, skipped (topic %s, partition %d, offset %d): %s",
                    message.topic,
                    message.partition,
                    message.offset,
                    error,
                )
                self.counts["correlate.invalid"] += 1
                continue
            self._key_partitions[batch.key] = message.partition
            alerts.extend(self.correlator.process(batch.events))
        for alert in alerts:
            await self.alerts_topic.send(key=alert.chain_id.encode(), value=_encoder.encode(alert))
        self.counts["correlate.alerts"] += len(alerts)
        self.metrics.observe_correlate(self.correlator, alerts, time.perf_counter() - started)
        self.metrics.observe_consumer_lag(self._highwater, messages)

    def _highwater(self, tp: Any) -> int:
        return int(self.app.consumer.highwater(tp))

    async def _on_partitions_assigned(
        self, sender: object, assigned: set[TP], **kwargs: Any
    ) -> None:
        """Rebuild the state of newly owned events partitions; forget the ones given away."""
        events_topic = self.settings.topics.events
        owned = {tp.partition for tp in assigned if tp.topic == events_topic}
        gone = self._owned_partitions - owned
        new = owned - self._owned_partitions
        self._owned_partitions = owned
        if gone:
            keys = [key for key, partition in self._key_partitions.items() if partition in gone]
            self.correlator.drop_keys(keys)
            logger.info(
                "events partitions %s moved to another worker; dropped %d keys",
                sorted(gone),
                len(keys),
            )
        if not new:
            return
        self._ready.clear()
        try:
            result = await asyncio.to_thread(
                StateRecovery(self.settings, self.correlator).recover, new
            )
            logger.info(
                "recovered events partitions %s: %d events, %d alerts read back in %.1f s",
                sorted(new),
                result.events,
                result.alerts,
                result.seconds,
            )
        finally:
            self._ready.set()
