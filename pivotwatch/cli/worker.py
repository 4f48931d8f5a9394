"""The ``worker`` command: the faust worker for production."""

from __future__ import annotations

import logging

import click
import faust

from pivotwatch.cli.common import bootstrap_option, fail, settings_with_bootstrap
from pivotwatch.cli.logs import configure_logging
from pivotwatch.errors import PivotwatchError
from pivotwatch.streams.app import Pipeline
from pivotwatch.streams.metrics import serve_metrics
from pivotwatch.streams.topics import ensure_topics

__all__ = ["worker_command"]

logger = logging.getLogger(__name__)


@click.command("worker")
@bootstrap_option(
    "Kafka bootstrap servers, comma-separated "
    "[default: PIVOTWATCH_KAFKA__BOOTSTRAP, else localhost:9092]."
)
@click.option(
    "--loglevel",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log level of the worker.",
)
def worker_command(bootstrap: str | None, loglevel: str) -> None:
    """Run the pivotwatch worker until stopped (SIGTERM or Ctrl-C).

    The worker reads the raw topics, normalizes and correlates the records and
    publishes alerts. Several workers with the same PIVOTWATCH_WORKER__APP_ID share
    the partitions. Settings come from PIVOTWATCH_* environment variables and the
    file named by PIVOTWATCH_CONFIG.
    """
    settings = settings_with_bootstrap(bootstrap)
    try:
        ensure_topics(settings)
        pipeline = Pipeline(settings)
    except PivotwatchError as error:
        fail(str(error), 1)
    if settings.worker.metrics_port is not None:
        serve_metrics(
            pipeline.metrics.registry, settings.worker.metrics_port, settings.worker.metrics_address
        )
    logger.info(
        "starting worker %s on %s with %d rules",
        settings.worker.app_id,
        settings.kafka.bootstrap,
        len(pipeline.correlator.rules),  # type: ignore[arg-type]
    )
    pipeline.start_directory()
    configure_logging(loglevel)
    # faust keeps the handler configured above, with its limit on repeated messages.
    worker = faust.Worker(
        pipeline.app, loglevel=loglevel.upper(), quiet=True, override_logging=False
    )
    try:
        worker.execute_from_commandline()
    finally:
        pipeline.stop_directory()
