"""CloudTrail records from EventBridge, delivered through an SQS queue.

An EventBridge rule with an SQS target (directly, or through an SNS topic) puts each
event in the queue as ``{"version": "0", "detail-type": "AWS API Call via CloudTrail",
"account": ..., "detail": {<CloudTrail record>}}``. Every CloudTrail detail type
("AWS API Call via CloudTrail", "AWS Console Sign In via CloudTrail", "AWS Service
Event via CloudTrail", "AWS Insight via CloudTrail", ...) ends in "via CloudTrail";
its ``detail`` is sent as one record. Events of other detail types carry no CloudTrail
record, so their messages are deleted without sending anything.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import orjson

from pivotwatch.connectors.delivery import ConnectorCounters, KafkaDelivery, OutgoingRecord
from pivotwatch.connectors.files import message_key
from pivotwatch.connectors.metrics_endpoint import serving_metrics
from pivotwatch.connectors.sqs import SqsConsumer, SqsMessage, decode_body
from pivotwatch.errors import DecodeError
from pivotwatch.schemas.event import Source
from pivotwatch.settings import Settings

__all__ = ["CONNECTOR", "EventBridgeHandler", "build_consumer", "cloudtrail_event", "run"]

logger = logging.getLogger(__name__)

CONNECTOR = "eventbridge-sqs"
CLOUDTRAIL_DETAIL_SUFFIX = "via CloudTrail"


def cloudtrail_event(message: SqsMessage) -> dict[str, Any] | None:
    """Return the EventBridge event of a message when its ``detail`` is a CloudTrail record.

    Returns ``None`` for events of other detail types.

    Raises:
        DecodeError: the body is not JSON, not an EventBridge event, or a CloudTrail
            event whose ``detail`` is not an object.
    """
    event = decode_body(message)
    if not isinstance(event, dict) or not isinstance(event.get("detail-type"), str):
        raise DecodeError(
            f"message {message.message_id} is not an EventBridge event: expected a JSON "
            "object with detail-type and detail"
        )
    detail_type = event["detail-type"]
    if not detail_type.endswith(CLOUDTRAIL_DETAIL_SUFFIX):
        logger.info(
            "message %s: EventBridge event %s of type %r is not from CloudTrail; deleting it",
            message.message_id,
            event.get("id"),
            detail_type,
        )
        return None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise DecodeError(
            f"message {message.message_id}: EventBridge event {event.get('id')!r} of type "
            f"{detail_type!r} has no detail object"
        )
    return event


class EventBridgeHandler:
    """Turns an SQS message holding an EventBridge event into its CloudTrail record."""

    def __init__(self, topic: str) -> None:
        self._topic = topic

    def records_of(self, message: SqsMessage) -> list[OutgoingRecord]:
        event = cloudtrail_event(message)
        if event is None:
            return []
        record = event["detail"]
        key = message_key(Source.CLOUDTRAIL, record)
        account = event.get("account")
        if key is None and isinstance(account, str) and account:
            key = account.encode()
        logger.debug(
            "message %s carries CloudTrail event %s", message.message_id, record.get("eventID")
        )
        return [OutgoingRecord(self._topic, key, orjson.dumps(record))]


def build_consumer(
    settings: Settings, counters: ConnectorCounters, delivery: KafkaDelivery
) -> SqsConsumer:
    """Build the consumer of the EventBridge queue."""
    connectors = settings.connectors
    return SqsConsumer(
        CONNECTOR,
        connectors.eventbridge_sqs,
        connectors.aws,
        connectors.delivery,
        delivery,
        EventBridgeHandler(settings.topics.cloudtrail),
        counters,
    )


def run(
    settings: Settings, stop: threading.Event, counters: ConnectorCounters | None = None
) -> ConnectorCounters:
    """Run the connector until ``stop`` is set and return its counters.

    Also serves ``/metrics`` when ``connectors.metrics_port`` is set.

    Raises:
        ConfigurationError: the queue URL is missing, or the metrics port cannot be bound.
    """
    counters = counters if counters is not None else ConnectorCounters(CONNECTOR)
    delivery = KafkaDelivery(settings, counters)
    try:
        consumer = build_consumer(settings, counters, delivery)
        with serving_metrics(settings.connectors, counters):
            consumer.run(stop)
    finally:
        delivery.close()
    return counters
