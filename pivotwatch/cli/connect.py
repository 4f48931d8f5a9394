"""The ``connect`` commands: live connectors from the sources to the raw topics.

Each subcommand runs one connector in the foreground until SIGTERM or Ctrl-C, then
finishes the messages in flight and exits. Options override the matching
``PIVOTWATCH_CONNECTORS__*`` settings. Each connector serves Prometheus metrics on
``/metrics``, by default on 127.0.0.1 and a port of its own (`METRICS_PORTS`), so that
several connectors can run on one host.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pivotwatch.cli.common import EXIT_USAGE, bootstrap_option, fail, settings_with_bootstrap
from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.errors import ConfigurationError
from pivotwatch.settings import Settings

__all__ = ["connect_group"]

logger = logging.getLogger(__name__)

BOOTSTRAP_HELP = (
    "Kafka bootstrap servers, comma-separated [default: PIVOTWATCH_KAFKA__BOOTSTRAP, "
    "else localhost:9092]."
)

METRICS_PORTS = {
    "cloudtrail-sqs": 9401,
    "eventbridge-sqs": 9402,
    "gcp-pubsub": 9403,
    "falco-http": 9404,
    "inventory": 9405,
}
"""Default port of each connector's /metrics endpoint; the worker's is 9400."""

Runner = Callable[[Settings, threading.Event], ConnectorCounters]


@click.group("connect")
def connect_group() -> None:
    """Run a live connector that sends a source's records to its raw topic.

    A connector acknowledges its source (deletes the SQS message, acks the Pub/Sub
    message, responds to the HTTP request) only after Kafka has acknowledged every record
    it carried. Settings come from PIVOTWATCH_CONNECTORS__* environment variables and
    the file named by PIVOTWATCH_CONFIG; credentials come from the AWS and Google
    SDKs' standard chains.
    """


def with_section(settings: Settings, section: str, **updates: Any) -> Settings:
    """Return ``settings`` with fields of ``connectors.<section>`` replaced; ``None`` keeps one."""
    changes = {name: value for name, value in updates.items() if value is not None}
    if not changes:
        return settings
    connectors = settings.connectors
    current = getattr(connectors, section)
    try:
        replaced = current.model_validate({**current.model_dump(), **changes})
    except ValueError as error:
        fail(f"invalid {section} option: {error}", EXIT_USAGE)
    return settings.model_copy(
        update={"connectors": connectors.model_copy(update={section: replaced})}
    )


def metrics_port_option(connector: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Return the ``--metrics-port`` option of the command that runs ``connector``."""
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help=(
            "Port of the /metrics endpoint; 0 picks a free one [default: "
            f"PIVOTWATCH_CONNECTORS__METRICS_PORT, else {METRICS_PORTS[connector]}]. The "
            "address is PIVOTWATCH_CONNECTORS__METRICS_ADDRESS [default: 127.0.0.1]."
        ),
    )


def with_metrics_port(settings: Settings, connector: str, metrics_port: int | None) -> Settings:
    """Return ``settings`` with ``connectors.metrics_port`` set.

    The option wins over the setting, and the setting over the connector's default port.
    """
    connectors = settings.connectors
    if metrics_port is None:
        metrics_port = connectors.metrics_port
    if metrics_port is None:
        metrics_port = METRICS_PORTS[connector]
    return settings.model_copy(
        update={"connectors": connectors.model_copy(update={"metrics_port": metrics_port})}
    )


def run_until_signal(runner: Runner, settings: Settings) -> None:
    """Run a connector in this thread until SIGTERM or SIGINT; exit 2 on invalid settings."""
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        logger.info("received signal %d; stopping after the messages in flight", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        counters = runner(settings, stop)
    except ConfigurationError as error:
        fail(str(error), EXIT_USAGE)
    click.echo(f"{counters.connector}: {counters.snapshot()}", err=True)


def aws_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help="Replace the AWS endpoints, for a VPC endpoint or a test server.",
    )(function)
    return click.option("--region", default=None, help="AWS region of the queue.")(function)


def apply_aws(settings: Settings, region: str | None, endpoint_url: str | None) -> Settings:
    return with_section(settings, "aws", region=region, endpoint_url=endpoint_url)


@connect_group.command("cloudtrail-sqs")
@bootstrap_option(BOOTSTRAP_HELP)
@click.option("--queue-url", default=None, help="SQS queue of S3 or CloudTrail notifications.")
@click.option("--concurrency", type=int, default=None, help="Messages and downloads at once.")
@aws_options
@metrics_port_option("cloudtrail-sqs")
def cloudtrail_sqs_command(
    bootstrap: str | None,
    queue_url: str | None,
    concurrency: int | None,
    region: str | None,
    endpoint_url: str | None,
    metrics_port: int | None,
) -> None:
    """Read CloudTrail log files from S3 as their notifications arrive on SQS."""
    from pivotwatch.connectors import cloudtrail_sqs

    settings = apply_aws(settings_with_bootstrap(bootstrap), region, endpoint_url)
    settings = with_section(
        settings, "cloudtrail_sqs", queue_url=queue_url, concurrency=concurrency
    )
    settings = with_metrics_port(settings, cloudtrail_sqs.CONNECTOR, metrics_port)
    run_until_signal(cloudtrail_sqs.run, settings)


