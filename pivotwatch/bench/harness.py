"""One benchmark run: every figure of the benchmark page, printed with its unit.

Phases, in order, all on one broker:

1. produce the generated records (inventory first) to fresh raw topics;
2. the limit: consume them with aiokafka alone and decode each with orjson;
3. pipeline throughput: a worker in this process processes the same topics;
4. latency at a fixed load (a fraction of the limit), with a child process producing;
5. scaling: one and then two ``pivotwatch worker`` processes on fresh topics;
6. the correlator core without Kafka: events/s, state per identity, RSS over a soak.

The last line is the ratio of pipeline throughput to the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from pivotwatch.bench.core import measure_core, measure_soak, measure_state
from pivotwatch.bench.generator import GeneratorConfig, LoadGenerator
from pivotwatch.bench.kafka_load import produce_all
from pivotwatch.bench.memory import rss_method
from pivotwatch.bench.pipeline import (
    RateResult,
    measure_latency,
    measure_pipeline,
    measure_raw_limit,
    measure_scaling,
    phase_settings,
)
from pivotwatch.settings import Settings
from pivotwatch.streams.embedded import EmbeddedBroker
from pivotwatch.streams.topics import ensure_topics

__all__ = ["BenchOptions", "machine_description", "run_bench"]

logger = logging.getLogger(__name__)

# The embedded broker lets a consumer group form only after half the session timeout.
EMBEDDED_SESSION_TIMEOUT = 6.0
EMBEDDED_HEARTBEAT_INTERVAL = 1.0

_DEFAULT_LOAD = GeneratorConfig()

SOAK_EVENT_RATE = 1.0
"""Records per event-time second in the soak: 24 h of event time every 86,400 records."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What to run and how much; the defaults finish in a few minutes on 2 cores."""

    bootstrap: str | None = None
    records: int = 100_000
    seed: int = _DEFAULT_LOAD.seed
    accounts: int = _DEFAULT_LOAD.accounts
    chains_per_100k: float = _DEFAULT_LOAD.chains_per_100k
    load_fraction: float = 0.2
    latency_seconds: float = 10.0
    scaling: bool = True
    kafka: bool = True
    core: bool = True
    core_records: int = 40_000
    soak_seconds: float = 30.0
    timeout: float = 600.0

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(
            seed=self.seed, accounts=self.accounts, chains_per_100k=self.chains_per_100k
        )


