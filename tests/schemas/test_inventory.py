from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, EventKind, Source, Workload
from pivotwatch.schemas.framing import split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from tests.schemas.conftest import fixture_bytes, load_fixture


def normalize_file(name: str, context: NormalizeContext) -> list[Event]:
    framed = split_message(Source.INVENTORY, fixture_bytes(name))
    return [
        event
        for record in framed.records
        for event in normalize_record(Source.INVENTORY, record, context)
    ]


def test_inventory_reservation_per_instance() -> None:
    events = normalize_file("inventory/ec2-describe-instances.json", NormalizeContext())

    assert [event.event_id for event in events] == [
        "inventory:aws.ec2.instance:i-0aaa1111bbbb2222c",
        "inventory:aws.ec2.instance:i-0ddd3333eeee4444f",
    ]


def test_inventory_ec2_instance_fields() -> None:
    event = normalize_file("inventory/ec2-describe-instances.json", NormalizeContext())[0]

    assert event.source is Source.INVENTORY
    assert event.kind is EventKind.ASSET
    assert event.action == "aws.ec2.instance"
    assert event.time == datetime(2025, 2, 1, 8, 0, tzinfo=UTC)
    assert event.account == "111122223333"
    assert event.key == "111122223333"
    assert event.region == "us-east-1"
    assert event.workload == Workload(host="ip-10-1-2-3.ec2.internal")
    assert event.raw["InstanceId"] == "i-0aaa1111bbbb2222c"


def test_inventory_stopped_instance() -> None:
    event = normalize_file("inventory/ec2-describe-instances.json", NormalizeContext())[1]

    assert event.workload == Workload(host="i-0ddd3333eeee4444f")
    assert event.region == "us-west-2"
    assert event.account == "111122223333"


def test_inventory_bare_instance_account() -> None:
    event = normalize_file("inventory/ec2-instance-bare.json", NormalizeContext())[0]

    assert event.account == "444455556666"
    assert event.time == datetime(2025, 2, 2, 9, 30, tzinfo=UTC)
    assert event.region == "eu-west-1"


def test_inventory_gce_instance_fields() -> None:
    event = normalize_file("inventory/gce-instances.json", NormalizeContext())[0]

    assert event.event_id == "inventory:gcp.compute.instance:5550001112223334445"
    assert event.action == "gcp.compute.instance"
    assert event.account == "demo-project-1234"
    assert event.region == "europe-west1"
    assert event.time == datetime(2025, 2, 3, 14, 14, 52, 318000, tzinfo=UTC)
    assert event.workload == Workload(cluster="demo", host="gke-demo-default-pool-1a2b3c4d-xyz1")


def test_inventory_learns_ec2_hosts() -> None:
    context = NormalizeContext()

    normalize_file("inventory/ec2-describe-instances.json", context)

    for name in (
        "i-0aaa1111bbbb2222c",
        "ip-10-1-2-3.ec2.internal",
        "ip-10-1-2-3",
        "10.1.2.3",
        "10.1.2.44",
        "198.51.100.20",
        "ec2-198-51-100-20.compute-1.amazonaws.com",
        "2001:db8:1::10",
        "i-0ddd3333eeee4444f",
    ):
        assert context.host_accounts.get(name) == "111122223333", name


def test_inventory_learns_gce_hosts() -> None:
    context = NormalizeContext()

    normalize_file("inventory/gce-instances.json", context)

    assert context.host_accounts == {
        "gke-demo-default-pool-1a2b3c4d-xyz1": "demo-project-1234",
        "5550001112223334445": "demo-project-1234",
        "10.128.0.7": "demo-project-1234",
        "203.0.113.7": "demo-project-1234",
    }


def test_inventory_pod_account_from_node() -> None:
    context = NormalizeContext()
    normalize_file("inventory/ec2-describe-instances.json", context)

    pod = normalize_file("inventory/kubectl-pods-serviceaccounts.json", context)[0]

    assert pod.key == "111122223333"
    assert pod.workload == Workload(
        namespace="web",
        pod="frontend-6d5f7c9b8-abcde",
        container_name="frontend",
        image="registry.example.com/web/frontend:1.4.2",
        host="ip-10-1-2-3.ec2.internal",
    )


