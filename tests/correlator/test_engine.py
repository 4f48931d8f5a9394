"""The correlator core on whole incidents, without Kafka: chains, order independence, bounds."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from pivotwatch.connectors.files import SourceRecord, list_input_files, read_records
from pivotwatch.correlator.engine import Correlator
from pivotwatch.schemas.alert import Alert, AlertKind
from pivotwatch.schemas.event import Event, EventKind, Source
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.settings import load_settings
from pivotwatch.streams.scenario import scenario_inputs

SAMPLE = Path(__file__).resolve().parents[2] / "pivotwatch" / "samples" / "eks-imds-pivot"


@pytest.fixture(scope="module")
def correlator_factory() -> type[Correlator]:
    return Correlator


def load_events(folder: Path) -> list[Event]:
    """Normalize a scenario folder's records: inventory first, then the rest in file order."""
    context = NormalizeContext()
    inventory, others = scenario_inputs(folder)
    events: list[Event] = []
    for paths in (inventory, others):
        for path in list_input_files(paths):
            for item in read_records(path):
                if isinstance(item, SourceRecord):
                    events.extend(normalize_record(item.source, orjson.loads(item.value), context))
    return events


def correlate(events: Iterable[Event], batch_size: int = 50) -> list[Alert]:
    correlator = Correlator.from_settings(load_settings())
    ordered = list(events)
    alerts: list[Alert] = []
    for start in range(0, len(ordered), batch_size):
        alerts.extend(correlator.process(ordered[start : start + batch_size]))
    return alerts


def latest_chains(alerts: list[Alert]) -> dict[str, Alert]:
    latest: dict[str, Alert] = {}
    for alert in alerts:
        if alert.kind is AlertKind.SINGLE_STAGE:
            continue
        kept = latest.get(alert.chain_id)
        if kept is None or alert.revision > kept.revision:
            latest[alert.chain_id] = alert
    return latest


def chain_content(
    alerts: list[Alert],
) -> dict[str, tuple[str, int, frozenset[str], frozenset[str], frozenset[str]]]:
    """Return what the newest revision of each chain must show whatever the arrival order.

    Evidence that only repeats behaviour already published (the same call by the same
    identity) publishes no revision, so which copy of it is listed depends on order; the
    identities, techniques and rules do not.
    """
    return {
        chain_id: (
            str(alert.kind),
            alert.score,
            frozenset(alert.identities),
            frozenset(alert.techniques),
            frozenset(alert.rules),
        )
        for chain_id, alert in latest_chains(alerts).items()
    }


# Out-of-order input inside the allowed lateness (30 minutes by default) must give the
# same chains; records later than that are dropped by design, so the shuffle stays inside.
MAX_DISORDER = timedelta(minutes=20)


def shuffled(events: list[Event], seed: int) -> list[Event]:
    """Keep inventory first and deliver each other record up to MAX_DISORDER late."""
    generator = random.Random(seed)
    assets = [event for event in events if event.kind is EventKind.ASSET]
    rest = [event for event in events if event.kind is not EventKind.ASSET]
    delays = {id(event): generator.uniform(0, MAX_DISORDER.total_seconds()) for event in rest}
    rest.sort(key=lambda event: event.time + timedelta(seconds=delays[id(event)]))
    return assets + rest


def test_sample_incident_gives_one_critical_chain() -> None:
    chains = [
        alert
        for alert in latest_chains(correlate(load_events(SAMPLE))).values()
        if alert.kind is AlertKind.PIVOT_CHAIN
    ]

    assert len(chains) == 1
    chain = chains[0]
    assert chain.severity == "critical"
    assert chain.entry.namespace == "checkout"
    assert chain.entry.pod is not None and chain.entry.pod.startswith("web-")
    assert any(identity.endswith("/i-04c9e2b7a1f3d8650") for identity in chain.identities)
    assert "T1552.005" in chain.techniques
    assert "credential-access" in chain.stages


