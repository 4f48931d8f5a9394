"""A Kafka producer for connectors: durable sends and a flush that reports failures.

Every connector writes through `RecordProducer`. It waits for all in-sync replicas
(``acks="all"``), retries transient errors until ``delivery_timeout_ms`` runs out, and
batches for ``linger_ms``. Idempotence is left at kafka-python's default: on, unless the
broker is older than Kafka 0.11, in which case kafka-python turns it off and logs a
warning. `RecordProducer.idempotent` reports which.

A connector must call `RecordProducer.flush` before it acknowledges its source: only a
flush that returns guarantees that every record sent before it was acknowledged by Kafka.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from pivotwatch.errors import BrokerError
from pivotwatch.settings import KafkaSettings

__all__ = ["DeliveryFailure", "RecordProducer", "kafka_client_config"]

logger = logging.getLogger(__name__)

MAX_KEPT_FAILURES = 20
"""Failures that `RecordProducer.flush` quotes with their error; it only counts the rest."""


def kafka_client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Return the kafka-python connection options for the broker in ``kafka``.

    The options suit KafkaProducer, KafkaConsumer and KafkaAdminClient alike. The SASL
    password is included, so never log the result.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": [server.strip() for server in kafka.bootstrap.split(",")],
        "security_protocol": kafka.security_protocol,
        "client_id": kafka.client_id,
    }
    if kafka.sasl_mechanism is not None:
        config["sasl_mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username is not None:
        config["sasl_plain_username"] = kafka.sasl_username
    if kafka.sasl_password is not None:
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_cafile is not None:
        config["ssl_cafile"] = str(kafka.ssl_cafile)
    return config


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A record that Kafka did not acknowledge."""

    topic: str
    error: str


class RecordProducer:
    """Send raw records to Kafka and report, at flush, any record that was not delivered.

    Per-key order within a partition is kept while idempotence is on (see `idempotent`).
    Use as a context manager, or call `close`; closing does not flush.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        linger_ms: int = 20,
        delivery_timeout_ms: int = 120_000,
        **options: Any,
    ) -> None:
        """Connect to the broker.

        ``options`` are passed to kafka-python's KafkaProducer and override the defaults
        here, for example ``compression_type="gzip"``.

        Raises:
            BrokerError: no broker at ``kafka.bootstrap`` accepted a connection, or
                the options are invalid.
        """
        config = {
            **kafka_client_config(kafka),
            "acks": "all",
            "retries": 2**31 - 1,
            "linger_ms": linger_ms,
            "delivery_timeout_ms": delivery_timeout_ms,
            **options,
        }
        logger.info(
            "connecting producer to %s (security protocol %s, SASL mechanism %s, user %s)",
            kafka.bootstrap,
            kafka.security_protocol,
            kafka.sasl_mechanism,
            kafka.sasl_username,
        )
        try:
            self._producer = KafkaProducer(**config)
        except KafkaError as error:
            raise BrokerError(
                f"cannot connect a producer to the Kafka broker at {kafka.bootstrap}: {error!r}; "
                "start the broker, or set PIVOTWATCH_KAFKA__BOOTSTRAP or --bootstrap"
            ) from error
        self.bootstrap = kafka.bootstrap
        self.delivered: Counter[str] = Counter()
        """Records acknowledged by Kafka, by topic."""
        self._failures: list[DeliveryFailure] = []
        self._failure_count = 0

    @property
    def idempotent(self) -> bool:
        """Whether the broker accepted the idempotent producer."""
        return bool(self._producer.config["enable_idempotence"])

    def send(self, topic: str, key: bytes | None, value: bytes) -> FutureRecordMetadata:
        """Queue one record and return its future; delivery errors surface at `flush`.

        Raises:
            BrokerError: the record could not even be queued, for example because the
                topic's metadata did not arrive in time or the record is too large.
        """
        try:
            future = self._producer.send(topic, value=value, key=key)
        except KafkaError as error:
            raise BrokerError(f"cannot send a record to topic {topic!r}: {error!r}") from error
        future.add_callback(self._record_delivery, topic)
        future.add_errback(self._record_failure, topic)
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged or has failed.

        Failures are cleared once reported, so the next flush reports only new ones.

        Raises:
            BrokerError: at least one record since the last flush was not delivered, or
                the wait exceeded ``timeout`` seconds. The message names the topic and
                the error of the first failures and counts the rest.
        """
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as error:
            raise BrokerError(
                f"flush to {self.bootstrap} failed after {timeout} s: {error!r}; "
                "check that the broker is up, or raise the timeout"
            ) from error
        if self._failure_count:
            raise BrokerError(self._take_failures_message())

    def close(self, timeout: float | None = None) -> None:
        """Close the connection without waiting for queued records beyond ``timeout`` seconds."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> RecordProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(timeout=0 if exc is not None else None)

    def _record_delivery(self, topic: str, metadata: Any) -> None:
        self.delivered[topic] += 1

    def _record_failure(self, topic: str, error: BaseException) -> None:
        self._failure_count += 1
        if len(self._failures) < MAX_KEPT_FAILURES:
            self._failures.append(DeliveryFailure(topic, repr(error)))

    def _take_failures_message(self) -> str:
        quoted = "; ".join(
            f"topic {failure.topic!r}: {failure.error}" for failure in self._failures
        )
        hidden = self._failure_count - len(self._failures)
        more = f"; and {hidden} more" if hidden else ""
        message = (
            f"{self._failure_count} records were not delivered to {self.bootstrap}: {quoted}{more}"
        )
        self._failures.clear()
        self._failure_count = 0
        return message
