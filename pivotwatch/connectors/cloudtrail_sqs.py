"""CloudTrail log files from S3, announced on an SQS queue.

The queue receives one of three message shapes, each possibly wrapped in an SNS
notification envelope (see `decode_body`):

- an S3 event notification (``{"Records": [{"eventSource": "aws:s3", "s3": {...}}]}``),
  whose object keys are URL-encoded;
- CloudTrail's own SNS delivery notice (``{"s3Bucket": ..., "s3ObjectKey": [...]}``);
- ``s3:TestEvent``, which S3 sends once when the notification is configured: skipped.

Every object named is downloaded (at most ``concurrency`` at once, gzip or plain JSON),
split into its Records and sent as one Kafka message per record, keyed by account.
Digest files (key containing ``/CloudTrail-Digest/``, or digest content) carry no
records and are skipped. Keys of organization trails
(``AWSLogs/<org id>/<account>/CloudTrail/...``) are accepted like any other.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson

from pivotwatch.connectors.aws import aws_client
from pivotwatch.connectors.delivery import ConnectorCounters, KafkaDelivery, OutgoingRecord
from pivotwatch.connectors.files import message_key
from pivotwatch.connectors.metrics_endpoint import serving_metrics
from pivotwatch.connectors.sqs import SqsConsumer, SqsMessage, decode_body
from pivotwatch.errors import DecodeError
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import split_message
from pivotwatch.settings import Settings

__all__ = [
    "CONNECTOR",
    "CloudTrailObjectHandler",
    "ObjectRef",
    "build_consumer",
    "object_refs",
    "run",
]

logger = logging.getLogger(__name__)

CONNECTOR = "cloudtrail-sqs"

DIGEST_FOLDER = "/CloudTrail-Digest/"
GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 1024 * 1024
_ACCOUNT_IN_KEY = re.compile(r"AWSLogs/(?:o-[a-z0-9]{10,32}/)?(\d{12})/")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An S3 object that a message names."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def object_refs(message: SqsMessage) -> list[ObjectRef] | None:
    """Return the objects a message names, or ``None`` for an ``s3:TestEvent``.

    Raises:
        DecodeError: the body is not JSON, or is none of the shapes in the module docstring.
    """
    document = decode_body(message)
    if not isinstance(document, dict):
        raise DecodeError(
            f"message {message.message_id} body is a JSON {type(document).__name__}; expected "
            "an S3 event notification or a CloudTrail SNS notification object"
        )
    if document.get("Event") == "s3:TestEvent":
        return None
    if isinstance(document.get("Records"), list):
        return _s3_event_refs(message, document["Records"])
    if "s3Bucket" in document and "s3ObjectKey" in document:
        return _cloudtrail_notice_refs(message, document)
    raise DecodeError(
        f"message {message.message_id} is neither an S3 event notification nor a CloudTrail "
        f"SNS notification (top-level fields: {sorted(document)[:8]})"
    )


def _s3_event_refs(message: SqsMessage, records: list[Any]) -> list[ObjectRef]:
    refs = []
    for index, record in enumerate(records):
        try:
            event_name = record["eventName"]
            bucket = record["s3"]["bucket"]["name"]
            raw_key = record["s3"]["object"]["key"]
        except (KeyError, TypeError):
            raise DecodeError(
                f"message {message.message_id} S3 event record {index} lacks eventName, "
                "s3.bucket.name or s3.object.key"
            ) from None
        if not str(event_name).startswith("ObjectCreated:"):
            logger.debug("message %s: ignoring S3 event %s", message.message_id, event_name)
            continue
        refs.append(ObjectRef(bucket, unquote_plus(raw_key)))
    return refs


def _cloudtrail_notice_refs(message: SqsMessage, document: dict[str, Any]) -> list[ObjectRef]:
    bucket = document["s3Bucket"]
    keys = document["s3ObjectKey"]
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(bucket, str) or not isinstance(keys, list):
        raise DecodeError(
            f"message {message.message_id} CloudTrail notification has s3Bucket {bucket!r} "
            f"and s3ObjectKey {keys!r}; expected a string and a list of strings"
        )
    return [ObjectRef(bucket, str(key)) for key in keys]


def account_in_key(key: str) -> str | None:
    """Return the account id in a CloudTrail object key, also for organization trails."""
    match = _ACCOUNT_IN_KEY.search(key)
    return match.group(1) if match else None


class CloudTrailObjectHandler:
    """Turns an SQS message into the CloudTrail records of the objects it names."""

    def __init__(
        self,
        s3: Any,
        topic: str,
        downloads: ThreadPoolExecutor,
        max_object_bytes: int,
    ) -> None:
        self._s3 = s3
        self._topic = topic
        self._downloads = downloads
        self._max_object_bytes = max_object_bytes

    def records_of(self, message: SqsMessage) -> list[OutgoingRecord]:
        refs = object_refs(message)
        if refs is None:
            logger.info("message %s is an s3:TestEvent; deleting it", message.message_id)
            return []
        wanted = [ref for ref in refs if DIGEST_FOLDER not in ref.key]
        for ref in refs:
            if ref not in wanted:
                logger.debug("message %s: skipping digest file %s", message.message_id, ref)
        if not wanted:
            return []

        logger.info(
            "message %s names %s", message.message_id, ", ".join(str(ref) for ref in wanted)
        )
        # Every object must be read before the message counts as delivered, so a failure
        # of any one of them raises here and the whole message is redelivered.
        results = list(self._downloads.map(self._read_object, wanted))
        return [record for records in results for record in records]

    def _read_object(self, ref: ObjectRef) -> list[OutgoingRecord]:
        data = self._download(ref)
        try:
            framed = split_message(Source.CLOUDTRAIL, data)
        except DecodeError as error:
            raise DecodeError(f"{ref} is not a CloudTrail log file: {error}") from None
        for reason in framed.skipped:
            logger.info("skipping %s: %s", ref, reason)
        fallback = account_in_key(ref.key)
        records = []
        for record in framed.records:
            key = message_key(Source.CLOUDTRAIL, record)
            if key is None and fallback is not None:
                key = fallback.encode()
            records.append(OutgoingRecord(self._topic, key, orjson.dumps(record)))
        logger.debug("%s: %d records", ref, len(records))
        return records

    def _download(self, ref: ObjectRef) -> bytes:
        response = self._s3.get_object(Bucket=ref.bucket, Key=ref.key)
        body = response["Body"]
        try:
            raw = body.read(self._max_object_bytes + 1)
        finally:
            body.close()
        if len(raw) > self._max_object_bytes:
            raise DecodeError(
                f"{ref} is larger than max_object_bytes ({self._max_object_bytes} bytes); "
                "raise the setting to read it"
            )
        if not raw.startswith(GZIP_MAGIC):
            return bytes(raw)
        return self._gunzip(ref, raw)

    def _gunzip(self, ref: ObjectRef, raw: bytes) -> bytes:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                data = stream.read(self._max_object_bytes + 1)
        except (OSError, EOFError, zlib.error) as error:
            raise DecodeError(f"{ref} is not a valid gzip file: {error}") from None
        if len(data) > self._max_object_bytes:
            raise DecodeError(
                f"{ref} decompresses to more than max_object_bytes ({self._max_object_bytes} "
                "bytes); raise the setting to read it"
            )
        return data


def build_consumer(
    settings: Settings, counters: ConnectorCounters, delivery: KafkaDelivery
) -> tuple[SqsConsumer, ThreadPoolExecutor]:
    """Build the consumer of the CloudTrail S3 notification queue and its download pool.

    The caller shuts the pool down after the consumer has stopped.
    """
    connectors = settings.connectors
    queue = connectors.cloudtrail_sqs
    downloads = ThreadPoolExecutor(queue.concurrency, f"{CONNECTOR}-download")
    s3 = aws_client("s3", connectors.aws, max_pool_connections=queue.concurrency + 2)
    handler = CloudTrailObjectHandler(
        s3, settings.topics.cloudtrail, downloads, queue.max_object_bytes
    )
    consumer = SqsConsumer(
        CONNECTOR, queue, connectors.aws, connectors.delivery, delivery, handler, counters
    )
    return consumer, downloads


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
    consumer, downloads = build_consumer(settings, counters, delivery)
    try:
        with serving_metrics(settings.connectors, counters):
            consumer.run(stop)
    finally:
        downloads.shutdown(wait=True)
        delivery.close()
    return counters
