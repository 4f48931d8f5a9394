"""GCP audit logs from a Pub/Sub subscription that a Log Router sink feeds.

The connector streams messages with google-cloud-pubsub's streaming pull, under flow
control (``max_messages``, ``max_bytes``), with ``concurrency`` callback threads. Each
message's data is a LogEntry as JSON (or a JSON array of them). A message is acked
only after Kafka has acknowledged every record in it, and nacked otherwise:

- a transient failure (Kafka unavailable) pauses the callback thread for a backoff
  delay before the nack. The message keeps its flow-control slot meanwhile, which slows
  the pull while Kafka is down;
- a message that is not JSON, or not a LogEntry, is logged and nacked at once. Give the
  subscription a retry policy (minimum backoff) and a dead-letter topic, so that
  Pub/Sub spaces out its redeliveries and moves it aside after the maximum delivery
  attempts.

Credentials come from Google's Application Default Credentials; with
``PUBSUB_EMULATOR_HOST`` set, the client talks to that emulator without credentials.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from google.api_core.exceptions import GoogleAPICallError
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from pivotwatch.connectors.delivery import (
    Backoff,
    ConnectorCounters,
    KafkaDelivery,
    OutgoingRecord,
)
from pivotwatch.connectors.files import message_key
from pivotwatch.connectors.metrics_endpoint import serving_metrics
from pivotwatch.errors import BrokerError, ConfigurationError, DecodeError
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import split_message
from pivotwatch.settings import Settings

__all__ = ["CONNECTOR", "PubSubConnector", "records_of", "run"]

logger = logging.getLogger(__name__)

CONNECTOR = "gcp-pubsub"
SHUTDOWN_SECONDS = 30.0


def records_of(topic: str, message_id: str, data: bytes) -> list[OutgoingRecord]:
    """Return the LogEntries in a message's data, each as one record for ``topic``.

    A message holding one LogEntry is sent with its bytes unchanged; a JSON array or
    ``entries`` list is split and each entry re-serialized.

    Raises:
        DecodeError: the data is not JSON, or contains something other than LogEntries.
    """
    try:
        framed = split_message(Source.GCP_AUDIT, data)
    except DecodeError as error:
        raise DecodeError(f"Pub/Sub message {message_id}: {error}") from None
    for reason in framed.skipped:
        logger.info("Pub/Sub message %s: skipped %s", message_id, reason)

    for index, entry in enumerate(framed.records):
        if "logName" not in entry and "protoPayload" not in entry:
            raise DecodeError(
                f"Pub/Sub message {message_id} record {index} is not a LogEntry: it has neither "
                f"logName nor protoPayload (fields: {sorted(entry)[:8]})"
            )
    single = len(framed.records) == 1 and data.lstrip()[:1] == b"{"
    return [
        OutgoingRecord(
            topic,
            message_key(Source.GCP_AUDIT, entry),
            data if single else orjson.dumps(entry),
        )
        for entry in framed.records
    ]


class PubSubConnector:
    """Stream a subscription into the GCP audit raw topic; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        counters: ConnectorCounters,
        delivery: KafkaDelivery,
        subscriber: Any | None = None,
    ) -> None:
        pubsub = settings.connectors.pubsub
        if not pubsub.subscription:
            raise ConfigurationError(
                "the gcp-pubsub connector needs a subscription: set "
                "PIVOTWATCH_CONNECTORS__PUBSUB__SUBSCRIPTION or pass --subscription "
                "(projects/<project>/subscriptions/<name>)"
            )
        self.subscription = pubsub.subscription
        self.settings = pubsub
        self.topic = settings.topics.gcp_audit
        self.counters = counters
        self.delivery = delivery
        self.delivery_settings = settings.connectors.delivery
        self.subscriber = subscriber if subscriber is not None else pubsub_v1.SubscriberClient()
        self.delivery_backoff = Backoff.from_settings(self.delivery_settings)
        """Consecutive delivery failures of every callback thread together."""
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Pull until ``stop`` is set; a broken stream is reopened after a backoff delay."""
        backoff = Backoff.from_settings(self.delivery_settings)
        flow_control = pubsub_v1.types.FlowControl(
            max_messages=self.settings.max_messages, max_bytes=self.settings.max_bytes
        )
        logger.info(
            "%s connector pulling %s (flow control %d messages, %d bytes; %d threads)",
            CONNECTOR,
            self.subscription,
            self.settings.max_messages,
            self.settings.max_bytes,
            self.settings.concurrency,
        )
        self._stop = stop
        while not stop.is_set():
            executor = ThreadPoolExecutor(self.settings.concurrency, f"{CONNECTOR}-callback")
            future = self.subscriber.subscribe(
                self.subscription,
                callback=self.handle,
                flow_control=flow_control,
                scheduler=ThreadScheduler(executor),
                await_callbacks_on_shutdown=True,
            )
            while not stop.wait(0.5) and not future.done():
                pass
            if stop.is_set():
                future.cancel()
            try:
                future.result(timeout=SHUTDOWN_SECONDS)
            except GoogleAPICallError as error:
                self.counters.add("errors")
                delay = backoff.next_delay()
                logger.error(
                    "%s: the stream of %s ended: %s; reopening in %.1f s",
                    CONNECTOR,
                    self.subscription,
                    error,
                    delay,
                )
                stop.wait(delay)
            except (
                Exception
            ) as error:  # the cancelled stream's result; unacked messages are redelivered
                logger.debug("%s: stream closed with %r", CONNECTOR, error)
        logger.info("%s connector stopped: %s", CONNECTOR, self.counters.snapshot())

    def handle(self, message: Message) -> None:
        """Deliver one message's records, then ack; nack on any failure."""
        self.counters.add("received")
        message_id = message.message_id
        try:
            records = records_of(self.topic, message_id, message.data)
        except DecodeError as error:
            self.counters.add("rejected")
            logger.error(
                "%s: rejected message %s (delivery attempt %s): %s; nacking it for the "
                "subscription's dead-letter policy",
                CONNECTOR,
                message_id,
                message.delivery_attempt,
                error,
            )
            message.nack()
            return

        self.counters.add("records_in", len(records))
        try:
            self.delivery.deliver(records)
        except BrokerError as error:
            delay = self.delivery_backoff.next_delay()
            logger.error(
                "%s: %d records of message %s were not delivered: %s; nacking it in %.1f s",
                CONNECTOR,
                len(records),
                message_id,
                error,
                delay,
            )
            self._stop.wait(delay)
            message.nack()
            return
        self.delivery_backoff.reset()
        message.ack()
        self.counters.add("acked")
        logger.debug("%s: delivered %d records of message %s", CONNECTOR, len(records), message_id)


def run(
    settings: Settings, stop: threading.Event, counters: ConnectorCounters | None = None
) -> ConnectorCounters:
    """Run the connector until ``stop`` is set and return its counters.

    Also serves ``/metrics`` when ``connectors.metrics_port`` is set.

    Raises:
        ConfigurationError: the subscription is missing, or the metrics port cannot be bound.
    """
    counters = counters if counters is not None else ConnectorCounters(CONNECTOR)
    delivery = KafkaDelivery(settings, counters)
    connector = PubSubConnector(settings, counters, delivery)
    try:
        with serving_metrics(settings.connectors, counters):
            connector.run(stop)
    finally:
        connector.subscriber.close()
        delivery.close()
    return counters