def test_inventory_pod_account_from_irsa() -> None:
    pod = normalize_file("inventory/kubectl-pods-serviceaccounts.json", NormalizeContext())[1]

    assert pod.account == "777788889999"
    assert pod.workload is not None
    assert pod.workload.image is None


def test_inventory_pod_without_account() -> None:
    pod = normalize_file("inventory/kubectl-pods-serviceaccounts.json", NormalizeContext())[0]

    assert pod.key == "unknown"
    assert pod.account is None


def test_inventory_pod_account_from_default() -> None:
    context = NormalizeContext(default_account="123456789012")

    pod = normalize_file("inventory/kubectl-pods-serviceaccounts.json", context)[0]

    assert pod.key == "123456789012"


def test_inventory_serviceaccount_irsa() -> None:
    events = normalize_file("inventory/kubectl-pods-serviceaccounts.json", NormalizeContext())

    assert events[2].action == "k8s.serviceaccount"
    assert events[2].event_id == "inventory:k8s.serviceaccount:0b7e7c38-1111-4a2b-9c3d-000000000003"
    assert events[2].account == "777788889999"
    assert events[2].workload == Workload(namespace="payments")


def test_inventory_serviceaccount_workload_identity() -> None:
    events = normalize_file("inventory/kubectl-pods-serviceaccounts.json", NormalizeContext())

    assert events[3].account == "demo-project-1234"


def test_inventory_kubernetes_id_without_uid() -> None:
    record = {
        "kind": "ServiceAccount",
        "metadata": {"name": "x", "namespace": "ns", "creationTimestamp": "2025-01-01T00:00:00Z"},
    }

    event = normalize_record(Source.INVENTORY, record, NormalizeContext())[0]

    assert event.event_id == "inventory:k8s.serviceaccount:ns/x"


def test_inventory_learn_ignores_non_instances() -> None:
    context = NormalizeContext()

    normalize_file("inventory/kubectl-pods-serviceaccounts.json", context)

    assert context.host_accounts == {}


def test_inventory_learn_ignores_unknown_account() -> None:
    context = NormalizeContext()
    record = load_fixture("inventory/ec2-instance-bare.json")
    del record["IamInstanceProfile"]

    normalize_record(Source.INVENTORY, record, context)

    assert context.host_accounts == {}


def test_inventory_learn_counts_changes() -> None:
    context = NormalizeContext()
    event = normalize_file("inventory/gce-instances.json", NormalizeContext())[0]

    assert context.learn(event) == 4
    assert context.learn(event) == 0


def test_inventory_empty_reservation() -> None:
    record = {"OwnerId": "111122223333", "Instances": []}

    assert normalize_record(Source.INVENTORY, record, NormalizeContext()) == []


BROKEN: list[tuple[str, dict[str, Any], list[str]]] = [
    ("deployment", {"apiVersion": "apps/v1", "kind": "Deployment"}, ["'Deployment'", "Pod"]),
    ("unrelated object", {"hello": 1}, ["['hello']", "not a supported asset"]),
    (
        "instance without launch time",
        {"InstanceId": "i-1"},
        ["inventory:aws.ec2.instance:i-1", "LaunchTime"],
    ),
    ("instance id a number", {"InstanceId": 5}, ["InstanceId", "5"]),
    ("reservation with a string", {"Instances": ["i-1"]}, ["Instances[0]", "str"]),
    (
        "gce instance without name",
        {"kind": "compute#instance", "id": "1"},
        ["GCE instance", "name"],
    ),
    (
        "pod with bad creation time",
        {"kind": "Pod", "metadata": {"uid": "u-1", "creationTimestamp": "then"}},
        ["creationTimestamp", "'then'"],
    ),
]


@pytest.mark.parametrize(
    ("record", "fragments"),
    [(record, fragments) for _, record, fragments in BROKEN],
    ids=[name for name, _, _ in BROKEN],
)
def test_inventory_broken_record_rejected(record: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(MappingError) as caught:
        normalize_record(Source.INVENTORY, record, NormalizeContext())

    for fragment in fragments:
        assert fragment in str(caught.value)
