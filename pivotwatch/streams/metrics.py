"""Prometheus metrics of pivotwatch processes, and the ``/metrics`` endpoint.

Each process serves one registry on ``/metrics`` (`serve_metrics`). The worker fills
its registry through `PipelineMetrics`, called once per batch by the normalize and
correlate agents. A live connector fills the default registry through `ConnectorMetrics`,
which its `ConnectorCounters` (pivotwatch/connectors/delivery.py) updates on every count.

Names follow the Prometheus conventions: the ``pivotwatch_`` prefix, base units
(seconds, bytes), ``_total`` on counters. Labels have bounded values only (source,
stage, topic, partition, alert kind and severity, connector, outcome); no metric is
labelled by account, identity, chain or technique, because those are unbounded.
Processing times use the worker's clock; event-time lag compares it with event times.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import start_http_server as _start_http_server

from pivotwatch import __version__
from pivotwatch.schemas.alert import Alert

__all__ = [
    "BATCH_SECONDS_BUCKETS",
    "ConnectorMetrics",
    "MetricsServer",
    "PipelineMetrics",
    "exported_metric_names",
    "serve_metrics",
]

logger = logging.getLogger(__name__)

BATCH_SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Buckets of the batch processing time histogram, in seconds."""

STAGE_NORMALIZE = "normalize"
STAGE_CORRELATE = "correlate"


class MessagePosition(Protocol):
    """Where a processed message was read, such as a `RawMessage`."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class NormalizeResult(Protocol):
    """The part of `Normalizer.process`'s output that `PipelineMetrics.observe_normalize` reads."""

    @property
    def batches(self) -> Mapping[str, Sequence[Any]]: ...
    @property
    def dead_letters(self) -> Sequence[Any]: ...
    @property
    def counts(self) -> Mapping[str, int]: ...


class CorrelatorState(Protocol):
    """The part of the `Correlator` that `PipelineMetrics.observe_correlate` reads."""

    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def states(self) -> Mapping[str, Any]: ...


