"""GCP audit from Pub/Sub against Google's pstest server and a real Kafka broker.

``make test`` starts pstest and exports ``PUBSUB_EMULATOR_HOST``; without it these
tests skip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from pivotwatch.connectors import pubsub
from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.connectors.pubsub import records_of
from pivotwatch.errors import DecodeError
from tests.connectors.test_live_support import live_settings, read_topic_records, running, wait_for

PROJECT = "payments-prod-4821"


def log_entry(insert_id: str) -> dict[str, Any]:
    return {
        "insertId": insert_id,
        "logName": f"projects/{PROJECT}/logs/cloudaudit.googleapis.com%2Factivity",
        "resource": {"type": "gce_instance", "labels": {"project_id": PROJECT}},
        "timestamp": "2026-11-30T08:00:00Z",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "methodName": "v1.compute.instances.list",
            "serviceName": "compute.googleapis.com",
        },
    }


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> str:
    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        pytest.skip("PUBSUB_EMULATOR_HOST is unset: no Pub/Sub server (make test starts pstest)")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    return host


@pytest.fixture
def subscription(emulator: str, topic_prefix: str) -> Iterator[tuple[Any, str]]:
    """A topic and a subscription on the emulator; yields the publisher and the topic path."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(PROJECT, f"{topic_prefix}-audit")
    subscription_path = subscriber.subscription_path(PROJECT, f"{topic_prefix}-audit")
    publisher.create_topic(name=topic_path)
    subscriber.create_subscription(
        name=subscription_path, topic=topic_path, ack_deadline_seconds=10
    )
    subscriber.close()
    yield publisher, topic_path
    publisher.stop()


def subscription_path(topic_path: str) -> str:
    return topic_path.replace("/topics/", "/subscriptions/")


def test_records_of_single_entry_keeps_bytes() -> None:
    data = orjson.dumps(log_entry("a")) + b"\n"
    records = records_of("raw", "m", data)
    assert [record.value for record in records] == [data]


def test_records_of_array_split_and_keyed() -> None:
    records = records_of("raw", "m", orjson.dumps([log_entry("a"), log_entry("b")]))
    assert [record.key for record in records] == [PROJECT.encode(), PROJECT.encode()]


def test_records_of_not_json_raises() -> None:
    with pytest.raises(DecodeError, match="message m-7"):
        records_of("raw", "m-7", b"\x00garbage")


def test_records_of_not_log_entry_raises() -> None:
    with pytest.raises(DecodeError, match="not a LogEntry"):
        records_of("raw", "m", b'{"hello": 1}')


@pytest.mark.integration
def test_pubsub_entries_delivered_garbage_nacked(
    kafka_bootstrap: str,
    topic_prefix: str,
    subscription: tuple[Any, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher, topic_path = subscription
    for index in range(5):
        publisher.publish(topic_path, orjson.dumps(log_entry(f"ps-{index}"))).result()
    publisher.publish(topic_path, b"not json at all").result()
    settings = live_settings(
        kafka_bootstrap,
        topic_prefix,
        pubsub={"subscription": subscription_path(topic_path), "max_messages": 3},
    )
    counters = ConnectorCounters(pubsub.CONNECTOR)

    with (
        caplog.at_level(logging.ERROR, logger="pivotwatch.connectors.pubsub"),
        running(lambda stop: pubsub.run(settings, stop, counters)),
    ):
        wait_for(lambda: counters.acked == 5 and counters.rejected >= 1, 20, "5 acks, 1 reject")

    records = read_topic_records(kafka_bootstrap, settings.topics.gcp_audit, 5)
    insert_ids = sorted({orjson.loads(record.value)["insertId"] for record in records})
    assert insert_ids == [f"ps-{index}" for index in range(5)]
    assert {record.key for record in records} == {PROJECT.encode()}
    assert "is not valid JSON" in caplog.text
