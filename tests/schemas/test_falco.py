from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, EventKind, Source, Workload
from pivotwatch.schemas.framing import split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.schemas.sources.falco import alert_id
from tests.schemas.conftest import fixture_bytes, load_fixture


def normalize_one(record: dict[str, Any], context: NormalizeContext | None = None) -> Event:
    events = normalize_record(Source.FALCO, record, context or NormalizeContext())
    assert len(events) == 1
    return events[0]


def alerts_without_uuid() -> list[dict[str, Any]]:
    return split_message(Source.FALCO, fixture_bytes("falco/alerts-no-uuid.jsonl")).records


def test_falco_event_fields() -> None:
    event = normalize_one(load_fixture("falco/alert-kubernetes.json"))

    assert event.source is Source.FALCO
    assert event.kind is EventKind.RUNTIME_ALERT
    assert event.event_id == "7b0c4f7e-2d55-4b1e-9f0b-6f3c2a1d9e80"
    assert event.time == datetime(2025, 3, 4, 10, 20, 11, 500000, tzinfo=UTC)
    assert event.action == "Contact EC2 Instance Metadata Service From Container"
    assert event.service == "syscall"
    assert event.priority == "Critical"
    assert event.tags == ("T1552.005", "aws", "container", "mitre_credential_access", "network")
    assert event.source_ip is None


def test_falco_workload_from_dotted_keys() -> None:
    event = normalize_one(load_fixture("falco/alert-kubernetes.json"))

    assert event.workload == Workload(
        cluster="web-prod",
        namespace="web",
        pod="frontend-6d5f7c9b8-abcde",
        container_id="a1b2c3d4e5f6",
        container_name="frontend",
        image="registry.example.com/web/frontend:1.4.2",
        host="ip-10-1-2-3.ec2.internal",
    )


def test_falco_null_values_are_unknown() -> None:
    event = normalize_one(alerts_without_uuid()[2])

    assert event.workload == Workload(container_name="host", host="worker-7")


def test_falco_na_marker_unknown() -> None:
    record = load_fixture("falco/alert-kubernetes.json")
    record["output_fields"]["k8s.ns.name"] = "<NA>"

    event = normalize_one(record)

    assert event.workload is not None
    assert event.workload.namespace is None


def test_falco_evt_time_nanoseconds() -> None:
    event = normalize_one(alerts_without_uuid()[2])

    assert event.time == datetime(2025, 3, 4, 10, 16, 40, tzinfo=UTC)


def test_falco_empty_tags() -> None:
    assert normalize_one(alerts_without_uuid()[2]).tags == ()


def test_falco_hash_id_without_uuid() -> None:
    event = normalize_one(alerts_without_uuid()[0])

    assert event.event_id.startswith("falco-")
    assert len(event.event_id) == len("falco-") + 64


def test_falco_hash_id_repeated_alert() -> None:
    first, second, _ = alerts_without_uuid()

    assert alert_id(first) == alert_id(second)


def test_falco_hash_id_ignores_key_order() -> None:
    record = alerts_without_uuid()[0]
    reordered = dict(reversed(list(record.items())))

    assert orjson.dumps(reordered) != orjson.dumps(record)
    assert alert_id(reordered) == alert_id(record)


def test_falco_hash_id_other_alert() -> None:
    first, _, third = alerts_without_uuid()

    assert alert_id(first) != alert_id(third)


KEYS: list[tuple[str, dict[str, Any], str, str | None]] = [
    (
        "cluster mapping",
        {"cluster_accounts": {"web-prod": "111122223333"}, "default_account": "999999999999"},
        "111122223333",
        "111122223333",
    ),
    (
        "host mapping in settings",
        {"cluster_accounts": {"ip-10-1-2-3.ec2.internal": "222233334444"}},
        "222233334444",
        "222233334444",
    ),
    (
        "host learned from inventory",
        {"host_accounts": {"ip-10-1-2-3.ec2.internal": "333344445555"}},
        "333344445555",
        "333344445555",
    ),
    ("default account", {"default_account": "999999999999"}, "999999999999", "999999999999"),
    ("nothing known", {}, "unknown", None),
]


@pytest.mark.parametrize(
    ("settings", "key", "account"),
    [(settings, key, account) for _, settings, key, account in KEYS],
    ids=[name for name, _, _, _ in KEYS],
)
def test_falco_key_resolution(settings: dict[str, Any], key: str, account: str | None) -> None:
    event = normalize_one(load_fixture("falco/alert-kubernetes.json"), NormalizeContext(**settings))

    assert event.key == key
    assert event.account == account


def test_falco_host_container_id() -> None:
    event = normalize_one(alerts_without_uuid()[2])

    assert event.workload is not None
    assert event.workload.container_id is None


def test_falco_image_without_tag() -> None:
    record = load_fixture("falco/alert-kubernetes.json")
    del record["output_fields"]["container.image.tag"]

    event = normalize_one(record)

    assert event.workload is not None
    assert event.workload.image == "registry.example.com/web/frontend"


BROKEN: list[tuple[str, str, Any, list[str]]] = [
    ("rule missing", "rule", None, ["no action", "rule"]),
    ("rule a number", "rule", 5, ["rule", "5"]),
    ("tags a string", "tags", "T1059", ["tags", "'T1059'"]),
    ("time garbage", "time", "now", ["time", "'now'"]),
]


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [(key, value, fragments) for _, key, value, fragments in BROKEN],
    ids=[name for name, _, _, _ in BROKEN],
)
def test_falco_broken_alert_rejected(key: str, value: Any, fragments: list[str]) -> None:
    record = load_fixture("falco/alert-kubernetes.json")
    if value is None:
        del record[key]
    else:
        record[key] = value

    with pytest.raises(MappingError) as caught:
        normalize_record(Source.FALCO, record, NormalizeContext())

    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.event_id == "7b0c4f7e-2d55-4b1e-9f0b-6f3c2a1d9e80"


def test_falco_no_time_at_all() -> None:
    record = load_fixture("falco/alert-kubernetes.json")
    del record["time"]
    del record["output_fields"]["evt.time"]

    with pytest.raises(MappingError, match=r"no time: expected a value at time or output_fields"):
        normalize_record(Source.FALCO, record, NormalizeContext())
