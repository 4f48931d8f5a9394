"""The ``pivotwatch`` command line."""

from __future__ import annotations

import click

from pivotwatch import __version__
from pivotwatch.cli.alerts import alerts_group
from pivotwatch.cli.bench import bench_command
from pivotwatch.cli.connect import connect_group
from pivotwatch.cli.demo import demo_command
from pivotwatch.cli.export import export_group
from pivotwatch.cli.logs import configure_logging
from pivotwatch.cli.replay import replay_command
from pivotwatch.cli.rules import rules
from pivotwatch.cli.scenario import run_scenario_command
from pivotwatch.cli.worker import worker_command

__all__ = ["cli", "main"]


@click.group()
@click.version_option(__version__, prog_name="pivotwatch")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Log level of pivotwatch's own messages [default: PIVOTWATCH_LOG_LEVEL, else WARNING].",
)
def cli(log_level: str | None) -> None:
    """Catch attackers who move from a container into the cloud account behind it.

    pivotwatch joins Falco runtime alerts with AWS CloudTrail and GCP audit logs over
    Kafka and publishes container-to-cloud pivot chains to an alert topic.
    """
    import os

    level = (log_level or os.environ.get("PIVOTWATCH_LOG_LEVEL") or "WARNING").upper()
    configure_logging(level)


cli.add_command(demo_command)
cli.add_command(worker_command)
cli.add_command(replay_command)
cli.add_command(run_scenario_command)
cli.add_command(alerts_group)
cli.add_command(export_group)
cli.add_command(rules)
cli.add_command(bench_command)
cli.add_command(connect_group)


def main() -> None:
    cli(prog_name="pivotwatch")