class PipelineMetrics:
    """The worker's metrics, in a registry of their own (one per `Pipeline`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "pivotwatch_records_in",
            "Raw messages read from the raw topics.",
            ["source"],
            registry=r,
        )
        self.events_out = Counter(
            "pivotwatch_normalized_events",
            "Normalized events sent to the events topic.",
            registry=r,
        )
        self.dead_letters = Counter(
            "pivotwatch_dead_letter_records",
            "Records sent to the dead-letter topic.",
            ["source"],
            registry=r,
        )
        self.duplicates = Counter(
            "pivotwatch_duplicate_records",
            "Records dropped as already seen, by stage.",
            ["stage"],
            registry=r,
        )
        self.skipped = Counter(
            "pivotwatch_skipped_records",
            "Records skipped on purpose, such as CloudTrail digest files.",
            registry=r,
        )
        self.late = Counter(
            "pivotwatch_late_records",
            "Records older than their stream's watermark minus the allowed lateness.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "pivotwatch_batch_processing_seconds",
            "Time to process one batch, including the wait for Kafka's acknowledgements.",
            ["stage"],
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self.event_time_lag = Gauge(
            "pivotwatch_event_time_lag_seconds",
            "Processing time minus the newest event time of the last batch, by source.",
            ["source"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "pivotwatch_consumer_lag_messages",
            "Messages between the last one processed and the end of the partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.graph_nodes = Gauge(
            "pivotwatch_graph_nodes", "Nodes of the identity graphs of every key.", registry=r
        )
        self.graph_edges = Gauge(
            "pivotwatch_graph_edges", "Edges of the identity graphs of every key.", registry=r
        )
        self.correlation_keys = Gauge(
            "pivotwatch_correlation_keys",
            "Correlation keys (accounts, projects) with state.",
            registry=r,
        )
        self.evicted_edges = Counter(
            "pivotwatch_graph_evicted_edges",
            "Graph edges removed by the window or the caps.",
            registry=r,
        )
        self.evicted_nodes = Counter(
            "pivotwatch_graph_evicted_nodes",
            "Graph nodes removed once they had no edge left.",
            registry=r,
        )
        self.alerts = Counter(
            "pivotwatch_alerts",
            "Alert revisions published, by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.new_chains = Counter(
            "pivotwatch_new_chains",
            "Alerts published for the first time (revision 1), by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        Info("pivotwatch_build", "Version of pivotwatch.", registry=r).info(
            {"version": __version__}
        )
        self._correlator_totals: dict[str, int] = {}

    def observe_normalize(
        self,
        sources: Mapping[str, str],
        messages: Sequence[MessagePosition],
        output: NormalizeResult,
        seconds: float,
    ) -> None:
        """Record one normalize batch; ``sources`` maps each raw topic to its source name."""
        for message in messages:
            self.records_in.labels(sources.get(message.topic, "unknown")).inc()
        self.events_out.inc(output.counts.get("normalized", 0))
        self.duplicates.labels(STAGE_NORMALIZE).inc(output.counts.get("duplicate", 0))
        self.skipped.inc(output.counts.get("skipped", 0))
        for dead in output.dead_letters:
            self.dead_letters.labels(sources.get(dead.message.topic, "unknown")).inc()
        self._observe_event_times(output.batches)
        self.batch_seconds.labels(STAGE_NORMALIZE).observe(seconds)

    def observe_correlate(
        self, correlator: CorrelatorState, alerts: Sequence[Alert], seconds: float
    ) -> None:
        """Record one correlate batch: its alerts and the correlator's state after it."""
        for alert in alerts:
            self.alerts.labels(str(alert.kind), str(alert.severity)).inc()
            if alert.revision == 1:
                self.new_chains.labels(str(alert.kind), str(alert.severity)).inc()
        self._mirror(
            correlator.counts.get("duplicate", 0),
            "duplicate",
            self.duplicates.labels(STAGE_CORRELATE),
        )
        self._mirror(correlator.counts.get("late", 0), "late", self.late)
        self._observe_graphs(correlator.states.values())
        self.batch_seconds.labels(STAGE_CORRELATE).observe(seconds)

    def observe_consumer_lag(
        self, highwater: Callable[[Any], int], messages: Iterable[MessagePosition]
    ) -> None:
        """Set the lag of each partition that ``messages`` were read from.

        ``highwater`` returns a partition's high watermark for a faust ``TP``, the offset
        after its last message, as faust's ``Consumer.highwater`` does. A partition whose
        high watermark is not known yet keeps its last value.
        """
        from faust.types import TP

        newest: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic, message.partition)
            newest[key] = max(message.offset, newest.get(key, -1))
        for (topic, partition), offset in newest.items():
            try:
                end = highwater(TP(topic, partition))
            except Exception as error:  # a missing watermark must not stop a batch
                logger.debug("no high watermark for %s[%d]: %r", topic, partition, error)
                continue
            if isinstance(end, int):
                self.consumer_lag.labels(topic, str(partition)).set(max(end - offset - 1, 0))

    def _observe_event_times(self, batches: Mapping[str, Sequence[Any]]) -> None:
        newest: dict[str, datetime] = {}
        for events in batches.values():
            for event in events:
                source = str(event.source)
                if source not in newest or event.time > newest[source]:
                    newest[source] = event.time
        now = datetime.now(UTC)
        for source, time in newest.items():
            self.event_time_lag.labels(source).set((now - time).total_seconds())

    def _observe_graphs(self, states: Iterable[Any]) -> None:
        nodes = edges = evicted_edges = evicted_nodes = keys = 0
        for state in states:
            graph = state.graph
            keys += 1
            nodes += len(graph)
            edges += graph.edge_count
            evicted_edges += graph.evicted_edges
            evicted_nodes += graph.evicted_nodes
        self.correlation_keys.set(keys)
        self.graph_nodes.set(nodes)
        self.graph_edges.set(edges)
        self._mirror(evicted_edges, "evicted_edges", self.evicted_edges)
        self._mirror(evicted_nodes, "evicted_nodes", self.evicted_nodes)

    def _mirror(self, total: int, name: str, counter: Any) -> None:
        """Add to ``counter`` what a running total grew by since the last call.

        A total that shrinks (a key's state was dropped with its own counts) adds nothing.
        """
        previous = self._correlator_totals.get(name, 0)
        if total > previous:
            counter.inc(total - previous)
        self._correlator_totals[name] = total


