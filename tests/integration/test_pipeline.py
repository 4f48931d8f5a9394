"""The worker against a real broker: dead letters, the demo, the alert stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pivotwatch.cli.main import cli
from pivotwatch.connectors.producer import kafka_client_config
from pivotwatch.settings import Settings
from pivotwatch.streams.app import Pipeline
from pivotwatch.streams.runner import OffsetWatcher, read_topic, running_worker
from pivotwatch.streams.topics import ensure_topics

pytestmark = pytest.mark.integration

SAMPLE_FALCO = (
    Path(__file__).resolve().parents[2]
    / "pivotwatch"
    / "samples"
    / "eks-imds-pivot"
    / "falco.jsonl"
)
GARBAGE = [b"{not json", b"42", b'["a string"]', b'{"eventVersion": "1.08"}']


def falco_lines() -> list[bytes]:
    return [line for line in SAMPLE_FALCO.read_bytes().splitlines() if line.strip()]


def read_dead_letters(settings: Settings) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = KafkaConsumer(**kafka_client_config(settings.kafka), enable_auto_commit=False)
    try:
        topic = settings.topics.dead_letter
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[tuple[bytes, dict[str, bytes]]] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=500).values():
                found.extend((record.value, dict(record.headers)) for record in records)
        return found
    finally:
        consumer.close()


async def send_and_process(settings: Settings, messages: list[tuple[str, bytes]]) -> Pipeline:
    ensure_topics(settings)
    pipeline = Pipeline(settings)
    watcher = OffsetWatcher(settings)
    try:
        async with running_worker(pipeline):
            producer = KafkaProducer(**kafka_client_config(settings.kafka), acks="all")
            for topic, value in messages:
                producer.send(topic, value=value)
            producer.flush()
            producer.close()
            await watcher.wait(list(settings.topics.raw_topics().values()), 60)
            await watcher.wait([settings.topics.events], 60)
    finally:
        watcher.close()
    return pipeline


def test_garbage_goes_to_dead_letter_topic(isolated: Settings) -> None:
    falco = falco_lines()
    messages = [(isolated.topics.cloudtrail, value) for value in GARBAGE]
    messages += [(isolated.topics.falco, line) for line in falco]

    pipeline = asyncio.run(send_and_process(isolated, messages))

    dead = read_dead_letters(isolated)
    assert sorted(value for value, _ in dead) == sorted(GARBAGE)
    for value, headers in dead:
        assert headers["pivotwatch.source.topic"] == isolated.topics.cloudtrail.encode()
        assert int(headers["pivotwatch.source.offset"]) >= 0
        assert headers["pivotwatch.error.reason"], value
    assert pipeline.counts["normalize.dead_letter"] == len(GARBAGE)
    assert pipeline.counts["normalize.normalized"] == len(falco)


def test_batched_raw_messages_are_split(isolated: Settings) -> None:
    falco = falco_lines()
    batch = b"[" + b",".join(falco) + b"]"

    pipeline = asyncio.run(send_and_process(isolated, [(isolated.topics.falco, batch)]))

    assert pipeline.counts["normalize.normalized"] == len(falco)
    events = read_topic(isolated, isolated.topics.events)
    ids = {event["event_id"] for value in events for event in orjson.loads(value)["events"]}
    assert ids == {orjson.loads(line)["uuid"] for line in falco}


def test_demo_prints_a_chain(kafka_bootstrap: str) -> None:
    result = CliRunner().invoke(cli, ["demo", "--bootstrap", kafka_bootstrap])

    assert result.exit_code == 0, result.output
    assert "pivot_chain" in result.output
    assert "CRITICAL" in result.output
    assert "checkout/web-" in result.output
