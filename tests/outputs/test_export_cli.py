"""The ``export`` commands, end to end: alert topic in, Security Hub or OCSF out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import msgspec
import orjson
import pytest
from click.testing import CliRunner
from moto.server import ThreadedMotoServer

from pivotwatch.cli.export import export_group
from pivotwatch.connectors.producer import RecordProducer
from pivotwatch.schemas.alert import Alert
from pivotwatch.settings import Settings
from pivotwatch.streams.topics import ensure_topics


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def publish_alerts(settings: Settings, alerts: list[Alert]) -> None:
    ensure_topics(settings, [settings.topics.alerts])
    with RecordProducer(settings.kafka) as producer:
        for alert in alerts:
            producer.send(
                settings.topics.alerts, alert.chain_id.encode(), msgspec.json.encode(alert)
            )
        producer.flush()


@pytest.mark.parametrize("command", ["ocsf", "securityhub"])
def test_export_help_names_units_and_defaults(command: str) -> None:
    result = CliRunner().invoke(export_group, [command, "--help"])
    assert result.exit_code == 0
    assert "seconds" in result.output
    assert "default: 100" in result.output
    assert "default: follow until Ctrl-C" in result.output


def test_export_securityhub_rejects_bad_account(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    args = [
        "securityhub",
        "--region",
        "us-east-1",
        "--account-id",
        "12ab",
        "--endpoint-url",
        moto_endpoint,
    ]
    result = CliRunner().invoke(export_group, args)
    assert result.exit_code == 2
    assert "'12ab' is invalid: expected 12 digits" in result.output


@pytest.mark.integration
def test_export_securityhub_command(
    kafka_bootstrap: str,
    topic_prefix: str,
    moto_endpoint: str,
    recorded_alerts: list[Alert],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("PIVOTWATCH_TOPICS__ALERTS", f"{topic_prefix}.alerts")
    settings = Settings(
        kafka={"bootstrap": kafka_bootstrap}, topics={"alerts": f"{topic_prefix}.alerts"}
    )
    publish_alerts(settings, recorded_alerts)

    args = [
        "securityhub",
        "--bootstrap",
        kafka_bootstrap,
        "--group",
        f"{topic_prefix}-sh",
        "--region",
        "us-east-1",
        "--endpoint-url",
        moto_endpoint,
        "--idle-timeout",
        "5",
    ]
    result = CliRunner().invoke(export_group, args)

    client: Any = boto3.client("securityhub", region_name="us-east-1", endpoint_url=moto_endpoint)
    imported = {
        finding["Id"]
        for page in client.get_paginator("get_findings").paginate()
        for finding in page["Findings"]
    }
    assert result.exit_code == 0, result.output
    assert f"{len(recorded_alerts)} findings imported" in result.output
    assert {alert.chain_id for alert in recorded_alerts} <= imported


@pytest.mark.integration
def test_export_ocsf_command_to_stdout(
    kafka_bootstrap: str,
    topic_prefix: str,
    recorded_alerts: list[Alert],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIVOTWATCH_TOPICS__ALERTS", f"{topic_prefix}.alerts")
    settings = Settings(
        kafka={"bootstrap": kafka_bootstrap}, topics={"alerts": f"{topic_prefix}.alerts"}
    )
    publish_alerts(settings, recorded_alerts)

    args = [
        "ocsf",
        "--bootstrap",
        kafka_bootstrap,
        "--group",
        f"{topic_prefix}-ocsf",
        "--stdout",
        "--max-alerts",
        "4",
    ]
    result = CliRunner().invoke(export_group, args)

    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.exit_code == 0, result.stderr
    assert len(lines) == 4
    assert {orjson.loads(line)["class_uid"] for line in lines} == {2004}
