"""Long-polling of an SQS queue with acknowledgement after Kafka delivery.

`SqsConsumer` receives up to ``max_messages`` messages per call, has a `MessageHandler`
turn each one into records, delivers them through `KafkaDelivery` and deletes a message
only after Kafka has acknowledged every record it carried. Messages are processed
concurrently, at most ``concurrency`` at once. While a message is being processed,
`VisibilityKeeper` extends its visibility timeout so that no other consumer receives it.

A message ends in one of four ways:

- delivered: every record acknowledged, the message is deleted;
- skipped: it carries no records by design (an ``s3:TestEvent``), the message is deleted;
- rejected: it can never be delivered (invalid JSON, an unknown shape, an object that
  is not a CloudTrail file). It is logged and left in the queue, so that it becomes
  visible again after the visibility timeout and the queue's redrive policy moves it
  to the dead-letter queue after ``maxReceiveCount`` receives;
- failed: a transient error (Kafka, S3). It is left in the queue and made visible
  again after a backoff delay; the consumer also pauses before its next receive.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from pivotwatch.connectors.aws import aws_client
from pivotwatch.connectors.delivery import (
    Backoff,
    ConnectorCounters,
    KafkaDelivery,
    OutgoingRecord,
)
from pivotwatch.errors import BrokerError, ConfigurationError, DecodeError, RecordError
from pivotwatch.settings import AwsSettings, DeliverySettings, SqsQueueSettings

__all__ = [
    "MessageHandler",
    "MessageOutcome",
    "SqsConsumer",
    "SqsMessage",
    "VisibilityKeeper",
    "decode_body",
]

logger = logging.getLogger(__name__)

DELETE_BATCH = 10
"""Maximum entries in one DeleteMessageBatch call (an SQS limit)."""


class MessageOutcome(StrEnum):
    """Outcome of processing one SQS message."""

    DELIVERED = "delivered"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SqsMessage:
    """One received SQS message."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int


class MessageHandler(Protocol):
    """Turns one SQS message into the records it carries.

    Returns an empty list for a message that carries no records by design. Raises
    `RecordError` for a message that can never be delivered; any other exception is
    taken as transient.
    """

    def records_of(self, message: SqsMessage) -> list[OutgoingRecord]: ...