class _ConnectorFamilies:
    """The connector metric families of one registry, created once."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "pivotwatch_connector_records",
            "Source records by connector and outcome: received, produced (acknowledged by Kafka), "
            "failed.",
            ["connector", "outcome"],
            registry=registry,
        )
        self.acknowledgements = Counter(
            "pivotwatch_connector_source_acks",
            "Source messages acknowledged (SQS deletes, Pub/Sub acks, HTTP responses) "
            "after Kafka took them.",
            ["connector"],
            registry=registry,
        )
        self.errors = Counter(
            "pivotwatch_connector_errors",
            "Errors a connector caught and retried or skipped.",
            ["connector"],
            registry=registry,
        )
        self.last_success = Gauge(
            "pivotwatch_connector_last_success_timestamp_seconds",
            "Unix time of the connector's last delivery to Kafka.",
            ["connector"],
            registry=registry,
        )


# Keyed weakly by registry: a registry that was garbage-collected must not hand its
# families to a new registry that reuses its id().
_connector_families: weakref.WeakKeyDictionary[CollectorRegistry, _ConnectorFamilies] = (
    weakref.WeakKeyDictionary()
)
_connector_lock = threading.Lock()


class ConnectorMetrics:
    """Counters of one connector, such as ``cloudtrail-sqs`` or ``falco-http``.

    Every `ConnectorMetrics` of a registry shares its metric families, so several
    connectors in one process, or one connector built twice, are fine.
    """

    def __init__(self, connector: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.connector = connector
        with _connector_lock:
            families = _connector_families.get(registry)
            if families is None:
                families = _connector_families[registry] = _ConnectorFamilies(registry)
        self._families = families

    def received(self, count: int = 1) -> None:
        """Count records fetched from the source."""
        self._families.records.labels(self.connector, "received").inc(count)

    def produced(self, count: int = 1) -> None:
        """Count records that Kafka acknowledged, and mark the time of this delivery."""
        self._families.records.labels(self.connector, "produced").inc(count)
        self._families.last_success.labels(self.connector).set_to_current_time()

    def failed(self, count: int = 1) -> None:
        """Count records that could not be delivered."""
        self._families.records.labels(self.connector, "failed").inc(count)

    def acknowledged(self, count: int = 1) -> None:
        """Count source messages acknowledged after delivery."""
        self._families.acknowledgements.labels(self.connector).inc(count)

    def error(self, count: int = 1) -> None:
        """Count errors that the connector caught."""
        self._families.errors.labels(self.connector).inc(count)


class MetricsServer:
    """A running ``/metrics`` endpoint; `close` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.address, self.port = server.server_address[:2]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    registry: CollectorRegistry, port: int, address: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``registry`` on ``http://address:port/metrics`` from a background thread.

    Port 0 picks a free port; read it from `MetricsServer.port`.
    """
    server, thread = _start_http_server(port, addr=address, registry=registry)
    metrics = MetricsServer(server, thread)
    logger.info("serving metrics on http://%s:%d/metrics", metrics.address, metrics.port)
    return metrics


def exported_metric_names(registry: CollectorRegistry) -> set[str]:
    """Return every sample name that ``registry`` can export, including unused labelled ones.

    Counters export ``<name>_total`` (and ``_created``), histograms ``_bucket``, ``_sum``
    and ``_count``, info metrics ``<name>_info``, gauges their name.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "info": ("_info",),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
