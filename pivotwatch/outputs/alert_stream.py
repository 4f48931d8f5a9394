"""Reading alert revisions from the alert topic in a consumer group.

`AlertStream.batches` polls the alert topic and yields decoded alerts in batches. The
caller calls `AlertStream.commit` with the messages it has delivered, so a crash
between the two re-reads them: at-least-once. A message that is not a valid alert is logged
with its position, counted in `AlertStream.invalid` and skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import msgspec
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pivotwatch.connectors.producer import kafka_client_config
from pivotwatch.errors import BrokerError
from pivotwatch.schemas.alert import Alert
from pivotwatch.settings import Settings

__all__ = ["AlertMessage", "AlertStream"]

logger = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
ASSIGNMENT_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One alert revision with its position on the alert topic."""

    alert: Alert
    topic: str
    partition: int
    offset: int


class AlertStream:
    """A consumer of the alert topic in the consumer group ``group_id``."""

    def __init__(self, settings: Settings, group_id: str, *, from_beginning: bool = True) -> None:
        """Connect to the broker and subscribe to the alert topic.

        ``from_beginning`` applies only to a group without committed offsets: it then
        starts at the oldest alert kept by the topic, else at new alerts.

        Raises:
            BrokerError: no broker at the configured bootstrap accepted a connection.
        """
        self.topic = settings.topics.alerts
        self.invalid = 0
        self._decoder = msgspec.json.Decoder(Alert)
        try:
            self._consumer = KafkaConsumer(
                self.topic,
                **kafka_client_config(settings.kafka),
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest" if from_beginning else "latest",
            )
        except KafkaError as error:
            raise BrokerError(
                "cannot connect a consumer to the Kafka broker at "
                f"{settings.kafka.bootstrap}: {error!r}; "
                "start the broker, or set PIVOTWATCH_KAFKA__BOOTSTRAP or --bootstrap"
            ) from error

    def batches(
        self, max_records: int, idle_seconds: float | None = None
    ) -> Iterator[list[AlertMessage]]:
        """Yield batches of at most ``max_records`` valid alerts until the caller stops.

        With ``idle_seconds``, the iteration ends once no message arrived for that long
        after the group assigned partitions to this consumer.

        Raises:
            BrokerError: the group assigned no partition within `ASSIGNMENT_TIMEOUT_SECONDS`.
        """
        started = time.monotonic()
        last_message: float | None = None
        while True:
            polled = self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            records = [
                record for partition_records in polled.values() for record in partition_records
            ]
            now = time.monotonic()
            if records:
                last_message = now
                batch = [
                    message for record in records if (message := self._decode(record)) is not None
                ]
                if batch:
                    yield batch
                continue
            if last_message is None:
                if not self._consumer.assignment():
                    if now - started > ASSIGNMENT_TIMEOUT_SECONDS:
                        raise BrokerError(
                            "the consumer group was assigned no partition of topic "
                            f"{self.topic} within "
                            f"{ASSIGNMENT_TIMEOUT_SECONDS:.0f} s; check that the topic exists"
                        )
                    continue
                last_message = now
            if idle_seconds is not None and now - last_message >= idle_seconds:
                return

    def commit(self, messages: Iterable[AlertMessage]) -> None:
        """Commit the alert topic up to and including ``messages``, per partition.

        Invalid messages skipped before a committed one are committed with it.
        """
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for message in messages:
            partition = TopicPartition(message.topic, message.partition)
            known = offsets.get(partition)
            if known is None or known.offset <= message.offset:
                offsets[partition] = OffsetAndMetadata(message.offset + 1, "", -1)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as error:
            raise BrokerError(
                f"committing offsets of topic {self.topic} failed: {error!r}"
            ) from error

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def __enter__(self) -> AlertStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _decode(self, record: object) -> AlertMessage | None:
        topic, partition, offset = record.topic, record.partition, record.offset  # type: ignore[attr-defined]
        try:
            alert = self._decoder.decode(record.value)  # type: ignore[attr-defined]
        except (msgspec.DecodeError, ValueError) as error:
            self.invalid += 1
            logger.error(
                "alert message is invalid, skipped (topic %s, partition %d, offset %d): %s",
                topic,
                partition,
                offset,
                error,
            )
            return None
        return AlertMessage(alert=alert, topic=topic, partition=partition, offset=offset)
