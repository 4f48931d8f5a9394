"""The ``bench`` command: generated load through the real pipeline, with every figure printed."""

from __future__ import annotations

import logging

import click

from pivotwatch.bench.harness import BenchOptions, run_bench
from pivotwatch.cli.common import EXIT_USAGE, bootstrap_option, check_bootstrap, fail
from pivotwatch.errors import BrokerError, ConfigurationError
from pivotwatch.settings import load_settings

__all__ = ["bench_command"]

logger = logging.getLogger(__name__)

_DEFAULTS = BenchOptions()


@click.command("bench")
@bootstrap_option(
    "Use this Kafka broker, with topics new to each phase, instead of starting the embedded broker."
)
@click.option(
    "--records",
    type=click.IntRange(min=1000),
    default=_DEFAULTS.records,
    show_default=True,
    help="Generated records for the throughput and scaling phases.",
)
@click.option(
    "--seed",
    type=int,
    default=_DEFAULTS.seed,
    show_default=True,
    help="Seed of the load generator.",
)
@click.option(
    "--accounts",
    type=click.IntRange(min=1),
    default=_DEFAULTS.accounts,
    show_default=True,
    help="Simulated AWS accounts, one EKS cluster each.",
)
@click.option(
    "--chains-per-100k",
    type=click.FloatRange(min=0),
    default=_DEFAULTS.chains_per_100k,
    show_default=True,
    help="Attack chains planted per 100,000 records.",
)
@click.option(
    "--load-fraction",
    type=click.FloatRange(min=0.01, max=1),
    default=_DEFAULTS.load_fraction,
    show_default=True,
    help="Load of the latency phase, as a fraction of the measured raw client limit.",
)
@click.option(
    "--latency-seconds",
    type=click.FloatRange(min=1),
    default=_DEFAULTS.latency_seconds,
    show_default=True,
    help="Seconds of load in the latency phase.",
)
@click.option(
    "--soak-seconds",
    type=click.FloatRange(min=1),
    default=_DEFAULTS.soak_seconds,
    show_default=True,
    help="Seconds of the memory soak, after the warm-up that fills the windows.",
)
@click.option(
    "--core-records",
    type=click.IntRange(min=1000),
    default=_DEFAULTS.core_records,
    show_default=True,
    help="Generated records for the correlator core and state measurements.",
)
@click.option(
    "--scaling/--no-scaling",
    default=True,
    show_default=True,
    help="Compare one worker process with two.",
)
@click.option(
    "--kafka/--no-kafka", default=True, show_default=True, help="Run the phases that need a broker."
)
@click.option(
    "--core/--no-core",
    default=True,
    show_default=True,
    help="Run the correlator phases that need no broker.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=10),
    default=_DEFAULTS.timeout,
    show_default=True,
    help="Seconds to wait for a worker to process a phase's records.",
)
def bench_command(bootstrap: str | None, **values: object) -> None:
    """Measure the pipeline against the raw Kafka client on this machine and print the figures.

    Generated CloudTrail, Falco and GCP audit records with planted attack chains go
    through the real pipeline. The output gives the raw client limit, pipeline
    throughput, chain latency at a fixed load, scaling from one worker to two, the
    correlator core's rate and state size, and RSS over a soak. The last line is
    pipeline throughput divided by the raw client limit.
    """
    if bootstrap is not None:
        check_bootstrap(bootstrap)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        fail(str(error), EXIT_USAGE)
    options = BenchOptions(bootstrap=bootstrap, **values)  # type: ignore[arg-type]
    try:
        run_bench(settings, options, emit=lambda line: click.echo(line))
    except BrokerError as error:
        fail(str(error), 1)
