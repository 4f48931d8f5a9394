"""Delivery to Kafka shared by the live connectors: counters, backoff and a resilient producer.

A connector acknowledges its source (deletes the SQS message, acks the Pub/Sub message,
responds to the HTTP request) only after `KafkaDelivery.deliver` has returned for every
record that the source message carried. `deliver` waits on each record's own future,
so a failure of a record that another thread sent never lets this thread acknowledge,
and it never reports success for a record that Kafka did not acknowledge.

After any failure the producer is closed and a new one is connected on the next call:
a broker that restarted without its state rejects the old producer's id
(``UnknownProducerIdError``), and a new producer starts a new idempotent session.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata
from prometheus_client import REGISTRY, CollectorRegistry

from pivotwatch.connectors.producer import RecordProducer
from pivotwatch.errors import BrokerError
from pivotwatch.settings import DeliverySettings, Settings
from pivotwatch.streams.metrics import ConnectorMetrics
from pivotwatch.streams.topics import ensure_topics

__all__ = ["COUNTER_NAMES", "Backoff", "ConnectorCounters", "KafkaDelivery", "OutgoingRecord"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record for a raw topic: its key and value, as they will be sent."""

    topic: str
    key: bytes | None
    value: bytes


COUNTER_NAMES = (
    "received",
    "records_in",
    "delivered",
    "failed",
    "acked",
    "rejected",
    "skipped",
    "errors",
)
"""The counters of `ConnectorCounters`, in the order `snapshot` lists them."""

_EXPORTS: dict[str, Callable[[ConnectorMetrics, int], None]] = {
    "records_in": ConnectorMetrics.received,
    "delivered": ConnectorMetrics.produced,
    "failed": ConnectorMetrics.failed,
    "acked": ConnectorMetrics.acknowledged,
    "rejected": ConnectorMetrics.error,
    "errors": ConnectorMetrics.error,
}
"""The `ConnectorMetrics` method that each counter also increases.

``records_in``, ``delivered`` and ``failed`` are ``pivotwatch_connector_records_total``
with the outcome ``received``, ``produced`` and ``failed``. ``acked`` is
``pivotwatch_connector_source_acks_total``. ``rejected`` and ``errors`` together are
``pivotwatch_connector_errors_total``. ``received`` and ``skipped`` count source messages
and have no Prometheus series.
"""


@dataclass
class ConnectorCounters:
    """Counts of one connector, safe to update from several threads.

    ``received``: source messages taken (SQS messages, Pub/Sub messages, HTTP requests,
    inventory polls). ``records_in``: records found in them. ``delivered``: records
    acknowledged by Kafka. ``failed``: records that Kafka did not acknowledge.
    ``acked``: source messages acknowledged after delivery. ``rejected``: source
    messages that can never be delivered (invalid JSON, unknown shape). ``skipped``:
    source messages that carry no records by design (``s3:TestEvent``, digest files).
    ``errors``: source failures caught and logged (a failed SQS receive or delete, S3
    download, inventory listing or Pub/Sub stream); the work is retried or redelivered.

    Every `add` also updates the connector's Prometheus series in ``registry`` through
    `ConnectorMetrics`, so the integers here and the exported series come from the same
    calls. `_EXPORTS` maps each counter to its series.
    """

    connector: str
    registry: CollectorRegistry = field(default=REGISTRY, repr=False, compare=False)
    received: int = 0
    records_in: int = 0
    delivered: int = 0
    failed: int = 0
    acked: int = 0
    rejected: int = 0
    skipped: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _metrics: ConnectorMetrics = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._metrics = ConnectorMetrics(self.connector, self.registry)

    def add(self, name: str, amount: int = 1) -> None:
        """Increase the counter ``name`` by ``amount``, and its Prometheus series with it.

        Raises:
            ValueError: ``name`` is not one of `COUNTER_NAMES`.
        """
        if name not in COUNTER_NAMES:
            raise ValueError(f"unknown connector counter {name!r}; expected one of {COUNTER_NAMES}")
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)
        export = _EXPORTS.get(name)
        if export is not None and amount:
            export(self._metrics, amount)

    def snapshot(self) -> dict[str, int]:
        """Return the current values by counter name."""
        with self._lock:
            return {name: getattr(self, name) for name in COUNTER_NAMES}


