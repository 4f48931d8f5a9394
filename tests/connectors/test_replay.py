"""Replay: summary counts, the command line, the producer and a scenario through Kafka.

The producer tests live here beside the replay that drives it. Integration tests use the
``kafka_bootstrap`` broker and topics named with ``topic_prefix``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from rich.console import Console

from pivotwatch.cli.replay import replay_command
from pivotwatch.connectors.files import Outcome
from pivotwatch.connectors.producer import RecordProducer, kafka_client_config
from pivotwatch.connectors.replay import UNKNOWN_SOURCE, ReplaySummary, replay, summary_table
from pivotwatch.errors import BrokerError
from pivotwatch.schemas.event import Source
from pivotwatch.settings import KafkaSettings, Settings, load_settings
from pivotwatch.streams.embedded import EmbeddedBroker

SCENARIO = "aws-eks-imds-node-role-exfil"


# --- helpers ------------------------------------------------------------------------------


def prefixed_settings(bootstrap: str, prefix: str) -> Settings:
    names = ("cloudtrail", "gcp_audit", "falco", "inventory", "events", "alerts", "dead_letter")
    topics = {name: f"{prefix}.{name}" for name in names}
    return load_settings(kafka={"bootstrap": bootstrap}, topics=topics)


def consume_topic(bootstrap: str, topic: str, expected: int) -> list[ConsumerRecord]:
    """Read a topic from the start until ``expected`` records arrived, then briefly longer."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, partition) for partition in partitions])
        consumer.seek_to_beginning()
        received: list[ConsumerRecord] = []
        deadline = time.monotonic() + 30
        quiet_until = None
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=500)
            for batch in batches.values():
                received.extend(batch)
            if len(received) >= expected and quiet_until is None:
                quiet_until = time.monotonic() + 1.5
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
        return received
    finally:
        consumer.close()


