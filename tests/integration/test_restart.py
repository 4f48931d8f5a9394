"""State survives a worker killed with SIGKILL, and two workers give the alerts of one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from pivotwatch.connectors.replay import replay
from pivotwatch.settings import Settings
from pivotwatch.streams.runner import read_topic
from pivotwatch.streams.scenario import isolated_settings, run_scenario, scenario_inputs
from pivotwatch.streams.topics import ensure_topics
from tests.integration.support import WorkerProcess, alert_summary, latest_revisions, wait_processed

pytestmark = [pytest.mark.integration, pytest.mark.shared]

SCENARIO = "aws-role-chain-escalation"


def reference_alerts(folder: Path, settings: Settings) -> list[bytes]:
    """Run the folder through one in-process worker on fresh topics."""
    return asyncio.run(run_scenario(folder, isolated_settings(settings), timeout=120.0)).alerts


def split_inputs(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Return inventory, the first half of the other input files, and the second half."""
    inventory, others = scenario_inputs(folder)
    files = sorted(
        path
        for entry in others
        for path in ([entry] if entry.is_file() else sorted(entry.rglob("*.json*")))
    )
    half = len(files) // 2
    return inventory, files[:half], files[half:]


def assert_revisions_unique(values: list[bytes]) -> None:
    import orjson

    seen: set[tuple[str, int]] = set()
    for value in values:
        alert = orjson.loads(value)
        key = (alert["chain_id"], alert["revision"])
        assert key not in seen, f"chain {key[0]} published revision {key[1]} twice"
        seen.add(key)


def test_worker_killed_mid_scenario(
    shared_dir: Path, isolated: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    expected = alert_summary(reference_alerts(folder, isolated))
    inventory, first, second = split_inputs(folder)
    ensure_topics(isolated)

    worker = start_worker(isolated)
    replay(inventory, isolated, progress=False)
    replay(first, isolated, progress=False)
    wait_processed(isolated)
    replay(second, isolated, progress=False)
    worker.kill()

    restarted = start_worker(isolated)
    wait_processed(isolated)
    alerts = read_topic(isolated, isolated.topics.alerts)
    restarted.stop()

    assert alert_summary(alerts) == expected, restarted.tail()
    assert_revisions_unique(alerts)
    chains = [
        alert for alert in latest_revisions(alerts).values() if alert["kind"] == "pivot_chain"
    ]
    assert len(chains) == 1


def test_two_workers_match_one(
    shared_dir: Path, isolated: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    expected = alert_summary(reference_alerts(folder, isolated))
    inventory, first, second = split_inputs(folder)
    ensure_topics(isolated)

    workers = [start_worker(isolated), start_worker(isolated)]
    replay(inventory, isolated, progress=False)
    wait_processed(isolated)
    replay(first + second, isolated, progress=False)
    wait_processed(isolated)
    alerts = read_topic(isolated, isolated.topics.alerts)
    for worker in workers:
        worker.stop()

    assert alert_summary(alerts) == expected, workers[0].tail() + workers[1].tail()
    assert_revisions_unique(alerts)
