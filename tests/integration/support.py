"""Helpers for tests that run whole workers against a real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from pivotwatch.settings import Settings
from pivotwatch.streams.runner import OffsetWatcher


def settings_environment(settings: Settings) -> dict[str, str]:
    """Return the environment that gives a worker process these settings."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PIVOTWATCH_")
    }
    environment["PIVOTWATCH_KAFKA__BOOTSTRAP"] = settings.kafka.bootstrap
    environment["PIVOTWATCH_WORKER__APP_ID"] = settings.worker.app_id
    environment["PIVOTWATCH_WORKER__SESSION_TIMEOUT_SECONDS"] = str(
        settings.worker.session_timeout_seconds
    )
    environment["PIVOTWATCH_WORKER__HEARTBEAT_INTERVAL_SECONDS"] = str(
        settings.worker.heartbeat_interval_seconds
    )
    for name, value in settings.topics.model_dump().items():
        if isinstance(value, str):
            environment[f"PIVOTWATCH_TOPICS__{name.upper()}"] = value
    return environment


class WorkerProcess:
    """A ``pivotwatch worker`` in its own process, with its log in a file."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pivotwatch",
                "--log-level",
                "INFO",
                "worker",
                "--loglevel",
                "INFO",
            ],
            env=settings_environment(settings),
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """Stop the worker with SIGKILL, as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._file.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._file.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_processed(settings: Settings, timeout: float = 120.0) -> None:
    """Wait until the settings' consumer group has committed every raw record and event batch."""
    watcher = OffsetWatcher(settings)
    try:
        asyncio.run(watcher.wait(list(settings.topics.raw_topics().values()), timeout))
        asyncio.run(watcher.wait([settings.topics.events], timeout))
    finally:
        watcher.close()


def latest_revisions(values: list[bytes]) -> dict[str, dict[str, Any]]:
    """Return the newest revision of each chain id."""
    latest: dict[str, dict[str, Any]] = {}
    for value in values:
        alert = orjson.loads(value)
        kept = latest.get(alert["chain_id"])
        if kept is None or alert["revision"] > kept["revision"]:
            latest[alert["chain_id"]] = alert
    return latest


# Single-stage alerts depend on arrival order: a rule match published alone may join a
# chain once the other half arrives. Chains and transient exposures do not.
ORDER_INDEPENDENT_KINDS = frozenset({"pivot_chain", "transient_exposure"})


def alert_summary(values: list[bytes]) -> dict[str, tuple[str, str, int, frozenset[str]]]:
    """Return chain id -> (kind, severity, score, evidence ids) of the newest revisions.

    Only the kinds whose content does not depend on arrival order are included.
    """
    return {
        chain_id: (
            alert["kind"],
            alert["severity"],
            alert["score"],
            frozenset(item["event_id"] for item in alert["evidence"]),
        )
        for chain_id, alert in latest_revisions(values).items()
        if alert["kind"] in ORDER_INDEPENDENT_KINDS
    }