@connect_group.command("eventbridge-sqs")
@bootstrap_option(BOOTSTRAP_HELP)
@click.option("--queue-url", default=None, help="SQS queue that an EventBridge rule targets.")
@aws_options
@metrics_port_option("eventbridge-sqs")
def eventbridge_sqs_command(
    bootstrap: str | None,
    queue_url: str | None,
    region: str | None,
    endpoint_url: str | None,
    metrics_port: int | None,
) -> None:
    """Read CloudTrail events that EventBridge delivers to an SQS queue."""
    from pivotwatch.connectors import eventbridge

    settings = apply_aws(settings_with_bootstrap(bootstrap), region, endpoint_url)
    settings = with_section(settings, "eventbridge_sqs", queue_url=queue_url)
    settings = with_metrics_port(settings, eventbridge.CONNECTOR, metrics_port)
    run_until_signal(eventbridge.run, settings)


@connect_group.command("gcp-pubsub")
@bootstrap_option(BOOTSTRAP_HELP)
@click.option(
    "--subscription",
    default=None,
    metavar="PATH",
    help="projects/<project>/subscriptions/<name>, fed by a Log Router sink.",
)
@metrics_port_option("gcp-pubsub")
def gcp_pubsub_command(
    bootstrap: str | None, subscription: str | None, metrics_port: int | None
) -> None:
    """Stream GCP audit LogEntries from a Pub/Sub subscription."""
    from pivotwatch.connectors import pubsub

    settings = with_section(settings_with_bootstrap(bootstrap), "pubsub", subscription=subscription)
    settings = with_metrics_port(settings, pubsub.CONNECTOR, metrics_port)
    run_until_signal(pubsub.run, settings)


@connect_group.command("falco-http")
@bootstrap_option(BOOTSTRAP_HELP)
@click.option("--host", default=None, help="Listen address [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Listen port [default: 2802].")
@metrics_port_option("falco-http")
def falco_http_command(
    bootstrap: str | None, host: str | None, port: int | None, metrics_port: int | None
) -> None:
    """Receive Falco http_output and falcosidekick webhook alerts over HTTP(S).

    TLS, mutual TLS and the bearer token are set with PIVOTWATCH_CONNECTORS__FALCO_HTTP__*
    (TLS_CERTFILE, TLS_KEYFILE, TLS_CLIENT_CAFILE, BEARER_TOKEN, ALLOW_UNAUTHENTICATED).
    """
    from pivotwatch.connectors import falco_http

    settings = with_section(settings_with_bootstrap(bootstrap), "falco_http", host=host, port=port)
    settings = with_metrics_port(settings, falco_http.CONNECTOR, metrics_port)
    run_until_signal(falco_http.run, settings)


@connect_group.command("inventory")
@bootstrap_option(BOOTSTRAP_HELP)
@click.option(
    "--aws-region",
    "aws_regions",
    multiple=True,
    help="EC2 region to list; repeat for more, or * for every enabled region.",
)
@click.option(
    "--gcp-project",
    "gcp_projects",
    multiple=True,
    help="GCP project whose GCE instances are listed; repeat for more.",
)
@click.option("--kubernetes-api-url", default=None, help="Kubernetes API server URL.")
@click.option(
    "--kubernetes-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the Kubernetes bearer token.",
)
@click.option(
    "--kubernetes-ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CA bundle of the Kubernetes API server.",
)
@click.option("--interval", type=float, default=None, help="Seconds between polls [default: 300].")
@aws_options
@metrics_port_option("inventory")
def inventory_command(
    bootstrap: str | None,
    aws_regions: tuple[str, ...],
    gcp_projects: tuple[str, ...],
    kubernetes_api_url: str | None,
    kubernetes_token_file: Path | None,
    kubernetes_ca_file: Path | None,
    interval: float | None,
    region: str | None,
    endpoint_url: str | None,
    metrics_port: int | None,
) -> None:
    """Poll EC2, GCE and Kubernetes on an interval and publish one record per asset.

    Each poller runs only when configured: EC2 with regions, GCE with projects,
    Kubernetes with an API URL.
    """
    from pivotwatch.connectors.inventory import CONNECTOR, configured_sources, run

    settings = apply_aws(settings_with_bootstrap(bootstrap), region, endpoint_url)
    settings = with_section(
        settings,
        "inventory",
        aws_regions=list(aws_regions) or None,
        gcp_projects=list(gcp_projects) or None,
        kubernetes_api_url=kubernetes_api_url,
        kubernetes_token_file=kubernetes_token_file,
        kubernetes_ca_file=kubernetes_ca_file,
        interval_seconds=interval,
    )
    try:
        if not configured_sources(settings):
            fail(
                "no inventory source is configured: pass --aws-region, --gcp-project or "
                "--kubernetes-api-url (or set PIVOTWATCH_CONNECTORS__INVENTORY__*)",
                EXIT_USAGE,
            )
    except ConfigurationError as error:
        fail(str(error), EXIT_USAGE)
    run_until_signal(run, with_metrics_port(settings, CONNECTOR, metrics_port))