def machine_description() -> str:
    """Return cores, CPU model, memory and Python version of this machine."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    return f"{os.cpu_count()} cores ({model}){memory}, Python {platform.python_version()}"


@contextlib.contextmanager
def _broker(settings: Settings, bootstrap: str | None) -> Iterator[tuple[Settings, str]]:
    if bootstrap is not None:
        kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap})
        yield settings.model_copy(update={"kafka": kafka}), f"Kafka broker at {bootstrap}"
        return
    with EmbeddedBroker() as broker:
        kafka = settings.kafka.model_copy(update={"bootstrap": broker.bootstrap})
        worker = settings.worker.model_copy(
            update={
                "session_timeout_seconds": EMBEDDED_SESSION_TIMEOUT,
                "heartbeat_interval_seconds": EMBEDDED_HEARTBEAT_INTERVAL,
            }
        )
        yield (
            settings.model_copy(update={"kafka": kafka, "worker": worker}),
            f"embedded broker (Tansu) at {broker.bootstrap}",
        )


def _line(label: str, value: str) -> str:
    return f"{label:<44} {value}"


def run_bench(
    base: Settings, options: BenchOptions, emit: Callable[[str], None] = print
) -> float | None:
    """Run the phases that ``options`` selects, print each figure, return pipeline/limit."""
    config = options.generator_config()
    emit(_line("machine", machine_description()))
    emit(
        _line(
            "load",
            f"{options.accounts} AWS accounts, {config.gcp_projects} GCP projects, "
            f"{options.chains_per_100k:g} chains per 100,000 records, seed {options.seed}",
        )
    )
    ratio = None
    if options.kafka:
        with _broker(base, options.bootstrap) as (settings, description):
            emit(_line("broker", description))
            ratio = _run_kafka_phases(settings, options, config, emit)
    if options.core:
        _run_core_phases(base, options, config, emit)
    if ratio is not None:
        emit(_line("pipeline / raw client limit", f"{ratio:.2f} (target: 0.50 or more)"))
    return ratio


def _run_kafka_phases(
    settings: Settings, options: BenchOptions, config: GeneratorConfig, emit: Callable[[str], None]
) -> float:
    generator = LoadGenerator(config)
    records = [*generator.inventory(), *generator.records(options.records)]
    size = sum(len(record.value) for record in records)
    phase = phase_settings(settings, generator)
    ensure_topics(phase)

    # 1. Produce everything, then measure the client limit and the pipeline on the same topics.
    produce_seconds = asyncio.run(produce_all(phase, records))
    emit(
        _line(
            "produced",
            f"{len(records):,} records, {size / 1e6:.1f} MB, "
            f"mean {size / len(records):,.0f} B/record, "
            f"{len(records) / produce_seconds:,.0f} records/s",
        )
    )
    limit = asyncio.run(measure_raw_limit(phase, len(records)))
    emit(_line("raw client limit (aiokafka + orjson)", _rate(limit)))
    pipeline = asyncio.run(measure_pipeline(phase, len(records), size, options.timeout))
    emit(_line("pipeline throughput (1 worker)", _rate(pipeline)))
    ratio = pipeline.rate / limit.rate

    # 2. Latency at a fixed fraction of the limit.
    rate = options.load_fraction * limit.rate
    latency = asyncio.run(
        measure_latency(
            phase_settings(settings, LoadGenerator(config)),
            config,
            rate,
            options.latency_seconds,
            options.timeout,
        )
    )
    achieved = latency.sent / latency.send_seconds if latency.send_seconds else 0.0
    emit(
        _line(
            f"latency load ({options.load_fraction:.0%} of limit)",
            f"{rate:,.0f} records/s target, {achieved:,.0f} records/s sent "
            f"for {latency.send_seconds:.1f} s, "
            f"backlog drained {latency.drain_seconds:.1f} s after the last send",
        )
    )
    emit(
        _line(
            "chain latency p50 / p99 / max",
            f"{latency.median:.3f} s / {latency.percentile(0.99):.3f} s / "
            f"{max(latency.latencies, default=float('nan')):.3f} s "
            f"over {len(latency.latencies)} of {latency.chains} chains",
        )
    )

    # 3. One worker process against two.
    if options.scaling:
        results = []
        for workers in (1, 2):
            result = measure_scaling(
                phase_settings(settings, LoadGenerator(config)), records, workers, options.timeout
            )
            results.append(result)
            emit(_line(f"scaling: {workers} worker process(es)", f"{result.rate:,.0f} records/s"))
        emit(_line("scaling: 2 workers / 1 worker", f"{results[1].rate / results[0].rate:.2f}x"))
    return ratio


def _run_core_phases(
    settings: Settings, options: BenchOptions, config: GeneratorConfig, emit: Callable[[str], None]
) -> None:
    core = measure_core(settings, config, options.core_records)
    emit(
        _line(
            "correlator core (no Kafka, one core)",
            f"{core.rate:,.0f} events/s over {core.events:,} events (target: 100,000 or more)",
        )
    )
    state = measure_state(settings, config, options.core_records)
    emit(
        _line(
            "correlator state per identity (tracemalloc)",
            f"{state.bytes_per_identity:,.0f} B over {state.identities:,} identities "
            f"({state.traced_bytes / 1e6:.1f} MB, {state.graph_nodes:,} graph nodes, "
            f"{state.keys} keys)",
        )
    )
    soak_config = replace(config, event_rate=SOAK_EVENT_RATE)
    warmup = int(
        SOAK_EVENT_RATE
        * (settings.correlation.window_seconds + settings.correlation.allowed_lateness_seconds)
        * 1.1
    )
    soak = measure_soak(settings, soak_config, warmup, options.soak_seconds)
    emit(
        _line(
            f"RSS over a {soak.seconds:.0f} s soak ({rss_method()})",
            f"{soak.start_rss / 2**20:,.1f} MiB -> {soak.end_rss / 2**20:,.1f} MiB "
            f"({soak.growth:+.1%}), peak {soak.peak_rss / 2**20:,.1f} MiB; "
            f"{soak.records:,} records, {soak.event_hours:.1f} h of event time "
            f"after a {warmup:,}-record warm-up past the window",
        )
    )


def _rate(result: RateResult) -> str:
    return (
        f"{result.rate:,.0f} records/s, {result.megabytes_per_second:,.1f} MB/s "
        f"({result.records:,} records in {result.seconds:.1f} s)"
    )
