"""The correlator without Kafka: speed on one core, state per identity, memory over a soak.

Records come from `LoadGenerator`, are framed and normalized by the `Normalizer` of the
normalize agent, and are grouped per correlation key in batches as the events topic
carries them. Only `Correlator.process` is timed for the core rate.
"""

from __future__ import annotations

import gc
import logging
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pivotwatch.bench.generator import GeneratedRecord, GeneratorConfig, LoadGenerator
from pivotwatch.bench.memory import resident_bytes
from pivotwatch.correlator.engine import Correlator
from pivotwatch.schemas.event import Event
from pivotwatch.settings import Settings
from pivotwatch.streams.normalizing import Normalizer
from pivotwatch.streams.records import RawMessage

__all__ = [
    "CoreResult",
    "SoakResult",
    "StateResult",
    "measure_core",
    "measure_soak",
    "measure_state",
]

logger = logging.getLogger(__name__)

RAW_BATCH = 500
"""Raw records per normalize batch, the worker's default ``batch_size``."""


@dataclass(frozen=True, slots=True)
class CoreResult:
    events: int
    seconds: float
    alerts: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class StateResult:
    traced_bytes: int
    """Bytes allocated and still held by the correlator, as tracemalloc counts them."""
    identities: int
    graph_nodes: int
    keys: int

    @property
    def bytes_per_identity(self) -> float:
        return self.traced_bytes / self.identities if self.identities else 0.0


@dataclass(frozen=True, slots=True)
class SoakResult:
    seconds: float
    records: int
    event_hours: float
    """Event time covered by the soak, in hours."""
    start_rss: int
    end_rss: int
    peak_rss: int

    @property
    def growth(self) -> float:
        return (self.end_rss - self.start_rss) / self.start_rss if self.start_rss else 0.0


def event_batches(
    settings: Settings, records: Iterable[GeneratedRecord], normalizer: Normalizer | None = None
) -> Iterator[list[Event]]:
    """Normalize records in raw batches and yield one event batch per key, as the agent does."""
    normalizer = normalizer or Normalizer(settings)
    topics = settings.topics.raw_topics()
    batch: list[RawMessage] = []
    for offset, record in enumerate(records):
        batch.append(
            RawMessage(
                topic=topics[record.source.value],
                partition=0,
                offset=offset,
                key=record.key,
                value=record.value,
            )
        )
        if len(batch) == RAW_BATCH:
            yield from normalizer.process(batch).batches.values()
            batch = []
    if batch:
        yield from normalizer.process(batch).batches.values()


def measure_core(settings: Settings, config: GeneratorConfig, count: int) -> CoreResult:
    """Time `Correlator.process` alone over ``count`` generated records and their inventory."""
    generator = LoadGenerator(config)
    records = [*generator.inventory(), *generator.records(count)]
    batches = list(event_batches(settings, records))
    events = sum(len(batch) for batch in batches)
    correlator = Correlator.from_settings(settings)
    alerts = 0
    gc.collect()
    started = time.perf_counter()
    for batch in batches:
        alerts += len(correlator.process(batch))
    seconds = time.perf_counter() - started
    return CoreResult(events=events, seconds=seconds, alerts=alerts)


def count_identities(correlator: Correlator) -> tuple[int, int]:
    """Return the identity nodes and all nodes of every key's graph."""
    identities = 0
    nodes = 0
    for state in correlator.states.values():
        graph = state.graph.graph
        nodes += graph.number_of_nodes()
        identities += sum(1 for node in graph if str(node).startswith("identity:"))
    return identities, nodes


def measure_state(settings: Settings, config: GeneratorConfig, count: int) -> StateResult:
    """Measure the memory the correlator keeps, with tracemalloc, per tracked identity.

    The correlator is built before tracing starts, so the rule pack is not counted.
    Records are generated, normalized and correlated while tracing, then every
    reference outside the correlator is dropped, so what remains traced is the
    correlator's state: graphs, signals, activities, retained events, watermarks,
    published chains and the deduplication ids.
    """
    correlator = Correlator.from_settings(settings)
    generator = LoadGenerator(config)
    normalizer = Normalizer(settings)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        records = [*generator.inventory(), *generator.records(count)]
        for batch in event_batches(settings, records, normalizer):
            correlator.process(batch)
        del records, batch
        normalizer.deduplicator = type(normalizer.deduplicator)(
            settings.correlation.allowed_lateness
        )
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    identities, nodes = count_identities(correlator)
    return StateResult(
        traced_bytes=held, identities=identities, graph_nodes=nodes, keys=len(correlator.states)
    )


def measure_soak(
    settings: Settings,
    config: GeneratorConfig,
    warmup_records: int,
    seconds: float,
    chunk: int = 20_000,
) -> SoakResult:
    """Run normalize and correlate until windows are full, then for ``seconds`` more.

    RSS is read after the warm-up (start) and at the end. Choose ``config.event_rate``
    and ``warmup_records`` so that the warm-up covers more event time than the
    correlation window and the allowed lateness, so expiry is already running.
    """
    generator = LoadGenerator(config)
    normalizer = Normalizer(settings)
    correlator = Correlator.from_settings(settings)
    for batch in event_batches(settings, generator.inventory(), normalizer):
        correlator.process(batch)
    for batch in event_batches(settings, generator.records(warmup_records), normalizer):
        correlator.process(batch)
    gc.collect()
    start_rss = resident_bytes()
    peak = start_rss
    first_time = None
    last_time = None
    records = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        generated = list(generator.records(chunk))
        first_time = first_time or generated[0].time
        last_time = generated[-1].time
        for batch in event_batches(settings, generated, normalizer):
            correlator.process(batch)
        records += len(generated)
        peak = max(peak, resident_bytes())
    gc.collect()
    end_rss = resident_bytes()
    hours = (last_time - first_time).total_seconds() / 3600 if first_time and last_time else 0.0
    return SoakResult(
        seconds=time.monotonic() - started,
        records=records,
        event_hours=hours,
        start_rss=start_rss,
        end_rss=end_rss,
        peak_rss=max(peak, end_rss),
    )
