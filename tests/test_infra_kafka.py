"""The test broker itself: records produced with acks=all can be consumed back in order."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

pytestmark = pytest.mark.integration

RECORD_COUNT = 20


@pytest.fixture
def topic(kafka_bootstrap: str, topic_prefix: str) -> str:
    """A new topic with one partition, so consumption order equals production order."""
    name = f"{topic_prefix}.infra"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    return name


def test_broker_round_trip_acks_all(kafka_bootstrap: str, topic: str) -> None:
    sent = [(f"key-{i}".encode(), f"value-{i}".encode()) for i in range(RECORD_COUNT)]

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", retries=5)
    try:
        offsets = [producer.send(topic, key=k, value=v).get(timeout=30).offset for k, v in sent]
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=10_000,
    )
    try:
        received = []
        for record in consumer:
            received.append((record.key, record.value))
            if len(received) == RECORD_COUNT:
                break
    finally:
        consumer.close()

    assert offsets == list(range(RECORD_COUNT))
    assert received == sent
