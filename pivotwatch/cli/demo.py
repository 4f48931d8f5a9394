"""The ``demo`` command: a bundled incident through the real pipeline, printed as a tree."""

from __future__ import annotations

import contextlib
import importlib.resources
import time
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.text import Text

from pivotwatch.cli.common import bootstrap_option, fail, settings_with_bootstrap
from pivotwatch.cli.render import SEVERITY_STYLES, print_alert, safe
from pivotwatch.cli.scenario import run_with_broker
from pivotwatch.errors import PivotwatchError

__all__ = ["SAMPLE_INCIDENT", "demo_command", "latest_revisions"]

SAMPLE_INCIDENT = "eks-imds-pivot"


def sample_folder() -> Path:
    """Return the folder of the incident bundled with the package."""
    return Path(str(importlib.resources.files("pivotwatch") / "samples" / SAMPLE_INCIDENT))


def latest_revisions(values: list[bytes]) -> list[dict[str, Any]]:
    """Return the newest revision of each chain, highest score first."""
    latest: dict[str, dict[str, Any]] = {}
    for value in values:
        alert = orjson.loads(value)
        kept = latest.get(alert["chain_id"])
        if kept is None or alert["revision"] > kept["revision"]:
            latest[alert["chain_id"]] = alert
    return sorted(latest.values(), key=lambda alert: (-alert["score"], alert["first_seen"]))


@click.command("demo")
@bootstrap_option(
    "Use this Kafka broker, with topics new to this run, instead of starting the embedded broker."
)
def demo_command(bootstrap: str | None) -> None:
    """Replay a bundled container-to-cloud incident and print the chain it produces.

    Starts the embedded Kafka-compatible broker on a free loopback port (unless
    --bootstrap is given) and a worker in this process, replays the incident (an EKS
    pod whose node role credentials are stolen through the instance metadata service
    and used from outside), prints each alert as a tree, stops everything it started
    and exits 0.
    """
    console = Console()
    settings = settings_with_bootstrap(bootstrap)
    folder = sample_folder()
    console.print(
        "[bold]pivotwatch demo[/bold]: replaying the bundled incident "
        f"[cyan]{SAMPLE_INCIDENT}[/cyan]"
    )
    started = time.monotonic()
    try:
        status = console.status("starting the broker and the worker, replaying, correlating...")
        with status if console.is_terminal else contextlib.nullcontext():
            result = run_with_broker(folder, settings, embedded=bootstrap is None, timeout=120.0)
    except PivotwatchError as error:
        fail(str(error), 1)
    alerts = latest_revisions(result.alerts)
    chains = [alert for alert in alerts if alert["kind"] == "pivot_chain"]
    others = [alert for alert in alerts if alert["kind"] != "pivot_chain"]
    console.print(
        f"{result.inventory.sent + result.records.sent} records replayed, "
        f"{len(result.alerts)} alert messages in {time.monotonic() - started:.1f} s: "
        f"{len(chains)} pivot chain(s), {len(others)} other alert(s)\n"
    )
    for alert in chains:
        print_alert(console, alert)
        console.print()
    if others:
        console.print("[bold]Other alerts[/bold] (newest revision of each):")
        for alert in others:
            line = Text("  ")
            line.append(f"{alert['severity']:<8}", style=SEVERITY_STYLES.get(alert["severity"], ""))
            line.append(f" {alert['kind']}: {safe(alert['title'])}")
            console.print(line)
    if not chains:
        fail("the demo incident produced no pivot chain", 1)