class Backoff:
    """Exponential backoff with jitter: each failure doubles the ceiling, success resets it.

    Safe to share between threads, which then back off together.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, delivery: DeliverySettings) -> Backoff:
        return cls(delivery.retry_initial_seconds, delivery.retry_max_seconds)

    def next_delay(self) -> float:
        """Count one failure and return the pause before the next attempt, in seconds."""
        with self._lock:
            ceiling = min(self.maximum, self.initial * 2 ** min(self.failures, 32))
            self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        with self._lock:
            self.failures = 0


class KafkaDelivery:
    """A producer that connects on first use, waits per record, and reconnects after failures.

    Thread-safe: several threads may call `deliver` at once. Each waits only for its
    own records.
    """

    def __init__(self, settings: Settings, counters: ConnectorCounters) -> None:
        self._settings = settings
        self._delivery = settings.connectors.delivery
        self._counters = counters
        self._lock = threading.Lock()
        self._producer: RecordProducer | None = None
        self._topics_checked: set[str] = set()

    def connect(self) -> None:
        """Connect now rather than on the first `deliver`.

        Raises:
            BrokerError: no broker accepted a connection within the connect timeout.
        """
        self._current_producer()

    def deliver(self, records: Sequence[OutgoingRecord]) -> None:
        """Send ``records`` and return once Kafka has acknowledged every one of them.

        Raises:
            BrokerError: a record was not acknowledged within the delivery timeout, or
                no broker could be reached. Some records may have been delivered; the
                caller must not acknowledge its source and should retry the whole set.
        """
        if not records:
            return
        try:
            producer = self._current_producer()
        except BrokerError:
            self._counters.add("failed", len(records))
            raise
        self._ensure_topics({record.topic for record in records})

        futures: list[FutureRecordMetadata] = []
        try:
            for record in records:
                futures.append(producer.send(record.topic, record.key, record.value))
            self._wait_for(futures)
        except BrokerError:
            self._counters.add("failed", len(records))
            self._discard(producer)
            raise
        self._counters.add("delivered", len(records))

    def close(self) -> None:
        """Wait for queued records up to the delivery timeout, then close the producer."""
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self._delivery.delivery_timeout_seconds)

    def _wait_for(self, futures: Iterable[FutureRecordMetadata]) -> None:
        deadline = time.monotonic() + self._delivery.delivery_timeout_seconds
        for future in futures:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                future.get(timeout=remaining)
            except KafkaError as error:
                raise BrokerError(
                    f"Kafka did not acknowledge a record within "
                    f"{self._delivery.delivery_timeout_seconds:.0f} s: {error!r}"
                ) from error

    def _current_producer(self) -> RecordProducer:
        with self._lock:
            if self._producer is None:
                self._producer = self._new_producer()
            return self._producer

    def _new_producer(self) -> RecordProducer:
        delivery = self._delivery
        delivery_ms = int(delivery.delivery_timeout_seconds * 1000)
        request_ms = max(1000, min(30_000, delivery_ms // 2))
        return RecordProducer(
            self._settings.kafka,
            delivery_timeout_ms=delivery_ms,
            request_timeout_ms=request_ms,
            max_block_ms=delivery_ms,
            bootstrap_timeout_ms=int(delivery.connect_timeout_seconds * 1000),
        )

    def _ensure_topics(self, topics: set[str]) -> None:
        missing = sorted(topics - self._topics_checked)
        if not missing:
            return
        try:
            ensure_topics(self._settings, missing)
        except (BrokerError, KafkaError) as error:
            # The producer's own metadata request decides: a missing topic that the broker
            # does not create fails the send, and so the delivery.
            logger.warning("cannot check topics %s: %s", ", ".join(missing), error)
            return
        with self._lock:
            self._topics_checked.update(missing)

    def _discard(self, producer: RecordProducer) -> None:
        with self._lock:
            if self._producer is not producer:
                return
            self._producer = None
            # A broker that restarted may have lost its topics, so check them again.
            self._topics_checked.clear()
        logger.info("closing the producer after a delivery failure; the next delivery reconnects")
        try:
            producer.close(timeout=0)
        except KafkaError as error:
            logger.debug("closing the failed producer raised %r", error)