class VisibilityKeeper:
    """Extends the visibility timeout of in-flight messages until they are released.

    A background thread checks every quarter of the timeout and extends each message
    that was received or last extended more than half a timeout ago.
    """

    def __init__(self, sqs: Any, queue_url: str, timeout_seconds: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._timeout = timeout_seconds
        self._extended_at: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-visibility", daemon=True)
        self.extensions = 0
        """ChangeMessageVisibility calls that succeeded."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def hold(self, message: SqsMessage) -> None:
        """Keep ``message`` invisible until `release`; the receive counts as the first extension."""
        with self._lock:
            self._extended_at[message.receipt_handle] = (message.message_id, time.monotonic())

    def release(self, message: SqsMessage) -> None:
        with self._lock:
            self._extended_at.pop(message.receipt_handle, None)

    def _run(self) -> None:
        interval = max(0.25, self._timeout / 4)
        while not self._stop.wait(interval):
            self._extend_due()

    def _extend_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [
                (handle, message_id)
                for handle, (message_id, extended_at) in self._extended_at.items()
                if now - extended_at >= self._timeout / 2
            ]
        for handle, message_id in due:
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self._queue_url,
                    ReceiptHandle=handle,
                    VisibilityTimeout=self._timeout,
                )
            except (BotoCoreError, ClientError) as error:
                logger.warning("cannot extend the visibility of message %s: %s", message_id, error)
                continue
            self.extensions += 1
            logger.debug("extended the visibility of message %s by %d s", message_id, self._timeout)
            with self._lock:
                if handle in self._extended_at:
                    self._extended_at[handle] = (message_id, time.monotonic())


class SqsConsumer:
    """Receive, deliver and delete the messages of one queue; see the module docstring."""

    def __init__(
        self,
        name: str,
        queue: SqsQueueSettings,
        aws: AwsSettings,
        delivery_settings: DeliverySettings,
        delivery: KafkaDelivery,
        handler: MessageHandler,
        counters: ConnectorCounters,
    ) -> None:
        if not queue.queue_url:
            raise ConfigurationError(
                f"the {name} connector needs a queue URL: set its queue_url setting "
                "or pass --queue-url"
            )
        self.name = name
        self.queue = queue
        self.queue_url = queue.queue_url
        self.delivery = delivery
        self.handler = handler
        self.counters = counters
        self.backoff = Backoff.from_settings(delivery_settings)
        self.sqs = aws_client(
            "sqs",
            aws,
            read_timeout=queue.wait_seconds + 10,
            max_pool_connections=queue.concurrency + 2,
        )
        self.keeper = VisibilityKeeper(self.sqs, self.queue_url, queue.visibility_timeout_seconds)

    def run(self, stop: threading.Event) -> None:
        """Process messages until ``stop`` is set; messages in flight finish first."""
        logger.info(
            "%s connector polling %s (wait %d s, visibility timeout %d s, concurrency %d)",
            self.name,
            self.queue_url,
            self.queue.wait_seconds,
            self.queue.visibility_timeout_seconds,
            self.queue.concurrency,
        )
        self.keeper.start()
        try:
            with ThreadPoolExecutor(self.queue.concurrency, f"{self.name}-message") as pool:
                while not stop.is_set():
                    try:
                        outcomes = self.poll_once(pool)
                    except (BotoCoreError, ClientError) as error:
                        self.counters.add("errors")
                        delay = self.backoff.next_delay()
                        logger.error(
                            "%s: ReceiveMessage on %s failed: %s; retrying in %.1f s",
                            self.name,
                            self.queue_url,
                            error,
                            delay,
                        )
                        stop.wait(delay)
                        continue
                    self._pause_after_failure(outcomes, stop)
        finally:
            self.keeper.stop()
        logger.info("%s connector stopped: %s", self.name, self.counters.snapshot())

    def poll_once(self, pool: ThreadPoolExecutor) -> list[MessageOutcome]:
        """Receive one batch, process it and settle every message; return the outcomes.

        Raises:
            BotoCoreError, ClientError: ReceiveMessage failed; nothing was received.
        """
        messages = self._receive()
        if not messages:
            return []
        self.counters.add("received", len(messages))
        for message in messages:
            self.keeper.hold(message)
        outcomes = list(pool.map(self._process, messages))
        self._settle(messages, outcomes)
        return outcomes

    # -- receiving and processing ------------------------------------------------------

    def _receive(self) -> list[SqsMessage]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.queue.max_messages,
            WaitTimeSeconds=self.queue.wait_seconds,
            VisibilityTimeout=self.queue.visibility_timeout_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [_to_message(raw) for raw in response.get("Messages", [])]

    def _process(self, message: SqsMessage) -> MessageOutcome:
        try:
            records = self.handler.records_of(message)
        except RecordError as error:
            logger.error(
                "%s: rejected message %s (received %d times): %s; it stays in the queue for "
                "the redrive policy",
                self.name,
                message.message_id,
                message.receive_count,
                error,
            )
            return MessageOutcome.REJECTED
        except Exception as error:  # any other failure is transient: the message is redelivered
            self.counters.add("errors")
            logger.error(
                "%s: reading the records of message %s failed: %r; it will be redelivered",
                self.name,
                message.message_id,
                error,
            )
            return MessageOutcome.FAILED

        if not records:
            return MessageOutcome.SKIPPED
        self.counters.add("records_in", len(records))
        try:
            self.delivery.deliver(records)
        except BrokerError as error:
            logger.error(
                "%s: %d records of message %s were not delivered: %s; it will be redelivered",
                self.name,
                len(records),
                message.message_id,
                error,
            )
            return MessageOutcome.FAILED
        logger.debug(
            "%s: delivered %d records of message %s", self.name, len(records), message.message_id
        )
        return MessageOutcome.DELIVERED

    # -- settling ----------------------------------------------------------------------

    def _settle(self, messages: list[SqsMessage], outcomes: list[MessageOutcome]) -> None:
        done = [
            message
            for message, outcome in zip(messages, outcomes, strict=True)
            if outcome in (MessageOutcome.DELIVERED, MessageOutcome.SKIPPED)
        ]
        self._delete(done)
        for message, outcome in zip(messages, outcomes, strict=True):
            self.keeper.release(message)
            if outcome is MessageOutcome.FAILED:
                self._release_for_retry(message)
            elif outcome is MessageOutcome.REJECTED:
                self.counters.add("rejected")
            elif outcome is MessageOutcome.SKIPPED:
                self.counters.add("skipped")

    def _delete(self, messages: list[SqsMessage]) -> None:
        for start in range(0, len(messages), DELETE_BATCH):
            chunk = messages[start : start + DELETE_BATCH]
            entries = [
                {"Id": str(index), "ReceiptHandle": message.receipt_handle}
                for index, message in enumerate(chunk)
            ]
            try:
                response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as error:
                # The records are in Kafka; a redelivery only duplicates them.
                self.counters.add("errors")
                logger.error("%s: DeleteMessageBatch failed: %s", self.name, error)
                continue
            failed_ids = {entry["Id"] for entry in response.get("Failed", [])}
            for index, message in enumerate(chunk):
                if str(index) in failed_ids:
                    logger.warning(
                        "%s: message %s was delivered but not deleted; it will be redelivered",
                        self.name,
                        message.message_id,
                    )
                else:
                    self.counters.add("acked")

    def _release_for_retry(self, message: SqsMessage) -> None:
        delay = min(int(self.backoff.next_delay()), self.queue.visibility_timeout_seconds)
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=delay,
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning(
                "%s: cannot shorten the visibility of message %s: %s; it reappears after the "
                "visibility timeout",
                self.name,
                message.message_id,
                error,
            )

    def _pause_after_failure(self, outcomes: list[MessageOutcome], stop: threading.Event) -> None:
        if MessageOutcome.FAILED not in outcomes:
            if outcomes:
                self.backoff.reset()
            return
        delay = self.backoff.next_delay()
        logger.info("%s: pausing %.1f s after a failed delivery", self.name, delay)
        stop.wait(delay)


def _to_message(raw: dict[str, Any]) -> SqsMessage:
    attributes = raw.get("Attributes", {})
    return SqsMessage(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
    )


def decode_body(message: SqsMessage) -> Any:
    """Decode a message body as JSON and open an SNS notification envelope around it.

    Works for raw message delivery and for SNS subscriptions that wrap the payload in
    ``{"Type": "Notification", "Message": "<JSON string>"}``.

    Raises:
        DecodeError: the body, or the envelope's ``Message``, is not JSON.
    """
    try:
        document = orjson.loads(message.body)
    except orjson.JSONDecodeError as error:
        raise DecodeError(
            f"message {message.message_id} body is not valid JSON ({error}); expected an "
            f"S3 event, an SNS notification or an EventBridge event, got {message.body[:60]!r}"
        ) from None
    if not (
        isinstance(document, dict)
        and document.get("Type") == "Notification"
        and isinstance(document.get("Message"), str)
    ):
        return document
    try:
        return orjson.loads(document["Message"])
    except orjson.JSONDecodeError as error:
        raise DecodeError(
            f"message {message.message_id} is an SNS notification whose Message is not valid "
            f"JSON ({error}); got {document['Message'][:60]!r}"
        ) from None
