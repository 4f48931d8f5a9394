"""Servers and helpers shared by the live connector tests; this module contains no tests.

moto runs in server mode on a free loopback port, so boto3 talks to it over HTTP
exactly as to AWS. Each test uses its own bucket, queue and topic names.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from pivotwatch.settings import Settings, load_settings
from pivotwatch.streams.embedded import find_free_port

SAMPLE = Path(__file__).resolve().parents[2] / "pivotwatch" / "samples" / "eks-imds-pivot"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server on 127.0.0.1, for S3, SQS, SNS, EventBridge and EC2."""
    from moto.server import ThreadedMotoServer

    port = find_free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials for the moto server; no credential file or metadata lookup is read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


def live_settings(bootstrap: str, prefix: str, **connectors: Any) -> Settings:
    """Settings with per-test topic names and short delivery timeouts."""
    names = ("cloudtrail", "gcp_audit", "falco", "inventory", "events", "alerts", "dead_letter")
    topics = {name: f"{prefix}.{name}" for name in names}
    delivery = {
        "delivery_timeout_seconds": 6.0,
        "connect_timeout_seconds": 3.0,
        "retry_initial_seconds": 0.2,
        "retry_max_seconds": 1.0,
    }
    merged: dict[str, Any] = {"delivery": delivery, **connectors}
    return load_settings(
        kafka={"bootstrap": bootstrap}, topics={**topics, "partitions": 2}, connectors=merged
    )


def boto(service: str, endpoint: str, region: str = REGION) -> Any:
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=endpoint)


def gzip_json(document: Any) -> bytes:
    return gzip.compress(orjson.dumps(document))


def cloudtrail_file(account: str, count: int, tag: str) -> dict[str, Any]:
    """A CloudTrail log file of ``count`` records with event ids ``<tag>-<n>``."""
    records = [
        {
            "eventVersion": "1.09",
            "userIdentity": {"type": "AssumedRole", "accountId": account},
            "eventTime": "2026-11-30T08:00:00Z",
            "eventSource": "sts.amazonaws.com",
            "eventName": "GetCallerIdentity",
            "awsRegion": REGION,
            "sourceIPAddress": "198.51.100.7",
            "eventID": f"{tag}-{index}",
            "recipientAccountId": account,
        }
        for index in range(count)
    ]
    return {"Records": records}


def s3_event(bucket: str, key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 event notification as S3 sends it; the key is URL-encoded."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventName": event_name,
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": quote_plus(key, safe="/"), "size": 1},
                },
            }
        ]
    }


def read_topic_records(
    bootstrap: str, topic: str, expected: int, timeout: float = 20.0
) -> list[ConsumerRecord]:
    """Read a topic from the start until ``expected`` records arrived, then 1 s longer."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        partitions: set[int] = set()
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, partition) for partition in partitions])
        consumer.seek_to_beginning()
        received: list[ConsumerRecord] = []
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                received.extend(batch)
            if len(received) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + 1.0
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
        return received
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Messages in the queue, visible or in flight."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@contextmanager
def running(target: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run ``target(stop)`` in a thread until the block exits; re-raise what it raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(stop)
        except BaseException as error:
            errors.append(error)
            raise

    thread = threading.Thread(target=run, name="connector-under-test", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "the connector did not stop within 30 s"
    assert not errors, f"the connector raised {errors[0]!r}"
