"""The ``alerts`` commands: follow the alert topic."""

from __future__ import annotations

import sys

import click
import orjson
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from rich.console import Console

from pivotwatch.cli.common import bootstrap_option, fail, settings_with_bootstrap
from pivotwatch.cli.render import print_alert
from pivotwatch.connectors.producer import kafka_client_config

__all__ = ["alerts_group"]


@click.group("alerts")
def alerts_group() -> None:
    """Read the alert topic."""


@alerts_group.command("tail")
@bootstrap_option(
    "Kafka bootstrap servers, comma-separated "
    "[default: PIVOTWATCH_KAFKA__BOOTSTRAP, else localhost:9092]."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per line instead of trees."
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the oldest alert kept by the topic instead of new ones.",
)
@click.option(
    "--max-alerts",
    type=click.IntRange(min=1),
    default=None,
    help="Exit after this many alerts [default: follow until Ctrl-C].",
)
def tail_command(
    bootstrap: str | None, as_json: bool, from_beginning: bool, max_alerts: int | None
) -> None:
    """Follow the alert topic and print each alert as it arrives.

    Trees are coloured by severity: critical, high, medium, low, info.
    """
    settings = settings_with_bootstrap(bootstrap)
    console = Console()
    try:
        consumer = KafkaConsumer(
            settings.topics.alerts,
            **kafka_client_config(settings.kafka),
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
        )
    except KafkaError as error:
        fail(f"cannot reach the Kafka broker at {settings.kafka.bootstrap}: {error}", 1)
    shown = 0
    try:
        for message in consumer:
            try:
                alert = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                console.print(f"[red]invalid alert at offset {message.offset}: not JSON[/red]")
                continue
            if as_json:
                sys.stdout.buffer.write(orjson.dumps(alert) + b"\n")
                sys.stdout.flush()
            else:
                print_alert(console, alert)
            shown += 1
            if max_alerts is not None and shown >= max_alerts:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