def scenario_counts(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Parse a scenario folder independently of the readers: the records per source."""
    cloudtrail = [
        record
        for file in sorted((folder / "cloudtrail").glob("*.json"))
        for record in json.loads(file.read_text())["Records"]
    ]
    falco = [json.loads(line) for line in (folder / "falco.jsonl").read_text().splitlines() if line]
    inventory: list[dict[str, Any]] = []
    for file in sorted((folder / "inventory").glob("*.json")):
        document = json.loads(file.read_text())
        if isinstance(document, list):
            inventory.extend(document)
        elif "Reservations" in document:
            inventory.extend(document["Reservations"])
        else:
            inventory.extend(document["items"])
    return {"cloudtrail": cloudtrail, "falco": falco, "inventory": inventory}


# --- summary ------------------------------------------------------------------------------


def test_summary_counts_by_source_and_outcome() -> None:
    summary = ReplaySummary(files=2)
    summary.add(Source.FALCO, Outcome.SENT)
    summary.add(Source.FALCO, Outcome.SENT)
    summary.add(Source.CLOUDTRAIL, Outcome.SKIPPED_DIGEST)
    summary.add(None, Outcome.INVALID)

    assert summary.sent == 2
    assert summary.count("falco") == 2
    assert summary.count(outcome=Outcome.INVALID) == 1
    assert summary.count(UNKNOWN_SOURCE, Outcome.INVALID) == 1
    assert summary.count("cloudtrail", Outcome.SENT) == 0
    assert summary.source_labels() == ["cloudtrail", "falco", UNKNOWN_SOURCE]


def test_summary_table_rows_and_totals() -> None:
    summary = ReplaySummary(files=1)
    summary.add(Source.GCP_AUDIT, Outcome.SENT)
    summary.add(None, Outcome.UNRECOGNIZED)
    console = Console(record=True, width=120)

    console.print(summary_table(summary))
    text = console.export_text()

    assert "Replay of 1 file" in text
    assert "gcp_audit" in text
    assert "unknown" in text
    assert "total" in text


# --- command line -------------------------------------------------------------------------


def test_cli_help_names_options() -> None:
    result = CliRunner().invoke(replay_command, ["--help"])

    assert result.exit_code == 0
    for option in ("--source", "--bootstrap", "--no-progress", "PATH..."):
        assert option in result.output


def test_cli_invalid_bootstrap_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(replay_command, ["--bootstrap", "localhost", str(tmp_path)])

    assert result.exit_code == 2
    assert "HOST:PORT" in result.output


def test_cli_missing_path_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(replay_command, [str(tmp_path / "absent.json")])

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_cli_unknown_source_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(replay_command, ["--source", "syslog", str(tmp_path)])

    assert result.exit_code == 2


def test_cli_invalid_settings_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIVOTWATCH_TOPICS__PARTITIONS", "0")

    result = CliRunner().invoke(replay_command, [str(tmp_path)])

    assert result.exit_code == 2
    assert "invalid settings" in result.output


# --- producer -----------------------------------------------------------------------------


def test_client_config_maps_sasl_settings() -> None:
    kafka = KafkaSettings(
        bootstrap="kafka-1:9093, kafka-2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="replay",
        sasl_password="s3cret",  # type: ignore[arg-type]
    )

    config = kafka_client_config(kafka)

    assert config["bootstrap_servers"] == ["kafka-1:9093", "kafka-2:9093"]
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "replay"
    assert config["sasl_plain_password"] == "s3cret"


@pytest.mark.integration
def test_producer_idempotent_with_test_broker(kafka_bootstrap: str) -> None:
    with RecordProducer(KafkaSettings(bootstrap=kafka_bootstrap)) as producer:
        assert producer.idempotent


@pytest.mark.integration
def test_producer_oversized_record_raises(kafka_bootstrap: str, topic_prefix: str) -> None:
    with (
        RecordProducer(KafkaSettings(bootstrap=kafka_bootstrap)) as producer,
        pytest.raises(BrokerError, match=f"{topic_prefix}.big"),
    ):
        producer.send(f"{topic_prefix}.big", None, b"x" * 2_000_000)


@pytest.mark.integration
def test_producer_flush_reports_undelivered(topic_prefix: str) -> None:
    # A broker of its own, stopped while records wait to be delivered.
    topic = f"{topic_prefix}.lost"
    with EmbeddedBroker() as broker:
        producer = RecordProducer(
            KafkaSettings(bootstrap=broker.bootstrap),
            linger_ms=0,
            request_timeout_ms=1000,
            delivery_timeout_ms=3000,
            max_block_ms=3000,
        )
        producer.send(topic, b"k", b"first")
        producer.flush(timeout=15)
    try:
        producer.send(topic, b"k", b"second")
        with pytest.raises(BrokerError, match=topic):
            producer.flush(timeout=30)
    finally:
        producer.close(timeout=0)

    assert producer.delivered[topic] == 1


# --- scenario through Kafka ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.shared
def test_replay_scenario_to_raw_topics(
    shared_dir: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    settings = prefixed_settings(kafka_bootstrap, topic_prefix)
    expected = scenario_counts(folder)
    falco_lines = [line for line in (folder / "falco.jsonl").read_bytes().splitlines() if line]

    summary = replay([folder], settings, progress=False)

    topics = settings.topics
    received = {
        "cloudtrail": consume_topic(
            kafka_bootstrap, topics.cloudtrail, len(expected["cloudtrail"])
        ),
        "falco": consume_topic(kafka_bootstrap, topics.falco, len(expected["falco"])),
        "inventory": consume_topic(kafka_bootstrap, topics.inventory, len(expected["inventory"])),
        "gcp_audit": consume_topic(kafka_bootstrap, topics.gcp_audit, 0),
    }

    # Counts: every record once, and the summary agrees.
    for source in ("cloudtrail", "falco", "inventory"):
        assert len(received[source]) == len(expected[source]), source
        assert summary.count(source, Outcome.SENT) == len(expected[source]), source
    assert received["gcp_audit"] == []
    assert summary.count(UNKNOWN_SOURCE, Outcome.UNRECOGNIZED) == 1  # expected.json

    # Values: CloudTrail records unchanged, Falco lines byte for byte.
    cloudtrail_ids = Counter(
        orjson.loads(message.value)["eventID"] for message in received["cloudtrail"]
    )
    assert cloudtrail_ids == Counter(record["eventID"] for record in expected["cloudtrail"])
    assert sorted(message.value for message in received["falco"]) == sorted(falco_lines)

    # Keys: account for CloudTrail, host for Falco, owner account for EC2 reservations.
    for message in received["cloudtrail"]:
        assert message.key == orjson.loads(message.value)["recipientAccountId"].encode()
    for message in received["falco"]:
        assert message.key == orjson.loads(message.value)["hostname"].encode()
    inventory_keys = Counter(message.key for message in received["inventory"])
    reservations = [record for record in expected["inventory"] if "OwnerId" in record]
    assert inventory_keys[b"111122223333"] == len(reservations)
    assert inventory_keys[None] == len(expected["inventory"]) - len(reservations)

    # Order: every inventory record was produced before any other record.
    last_inventory = max(message.timestamp for message in received["inventory"])
    first_other = min(message.timestamp for message in received["cloudtrail"] + received["falco"])
    assert last_inventory <= first_other


@pytest.mark.integration
def test_cli_replay_nothing_valid_exits_1(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIVOTWATCH_TOPICS__FALCO", f"{topic_prefix}.falco")
    (tmp_path / "falco.jsonl").write_text("not json\nstill not json\n")

    result = CliRunner().invoke(
        replay_command, ["--bootstrap", kafka_bootstrap, "--no-progress", str(tmp_path)]
    )

    assert result.exit_code == 1
    assert "no record was sent" in result.output


@pytest.mark.integration
def test_cli_replay_falco_stdin(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"{topic_prefix}.falco"
    monkeypatch.setenv("PIVOTWATCH_TOPICS__FALCO", topic)
    line = b'{"output": "o", "priority": "Notice", "rule": "r", "hostname": "node-7"}'

    result = CliRunner().invoke(
        replay_command,
        ["--bootstrap", kafka_bootstrap, "--source", "falco", "-"],
        input=line + b"\n",
    )
    received = consume_topic(kafka_bootstrap, topic, 1)

    assert result.exit_code == 0, result.output
    assert [(message.key, message.value) for message in received] == [(b"node-7", line)]
