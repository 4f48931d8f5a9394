"""Fixtures for tests that run whole workers against a real broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pivotwatch.settings import Settings, load_settings
from pivotwatch.streams.scenario import isolated_settings
from tests.integration.support import WorkerProcess

# Short consumer-group timeouts, so a killed worker's partitions move within seconds.
SESSION_TIMEOUT_SECONDS = 6


@pytest.fixture
def isolated(kafka_bootstrap: str) -> Settings:
    """Settings on the test broker with topics and a consumer group of this test alone."""
    base = load_settings(
        kafka={"bootstrap": kafka_bootstrap},
        worker={
            "session_timeout_seconds": SESSION_TIMEOUT_SECONDS,
            "heartbeat_interval_seconds": 1,
        },
    )
    return isolated_settings(base)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start worker processes; every one still running is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.stop()
