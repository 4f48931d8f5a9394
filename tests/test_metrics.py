"""Prometheus metrics of the pipeline stages, fed by the real normalizer and correlator."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pivotwatch.cli.scenario import EMBEDDED_HEARTBEAT_INTERVAL, EMBEDDED_SESSION_TIMEOUT
from pivotwatch.connectors.replay import replay
from pivotwatch.correlator.engine import Correlator
from pivotwatch.settings import Settings
from pivotwatch.streams.app import Pipeline
from pivotwatch.streams.metrics import (
    ConnectorMetrics,
    PipelineMetrics,
    exported_metric_names,
    serve_metrics,
)
from pivotwatch.streams.normalizing import Normalizer
from pivotwatch.streams.records import RawMessage
from pivotwatch.streams.runner import OffsetWatcher, running_worker
from pivotwatch.streams.scenario import isolated_settings
from pivotwatch.streams.topics import ensure_topics

SAMPLE = Path(__file__).resolve().parents[1] / "pivotwatch" / "samples" / "eks-imds-pivot"


def sample_messages(settings: Settings) -> list[RawMessage]:
    """Return the sample's inventory, CloudTrail and Falco records as raw messages.

    One invalid message is added at the end.
    """
    topics = settings.topics
    values = [
        (topics.inventory, path.read_bytes())
        for path in sorted((SAMPLE / "inventory").glob("*.json"))
    ]
    values += [
        (topics.cloudtrail, path.read_bytes())
        for path in sorted((SAMPLE / "cloudtrail").glob("*.json"))
    ]
    values += [
        (topics.falco, line)
        for line in (SAMPLE / "falco.jsonl").read_bytes().splitlines()
        if line.strip()
    ]
    values.append((topics.falco, b"{not json"))
    return [
        RawMessage(topic, 0, offset, None, value) for offset, (topic, value) in enumerate(values)
    ]


@pytest.fixture(scope="module")
def observed() -> tuple[PipelineMetrics, list[RawMessage]]:
    settings = Settings()
    normalizer = Normalizer(settings)
    correlator = Correlator.from_settings(settings)
    metrics = PipelineMetrics()
    messages = sample_messages(settings)

    output = normalizer.process(messages)
    metrics.observe_normalize(normalizer.sources, messages, output, 0.02)
    events = [event for batch in output.batches.values() for event in batch]
    alerts = correlator.process(events)
    metrics.observe_correlate(correlator, alerts, 0.05)
    again = [next(message for message in messages if message.topic == settings.topics.cloudtrail)]
    duplicate = normalizer.process(again)
    metrics.observe_normalize(normalizer.sources, again, duplicate, 0.01)
    return metrics, messages


def sample(metrics: PipelineMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_records_in_by_source(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, messages = observed
    falco = sum(1 for message in messages if message.topic.endswith("falco"))
    assert sample(metrics, "pivotwatch_records_in_total", source="falco") == falco
    cloudtrail = sum(1 for message in messages if message.topic.endswith("cloudtrail"))
    assert sample(metrics, "pivotwatch_records_in_total", source="cloudtrail") == cloudtrail + 1


def test_dead_letter_counted_by_source(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    assert sample(metrics, "pivotwatch_dead_letter_records_total", source="falco") == 1


def test_duplicates_counted_by_stage(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    assert (sample(metrics, "pivotwatch_duplicate_records_total", stage="normalize") or 0) > 0


def test_normalized_events_counted(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    assert (sample(metrics, "pivotwatch_normalized_events_total") or 0) > 40


def test_alerts_by_kind_and_severity(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    assert sample(metrics, "pivotwatch_alerts_total", kind="pivot_chain", severity="critical") == 1
    assert (
        sample(metrics, "pivotwatch_new_chains_total", kind="pivot_chain", severity="critical") == 1
    )


def test_graph_size_and_keys(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    assert sample(metrics, "pivotwatch_correlation_keys") == 1
    assert (sample(metrics, "pivotwatch_graph_nodes") or 0) > 0
    assert (sample(metrics, "pivotwatch_graph_edges") or 0) > 0


def test_batch_time_histogram(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    assert sample(metrics, "pivotwatch_batch_processing_seconds_count", stage="normalize") == 2
    assert sample(
        metrics, "pivotwatch_batch_processing_seconds_sum", stage="correlate"
    ) == pytest.approx(0.05)


def test_event_time_lag_positive(observed: tuple[PipelineMetrics, list[RawMessage]]) -> None:
    metrics, _ = observed
    lag = sample(metrics, "pivotwatch_event_time_lag_seconds", source="cloudtrail")
    assert lag is not None
    assert lag != 0


def test_consumer_lag_from_high_watermark() -> None:
    metrics = PipelineMetrics()
    messages = [RawMessage("raw", 1, offset, None, b"") for offset in (3, 7, 5)]
    metrics.observe_consumer_lag(lambda tp: 20 if tp.partition == 1 else 0, messages)
    assert (
        metrics.registry.get_sample_value(
            "pivotwatch_consumer_lag_messages", {"topic": "raw", "partition": "1"}
        )
        == 12
    )


def test_consumer_lag_without_watermark_is_unset() -> None:
    def missing(tp: object) -> int:
        raise KeyError(tp)

    metrics = PipelineMetrics()
    metrics.observe_consumer_lag(missing, [RawMessage("raw", 0, 1, None, b"")])
    assert (
        metrics.registry.get_sample_value(
            "pivotwatch_consumer_lag_messages", {"topic": "raw", "partition": "0"}
        )
        is None
    )


def test_evictions_mirror_growth_only() -> None:
    class Graph:
        def __init__(self, evicted: int) -> None:
            self.evicted_edges = evicted
            self.evicted_nodes = 0
            self.edge_count = 0

        def __len__(self) -> int:
            return 0

    class State:
        def __init__(self, evicted: int) -> None:
            self.graph = Graph(evicted)

    class FakeCorrelator:
        def __init__(self, evicted: int) -> None:
            self.counts: dict[str, int] = {}
            self.states = {"k": State(evicted)}

    metrics = PipelineMetrics()
    for evicted in (5, 9, 2, 4):
        metrics.observe_correlate(FakeCorrelator(evicted), [], 0.0)
    assert metrics.registry.get_sample_value("pivotwatch_graph_evicted_edges_total") == 11


def test_connector_metrics_share_families() -> None:
    registry = CollectorRegistry()
    first = ConnectorMetrics("cloudtrail-sqs", registry)
    again = ConnectorMetrics("cloudtrail-sqs", registry)
    first.received(3)
    again.produced(2)
    again.acknowledged(1)
    first.error()
    records = "pivotwatch_connector_records_total"
    assert (
        registry.get_sample_value(records, {"connector": "cloudtrail-sqs", "outcome": "received"})
        == 3
    )
    assert (
        registry.get_sample_value(records, {"connector": "cloudtrail-sqs", "outcome": "produced"})
        == 2
    )
    assert (
        registry.get_sample_value(
            "pivotwatch_connector_errors_total", {"connector": "cloudtrail-sqs"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "pivotwatch_connector_last_success_timestamp_seconds", {"connector": "cloudtrail-sqs"}
        )
        or 0
    ) > 0


def test_metric_names_follow_conventions() -> None:
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    ConnectorMetrics("falco-http", registry)
    for family in registry.collect():
        assert family.name.startswith("pivotwatch_"), family.name
        if family.type == "counter":
            assert not family.name.endswith("_total"), family.name
        for label in ("account", "identity", "chain_id", "technique"):
            assert all(label not in sample.labels for sample in family.samples), family.name


def test_exported_names_include_suffixes() -> None:
    names = exported_metric_names(PipelineMetrics().registry)
    assert "pivotwatch_records_in_total" in names
    assert "pivotwatch_batch_processing_seconds_bucket" in names
    assert "pivotwatch_graph_nodes" in names


def test_serve_metrics_on_loopback() -> None:
    metrics = PipelineMetrics()
    server = serve_metrics(metrics.registry, 0)
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
    finally:
        server.close()
    assert server.address == "127.0.0.1"
    assert 'pivotwatch_build_info{version="' in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def query_prometheus(base_url: str, expression: str) -> float | None:
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return None
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@contextmanager
def prometheus_server(tmp_path: Path, target_port: int) -> Iterator[str]:
    """Run Debian's prometheus binary on loopback, scraping 127.0.0.1:target_port every second."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: pivotwatch-worker\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def replay_sample_through_worker(settings: Settings, pipeline: Pipeline) -> int:
    """Replay the sample through a worker in this process and return the records sent."""
    watcher = OffsetWatcher(settings)
    raw_topics = list(settings.topics.raw_topics().values())
    try:
        async with running_worker(pipeline):
            summary = await asyncio.to_thread(replay, [SAMPLE], settings, None, False)
            await watcher.wait(raw_topics, 120)
            await watcher.wait([settings.topics.events], 120)
    finally:
        watcher.close()
    return sum(count for (_, outcome), count in summary.counts.items() if outcome == "sent")


PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.mark.integration
@pytest.mark.skipif(
    not Path(PROMETHEUS).is_file(),
    reason="the prometheus binary is absent: install Debian's package (apt-get install prometheus)",
)
def test_prometheus_scrapes_worker(kafka_bootstrap: str, tmp_path: Path) -> None:
    worker = {
        "session_timeout_seconds": EMBEDDED_SESSION_TIMEOUT,
        "heartbeat_interval_seconds": EMBEDDED_HEARTBEAT_INTERVAL,
    }
    settings = isolated_settings(Settings(kafka={"bootstrap": kafka_bootstrap}, worker=worker))
    ensure_topics(settings)
    pipeline = Pipeline(settings)
    server = serve_metrics(pipeline.metrics.registry, 0)
    try:
        sent = asyncio.run(replay_sample_through_worker(settings, pipeline))
        with prometheus_server(tmp_path, server.port) as base_url:
            deadline = time.monotonic() + 60
            records_in = alerts = None
            while time.monotonic() < deadline:
                records_in = query_prometheus(base_url, "sum(pivotwatch_records_in_total)")
                alerts = query_prometheus(
                    base_url, 'sum(pivotwatch_alerts_total{kind="pivot_chain"})'
                )
                if records_in == sent and alerts:
                    break
                time.sleep(1)
            up = query_prometheus(base_url, 'up{job="pivotwatch-worker"}')
    finally:
        server.close()
    assert up == 1
    assert records_in == sent
    assert alerts == 1