def test_sample_incident_order_independent() -> None:
    events = load_events(SAMPLE)
    expected = chain_content(correlate(events))

    for seed in range(5):
        assert chain_content(correlate(shuffled(events, seed), batch_size=7)) == expected, (
            f"seed {seed}"
        )


def test_chain_ids_stable_across_runs() -> None:
    events = load_events(SAMPLE)

    first = set(latest_chains(correlate(events)))
    second = set(latest_chains(correlate(events)))

    assert first == second


def test_duplicates_change_nothing() -> None:
    events = load_events(SAMPLE)
    cloud = [event for event in events if event.kind is EventKind.API_CALL]

    assert chain_content(correlate(events + cloud)) == chain_content(correlate(events))


def test_routine_traffic_alone_makes_no_chain() -> None:
    events = [
        event
        for event in load_events(SAMPLE)
        if not event.source_ip or event.source_ip.startswith("192.0.2.")
    ]
    kinds = [alert.kind for alert in correlate(events)]

    assert AlertKind.PIVOT_CHAIN not in kinds


def test_state_bounded_by_window() -> None:
    settings = load_settings(correlation={"window_seconds": 60})
    correlator = Correlator.from_settings(settings)
    events = load_events(SAMPLE)

    correlator.process(events)

    for state in correlator.states.values():
        assert state.newest is not None
        horizon = state.newest - settings.correlation.window
        for signals in state.signals.values():
            assert all(signal.event.time >= horizon for signal in signals)
        for activities in state.activities.values():
            assert all(activity.event.time >= horizon for activity in activities)
    assert sum(state.evicted_events for state in correlator.states.values()) > 0


@pytest.fixture(scope="module")
def scorer(shared_dir: Path) -> ModuleType:
    path = shared_dir / "tools" / "score_scenarios.py"
    spec = importlib.util.spec_from_file_location("score_scenarios", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scenario_folders(shared: Path) -> list[Path]:
    return sorted(
        path for path in (shared / "scenarios").iterdir() if (path / "expected.json").is_file()
    )


@pytest.mark.shared
def test_shared_scenarios_in_any_order(
    shared_dir: Path, scorer: ModuleType, tmp_path: Path
) -> None:
    for folder in scenario_folders(shared_dir):
        events = load_events(folder)
        expected = chain_content(correlate(events))
        for seed in range(3):
            alerts = correlate(shuffled(events, seed), batch_size=11)
            assert chain_content(alerts) == expected, f"{folder.name}, seed {seed}"
            path = tmp_path / f"{folder.name}-{seed}.jsonl"
            path.write_bytes(
                b"".join(orjson.dumps(orjson.loads(_encode(alert))) + b"\n" for alert in alerts)
            )
            wanted, found, false_chains = scorer.score(folder, path)
            assert (found, false_chains) == (wanted, 0), f"{folder.name}, seed {seed}"


def _encode(alert: Alert) -> bytes:
    import msgspec

    return msgspec.json.encode(alert)


def test_off_host_use_without_runtime_signal_is_single_stage() -> None:
    events = [event for event in load_events(SAMPLE) if event.source is not Source.FALCO]

    alerts = correlate(events)

    assert AlertKind.PIVOT_CHAIN not in [alert.kind for alert in alerts]
    off_host = [alert for alert in alerts if "pivotwatch:off-host-credential-use" in alert.rules]
    assert len(off_host) == 1
    assert off_host[0].severity == "high"
    assert off_host[0].kind is AlertKind.SINGLE_STAGE
    assert off_host[0].identities[0].endswith("/i-04c9e2b7a1f3d8650")


def test_chain_names_imds_version() -> None:
    chains = [
        alert
        for alert in latest_chains(correlate(load_events(SAMPLE))).values()
        if alert.kind is AlertKind.PIVOT_CHAIN
    ]

    assert chains[0].details["instance_credential_delivery"] == "IMDSv1"
    assert chains[0].details["off_host_use"] == "true"
