"""The ``export`` commands: deliver the alert topic to OCSF consumers and AWS Security Hub."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pivotwatch.cli.common import bootstrap_option, fail, settings_with_bootstrap
from pivotwatch.errors import BrokerError
from pivotwatch.outputs.alert_stream import AlertStream
from pivotwatch.outputs.ocsf import FindingWriter, StreamWriter, TopicWriter, export_ocsf
from pivotwatch.outputs.securityhub import SecurityHubError, SecurityHubExporter
from pivotwatch.settings import Settings

__all__ = ["export_group"]

logger = logging.getLogger(__name__)

BOOTSTRAP_HELP = (
    "Kafka bootstrap servers, comma-separated "
    "[default: PIVOTWATCH_KAFKA__BOOTSTRAP, else localhost:9092]."
)


def _stream_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that every exporter shares: where to read and when to stop."""
    options = [
        bootstrap_option(BOOTSTRAP_HELP),
        click.option(
            "--group",
            default=None,
            help="Consumer group that keeps the export's position in the alert topic "
            "[default: PIVOTWATCH_OUTPUTS__EXPORT_GROUP_PREFIX plus the exporter's name, "
            "pivotwatch-export-ocsf or pivotwatch-export-securityhub].",
        ),
        click.option(
            "--new-only",
            is_flag=True,
            help="For a group without a position yet, start at new alerts "
            "instead of the oldest kept.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1, 1000),
            default=100,
            show_default=True,
            help="Alerts read and delivered at once.",
        ),
        click.option(
            "--max-alerts",
            type=click.IntRange(min=1),
            default=None,
            help="Exit after this many alerts [default: no limit].",
        ),
        click.option(
            "--idle-timeout",
            type=click.FloatRange(min=0.5),
            default=None,
            help="Exit once no alert arrived for this many seconds [default: follow until Ctrl-C].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group("export")
def export_group() -> None:
    """Deliver alerts from the alert topic to other systems.

    Each exporter reads the alert topic in its own consumer group and commits its
    position only after the destination took the alerts, so a restart resumes where
    it stopped. Alerts that the destination rejects are reported, not retried.
    """


@export_group.command("ocsf")
@_stream_options
@click.option(
    "--topic",
    default=None,
    help="Kafka topic to write the findings to "
    "[default: PIVOTWATCH_OUTPUTS__OCSF_TOPIC, else pivotwatch.findings.ocsf].",
)
@click.option(
    "--stdout",
    "to_stdout",
    is_flag=True,
    help="Write the findings to standard output as JSON lines instead of a topic.",
)
def ocsf_command(
    bootstrap: str | None,
    group: str | None,
    new_only: bool,
    batch_size: int,
    max_alerts: int | None,
    idle_timeout: float | None,
    topic: str | None,
    to_stdout: bool,
) -> None:
    """Write each alert revision as an OCSF 1.5.0 Detection Finding (class 2004).

    Revision 1 of a chain is an activity Create, later revisions are Update; the
    finding uid is the chain id. On a topic, findings are keyed by chain id.
    """
    settings = settings_with_bootstrap(bootstrap)
    group_id = group or f"{settings.outputs.export_group_prefix}-ocsf"
    target = "standard output" if to_stdout else (topic or settings.outputs.ocsf_topic)
    writer: FindingWriter
    try:
        writer = (
            StreamWriter(sys.stdout.buffer) if to_stdout else TopicWriter(settings.kafka, target)
        )
    except BrokerError as error:
        fail(str(error), 1)
    try:
        with (
            AlertStream(settings, group_id, from_beginning=not new_only) as stream,
            _progress(f"OCSF findings to {target}", max_alerts) as advance,
        ):
            summary = export_ocsf(
                stream,
                writer,
                batch_size=batch_size,
                max_alerts=max_alerts,
                idle_seconds=idle_timeout,
                progress=advance,
            )
    except BrokerError as error:
        fail(str(error), 1)
    except KeyboardInterrupt:
        return
    finally:
        if isinstance(writer, TopicWriter):
            writer.close()
    _console().print(
        f"{summary.findings} OCSF findings written to {target}, "
        f"{summary.invalid_alerts} invalid alerts skipped"
    )


@export_group.command("securityhub")
@_stream_options
@click.option(
    "--region",
    default=None,
    help="AWS region of Security Hub "
    "[default: PIVOTWATCH_OUTPUTS__SECURITYHUB_REGION, else the AWS SDK's default region].",
)
@click.option(
    "--account-id",
    default=None,
    help="12-digit AWS account whose default product receives the findings "
    "[default: PIVOTWATCH_OUTPUTS__SECURITYHUB_ACCOUNT_ID, else the caller's account from STS].",
)
@click.option(
    "--endpoint-url",
    default=None,
    help="Security Hub and STS endpoint instead of AWS's, such as a local test server "
    "[default: PIVOTWATCH_OUTPUTS__SECURITYHUB_ENDPOINT_URL].",
)
def securityhub_command(
    bootstrap: str | None,
    group: str | None,
    new_only: bool,
    batch_size: int,
    max_alerts: int | None,
    idle_timeout: float | None,
    region: str | None,
    account_id: str | None,
    endpoint_url: str | None,
) -> None:
    """Import each chain into AWS Security Hub as one ASFF finding (BatchImportFindings).

    The finding's Id is the chain id; a newer revision replaces it and an older one is
    skipped. Findings belong to the account's default product,
    arn:aws:securityhub:REGION:ACCOUNT:product/ACCOUNT/default. Credentials come from
    the AWS SDK's standard chain. Rejected findings are printed with their error.
    """
    settings = settings_with_bootstrap(bootstrap)
    group_id = group or f"{settings.outputs.export_group_prefix}-securityhub"
    exporter = _securityhub_exporter(settings, region, account_id, endpoint_url)
    imported = failed = stale = 0
    try:
        with (
            AlertStream(settings, group_id, from_beginning=not new_only) as stream,
            _progress(f"findings to {exporter.product_arn}", max_alerts) as advance,
        ):
            for batch in stream.batches(batch_size, idle_timeout):
                if max_alerts is not None:
                    batch = batch[: max_alerts - imported - failed - stale]
                result = exporter.export(message.alert for message in batch)
                stream.commit(batch)
                imported, stale = imported + result.imported, stale + result.skipped_stale
                failed += len(result.failed)
                for failure in result.failed:
                    _console().print(
                        f"[red]finding {failure.id} rejected: "
                        f"{failure.error_code} {failure.message}[/red]"
                    )
                advance(len(batch))
                if max_alerts is not None and imported + failed + stale >= max_alerts:
                    break
    except (BrokerError, SecurityHubError) as error:
        fail(str(error), 1)
    except KeyboardInterrupt:
        pass
    _console().print(
        f"{imported} findings imported, {stale} older revisions skipped, {failed} rejected"
    )
    if failed:
        raise click.exceptions.Exit(1)


def _securityhub_exporter(
    settings: Settings, region: str | None, account_id: str | None, endpoint_url: str | None
) -> SecurityHubExporter:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    outputs = settings.outputs
    region = region or outputs.securityhub_region
    endpoint_url = endpoint_url or outputs.securityhub_endpoint_url
    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        fail(
            "no AWS region: pass --region, "
            "or set PIVOTWATCH_OUTPUTS__SECURITYHUB_REGION or AWS_REGION",
            2,
        )
    # botocore retries transient errors, throttling included, three times. The exporter then
    # retries throttling with a longer backoff.
    config = Config(retries={"mode": "standard", "max_attempts": 3})
    try:
        client = session.client("securityhub", endpoint_url=endpoint_url, config=config)
        account = account_id or outputs.securityhub_account_id
        if account is None:
            account = session.client("sts", endpoint_url=endpoint_url).get_caller_identity()[
                "Account"
            ]
    except (BotoCoreError, ClientError) as error:
        fail(f"cannot set up the Security Hub client in {session.region_name}: {error}", 1)
    if not (len(account) == 12 and account.isdigit()):
        fail(f"account id {account!r} is invalid: expected 12 digits", 2)
    partition = session.get_partition_for_region(session.region_name)
    return SecurityHubExporter(
        client, account_id=account, region=session.region_name, partition=partition
    )


def _console() -> Console:
    return Console(stderr=True)


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Show a live count of delivered alerts on standard error.

    Yields the function that advances the count.
    """
    columns = [
        SpinnerColumn(),
        TextColumn("{task.completed} alerts: {task.description}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=_console(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda count: progress.advance(task, count)
