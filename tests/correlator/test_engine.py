"""The correlator core on whole incidents, without Kafka: chains, order independence, bounds."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

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
    identity) publishes no revision, so which copy of it is listed depends on order. The
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
# same chains. Records later than that are dropped by design, so the shuffle stays inside.
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


def test_off_host_use_alone_is_single_stage() -> None:
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


ECS_TASK = "0123456789abcdef0123456789abcdef"
ECS_SESSION = f"arn:aws:sts::210987654321:assumed-role/billing-task-role/{ECS_TASK}"
ECS_TASK_ARN = f"arn:aws:ecs:us-west-2:210987654321:task/billing/{ECS_TASK}"


def ecs_records(host: str) -> list[tuple[Source, dict[str, Any]]]:
    """An ECS task's container reads its task role credentials; they are used from outside."""
    alert = {
        "uuid": "5c0ffee0-0000-4000-8000-00000000ec51",
        "output": "08:20:00.000000000: Warning Credential endpoint contacted from a container",
        "priority": "Warning",
        "rule": "Contact EC2 Instance Metadata Service From Container",
        "time": "2026-11-30T08:20:00.000000000Z",
        "source": "syscall",
        "hostname": host,
        "tags": ["T1552.005", "aws", "container", "mitre_credential_access", "network"],
        "output_fields": {
            "container.id": "ecs0c0ffee01",
            "container.name": "billing",
            "container.label[com.amazonaws.ecs.task-arn]": ECS_TASK_ARN,
            "evt.time": 1796026800000000000,
            "fd.rip": "169.254.170.2",
            "proc.name": "curl",
        },
    }
    calls = []
    for number, (name, source, minute) in enumerate(
        [("GetCallerIdentity", "sts.amazonaws.com", 22), ("ListBuckets", "s3.amazonaws.com", 23)]
    ):
        calls.append(
            {
                "eventVersion": "1.09",
                "userIdentity": {
                    "type": "AssumedRole",
                    "principalId": f"AROAEXAMPLEECS:{ECS_TASK}",
                    "arn": ECS_SESSION,
                    "accountId": "210987654321",
                    "accessKeyId": "ASIAEXAMPLEECS000001",
                    "sessionContext": {
                        "sessionIssuer": {
                            "type": "Role",
                            "principalId": "AROAEXAMPLEECS",
                            "arn": "arn:aws:iam::210987654321:role/billing-task-role",
                            "accountId": "210987654321",
                            "userName": "billing-task-role",
                        },
                        "attributes": {
                            "creationDate": "2026-11-30T08:00:00Z",
                            "mfaAuthenticated": "false",
                        },
                    },
                },
                "eventTime": f"2026-11-30T08:{minute}:00Z",
                "eventSource": source,
                "eventName": name,
                "awsRegion": "us-west-2",
                "sourceIPAddress": "198.51.100.99",
                "userAgent": "aws-cli/2.15.0",
                "requestParameters": None,
                "responseElements": None,
                "requestID": f"ecs-request-{number}",
                "eventID": f"5c0ffee0-0000-4000-8000-0000000ec5{number}0",
                "readOnly": True,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": "210987654321",
            }
        )
    return [(Source.FALCO, alert)] + [(Source.CLOUDTRAIL, call) for call in calls]


def test_ecs_task_role_off_host_chain() -> None:
    events = load_events(SAMPLE)
    host = next(
        event.workload.host
        for event in events
        if event.source is Source.FALCO and event.workload and event.workload.host
    )
    context = NormalizeContext()
    for event in events:
        context.learn(event)
    extra = [
        event
        for source, record in ecs_records(host)
        for event in normalize_record(source, record, context)
    ]

    chains = [
        alert
        for alert in latest_chains(correlate(events + extra)).values()
        if alert.kind is AlertKind.PIVOT_CHAIN
    ]
    ecs = [alert for alert in chains if ECS_SESSION in alert.identities]

    assert len(ecs) == 1
    assert ecs[0].entry.container_id == "ecs0c0ffee01"
    assert ecs[0].entry.pod is None
    assert "5c0ffee0-0000-4000-8000-0000000ec500" in {item.event_id for item in ecs[0].evidence}
