"""Grafana dashboards and provisioning under deploy/: structure and the metrics they query."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from pivotwatch.streams.metrics import ConnectorMetrics, PipelineMetrics, exported_metric_names

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_METRICS = {"up"}
"""Series that Prometheus itself writes for every target."""

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_IDENTIFIER = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names(expression: str) -> set[str]:
    """Return the metric names that a PromQL expression selects, without functions and labels."""
    text = _STRING.sub("", expression)
    text = _SELECTOR.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = {match for match in _IDENTIFIER.findall(text) if match.lower() not in PROMQL_KEYWORDS}
    return {name for name in names if not re.fullmatch(r"\d+(\.\d+)?", name)}


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    ConnectorMetrics("any", registry)
    return exported_metric_names(registry)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            'sum by (source) (rate(pivotwatch_records_in_total{job="w"}[5m]))',
            {"pivotwatch_records_in_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le, stage) "
            "(rate(pivotwatch_batch_processing_seconds_bucket[5m])))",
            {"pivotwatch_batch_processing_seconds_bucket"},
        ),
        (
            "time() - max by (connector) (pivotwatch_connector_last_success_timestamp_seconds)",
            {"pivotwatch_connector_last_success_timestamp_seconds"},
        ),
        (
            "sum(increase(pivotwatch_alerts_total[$__rate_interval])) / on (kind) group_left a_b",
            {"pivotwatch_alerts_total", "a_b"},
        ),
    ],
)
def test_metric_names_parses_promql(expression: str, expected: set[str]) -> None:
    assert metric_names(expression) == expected


def test_two_dashboards_exist() -> None:
    assert {path.name for path in DASHBOARDS} == {"pipeline-health.json", "detections.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_queries_exported_metrics(path: Path) -> None:
    known = exported_names() | PROMETHEUS_METRICS
    for expression in dashboard_expressions(load(path)):
        assert metric_names(expression), f"no metric found in {expression!r}"
        assert metric_names(expression) <= known, (
            f"{path.name}: {expression!r} queries unknown metrics"
        )


def test_dashboards_chart_every_metric() -> None:
    queried = {
        name
        for path in DASHBOARDS
        for expression in dashboard_expressions(load(path))
        for name in metric_names(expression)
    }
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    ConnectorMetrics("any", registry)
    for family in registry.collect():
        assert any(name.startswith(family.name) for name in queried), (
            f"no panel charts {family.name}"
        )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_uses_provisioned_datasource(path: Path) -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasources["datasources"][0]["uid"]
    dashboard = load(path)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_panels_are_unique(path: Path) -> None:
    dashboard = load(path)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert dashboard["uid"].startswith("pivotwatch-")
    assert len(ids) == len(set(ids))


def test_dashboards_have_distinct_uids() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_no_unbounded_labels_in_queries() -> None:
    for path in DASHBOARDS:
        for expression in dashboard_expressions(load(path)):
            for label in ("account", "chain_id", "technique", "identity"):
                assert label not in expression, f"{path.name}: {expression!r}"


def test_dashboard_provider_path_is_mounted() -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "pivotwatch.yml").read_text()
    )
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = provider["providers"][0]["options"]["path"]
    assert any(str(mount).split(":")[1] == path for mount in mounts)
