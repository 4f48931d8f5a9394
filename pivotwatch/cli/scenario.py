"""The ``run-scenario`` command: one scenario folder through the real pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import click
from rich.console import Console

from pivotwatch.cli.common import bootstrap_option, fail, settings_with_bootstrap
from pivotwatch.errors import PivotwatchError
from pivotwatch.settings import Settings
from pivotwatch.streams.embedded import EmbeddedBroker
from pivotwatch.streams.scenario import ScenarioResult, isolated_settings, run_scenario

__all__ = ["run_scenario_command", "run_with_broker"]

logger = logging.getLogger(__name__)


# The embedded broker lets a new consumer group form only after half the session
# timeout, so short runs on it use a short one. A lone in-process worker has no peers
# whose slow heartbeats this could cut off.
EMBEDDED_SESSION_TIMEOUT = 6.0
EMBEDDED_HEARTBEAT_INTERVAL = 1.0


def run_with_broker(
    folder: Path, settings: Settings, embedded: bool, timeout: float
) -> ScenarioResult:
    """Run a scenario on the embedded broker, or on the configured one with fresh topics."""
    with contextlib.ExitStack() as stack:
        if embedded:
            broker = stack.enter_context(EmbeddedBroker())
            kafka = settings.kafka.model_copy(update={"bootstrap": broker.bootstrap})
            worker = settings.worker.model_copy(
                update={
                    "session_timeout_seconds": EMBEDDED_SESSION_TIMEOUT,
                    "heartbeat_interval_seconds": EMBEDDED_HEARTBEAT_INTERVAL,
                }
            )
            settings = settings.model_copy(update={"kafka": kafka, "worker": worker})
        else:
            settings = isolated_settings(settings)
        return asyncio.run(run_scenario(folder, settings, timeout))


@click.command("run-scenario")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--alerts-out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write every alert published, all revisions, one JSON object per line.",
)
@bootstrap_option(
    "Use this Kafka broker, with topic names and a consumer group new to this run, "
    "instead of starting the embedded broker."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds to wait for the worker to process each phase.",
)
def run_scenario_command(
    folder: Path, alerts_out: Path, bootstrap: str | None, timeout: float
) -> None:
    """Run one scenario FOLDER through the real pipeline and write its alerts.

    FOLDER contains cloudtrail/ files, gcp-audit.jsonl, falco.jsonl and inventory/ in
    the sources' own formats. The command starts a broker (the embedded one unless
    --bootstrap is given) and a worker, replays the inventory and then the rest,
    waits until every record is processed, writes the alerts and exits.
    """
    settings = settings_with_bootstrap(bootstrap)
    try:
        result = run_with_broker(folder, settings, embedded=bootstrap is None, timeout=timeout)
    except PivotwatchError as error:
        fail(str(error), 1)
    alerts_out.write_bytes(b"".join(value + b"\n" for value in result.alerts))
    Console(stderr=True).print(
        f"{folder.name}: {result.records.sent + result.inventory.sent} records replayed, "
        f"{len(result.alerts)} alert messages written to {alerts_out}"
    )
