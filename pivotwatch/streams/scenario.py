"""Running a scenario folder through the real pipeline.

A scenario folder contains a story's inputs in the sources' own formats: ``cloudtrail/``
files as delivered to S3, ``gcp-audit.jsonl``, ``falco.jsonl`` and ``inventory/``.
`run_scenario` starts a worker in this process, replays the inventory, waits until the
worker has processed it, replays everything else, waits again until every record and
every event batch is processed, and returns the alert topic's messages.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from pivotwatch.connectors.replay import ReplaySummary, replay
from pivotwatch.errors import ReplayError
from pivotwatch.settings import Settings
from pivotwatch.streams.app import Pipeline
from pivotwatch.streams.runner import OffsetWatcher, read_topic, running_worker
from pivotwatch.streams.topics import ensure_topics

__all__ = ["ScenarioResult", "isolated_settings", "run_scenario", "scenario_inputs"]

logger = logging.getLogger(__name__)

# Files of a scenario folder that describe the story rather than carry its input.
NOT_INPUT = frozenset({"README.md", "expected.json"})


@dataclass
class ScenarioResult:
    """The alerts a scenario produced, with the replay counts."""

    alerts: list[bytes]
    inventory: ReplaySummary
    records: ReplaySummary


def scenario_inputs(folder: Path) -> tuple[list[Path], list[Path]]:
    """Return the inventory inputs and the other inputs of a scenario folder."""
    if not folder.is_dir():
        raise ReplayError(f"scenario folder {folder} does not exist or is not a folder")
    entries = sorted(
        path
        for path in folder.iterdir()
        if path.name not in NOT_INPUT and not path.name.startswith(".")
    )
    inventory = [path for path in entries if path.name == "inventory"]
    others = [path for path in entries if path.name != "inventory"]
    if not others:
        raise ReplayError(
            f"scenario folder {folder} has no input files: "
            "expected cloudtrail/, gcp-audit.jsonl or falco.jsonl"
        )
    return inventory, others


def isolated_settings(settings: Settings) -> Settings:
    """Return settings whose topics and consumer group no earlier run has used."""
    run = uuid.uuid4().hex[:8]
    topics = {
        name: f"{value}.{run}"
        for name, value in settings.topics.model_dump().items()
        if isinstance(value, str)
    }
    return settings.model_copy(
        update={
            "topics": settings.topics.model_copy(update=topics),
            "worker": settings.worker.model_copy(
                update={"app_id": f"{settings.worker.app_id}-{run}"}
            ),
        }
    )


async def run_scenario(folder: Path, settings: Settings, timeout: float = 300.0) -> ScenarioResult:
    """Run one scenario folder through a worker in this process and return its alerts."""
    inventory_paths, other_paths = scenario_inputs(folder)
    ensure_topics(settings)
    pipeline = Pipeline(settings)
    watcher = OffsetWatcher(settings)
    raw_topics = list(settings.topics.raw_topics().values())
    try:
        async with running_worker(pipeline):
            # 1. Inventory first, processed before any alert, so hosts and pods are known.
            inventory = await asyncio.to_thread(replay, inventory_paths, settings, None, False)
            await watcher.wait(raw_topics, timeout)
            await watcher.wait([settings.topics.events], timeout)

            # 2. Everything else, then wait until the worker has processed every record
            # and every event batch those records made.
            records = await asyncio.to_thread(replay, other_paths, settings, None, False)
            await watcher.wait(raw_topics, timeout)
            await watcher.wait([settings.topics.events], timeout)
    finally:
        watcher.close()
    alerts = await asyncio.to_thread(read_topic, settings, settings.topics.alerts)
    logger.info("scenario %s produced %d alert messages", folder.name, len(alerts))
    return ScenarioResult(alerts=alerts, inventory=inventory, records=records)
