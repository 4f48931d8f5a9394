"""Alerts for the output tests: recorded ones, and fresh ones from scenario runs."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pivotwatch.cli.scenario import (
    EMBEDDED_HEARTBEAT_INTERVAL,
    EMBEDDED_SESSION_TIMEOUT,
    run_with_broker,
)
from pivotwatch.schemas.alert import Alert
from pivotwatch.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).resolve().parents[2] / "pivotwatch" / "samples" / "eks-imds-pivot"
SCENARIO_TIMEOUT = 300.0


def read_alert_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def recorded_alerts() -> list[Alert]:
    """Every alert of the recorded fixtures, decoded into the model."""
    decoder = msgspec.json.Decoder(Alert)
    return [
        decoder.decode(line)
        for path in sorted(FIXTURES.glob("*.alerts.jsonl"))
        for line in read_alert_lines(path)
    ]


@pytest.fixture(scope="session")
def scenario_alert_messages(kafka_bootstrap: str, shared_dir: Path) -> dict[str, list[bytes]]:
    """Alert messages of every shared scenario and of the bundled sample, by folder name.

    Each folder runs once per session on the test broker, with topics new to the run.
    """
    # A lone in-process worker has no peers, so short group timeouts only make its start faster.
    worker = {
        "session_timeout_seconds": EMBEDDED_SESSION_TIMEOUT,
        "heartbeat_interval_seconds": EMBEDDED_HEARTBEAT_INTERVAL,
    }
    settings = Settings(kafka={"bootstrap": kafka_bootstrap}, worker=worker)
    folders = [
        *sorted(path for path in (shared_dir / "scenarios").iterdir() if path.is_dir()),
        SAMPLE,
    ]
    return {
        folder.name: run_with_broker(
            folder, settings, embedded=False, timeout=SCENARIO_TIMEOUT
        ).alerts
        for folder in folders
    }
