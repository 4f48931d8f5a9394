"""The ``replay`` command: send recorded source files to the raw topics."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from pivotwatch.cli.common import EXIT_USAGE, fail, settings_with_bootstrap
from pivotwatch.connectors.replay import replay, summary_table
from pivotwatch.errors import BrokerError, ReplayError
from pivotwatch.schemas.event import Source

__all__ = ["replay_command"]

EXIT_NOTHING_SENT = 1

SOURCE_CHOICES = {
    "cloudtrail": Source.CLOUDTRAIL,
    "gcp-audit": Source.GCP_AUDIT,
    "falco": Source.FALCO,
    "inventory": Source.INVENTORY,
}


@click.command("replay")
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    metavar="PATH...",
    type=click.Path(exists=True, allow_dash=True, path_type=Path),
)
@click.option(
    "--source",
    type=click.Choice(list(SOURCE_CHOICES)),
    default=None,
    help="Read every record as this source. By default each record's source is "
    "recognised from its fields.",
)
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    default=None,
    help="Kafka bootstrap servers, comma-separated; overrides PIVOTWATCH_KAFKA__BOOTSTRAP "
    "and the configuration file.",
)
@click.option("--no-progress", is_flag=True, help="Do not draw the progress bar on standard error.")
def replay_command(
    paths: tuple[Path, ...], source: str | None, bootstrap: str | None, no_progress: bool
) -> None:
    """Send recorded CloudTrail, GCP audit, Falco and inventory files to the raw topics.

    PATH is a file, a folder (read recursively, in sorted order) or - for standard
    input. Files may contain one JSON record per line, a JSON array, a CloudTrail
    {"Records": [...]} file, `aws ec2 describe-instances`, `gcloud compute instances
    list --format=json` or `kubectl get ... -o json` output, and may be gzip-compressed.
    CloudTrail digest files are skipped. Invalid JSON is counted and logged, and the
    replay continues.

    Inventory files are sent first, then the others. The command creates missing
    topics, waits until Kafka has acknowledged every record and prints the counts
    per source.

    Exit status: 0 when records were sent, 1 when none could be sent or Kafka did not
    acknowledge a record, 2 on invalid options, paths or settings.
    """
    settings = settings_with_bootstrap(bootstrap)
    selected = SOURCE_CHOICES[source] if source is not None else None

    try:
        summary = replay(paths, settings, source=selected, progress=not no_progress)
    except ReplayError as error:
        fail(str(error), EXIT_USAGE)
    except BrokerError as error:
        fail(str(error), EXIT_NOTHING_SENT)

    Console().print(summary_table(summary))
    if summary.sent == 0:
        fail(
            "no record was sent: the inputs contain no valid records (see the counts above)",
            EXIT_NOTHING_SENT,
        )
