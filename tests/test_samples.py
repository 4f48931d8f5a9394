"""Checks of the incidents bundled in ``pivotwatch/samples``, which ``pivotwatch demo`` replays.

The files are written by hand in the sources' formats, so nothing else checks them. These
tests check that each file parses in its format and that ids are unique. They check that
names and ids agree across the sources and that the README timeline names existing events.
They also check that every address is a documentation or private address, and that every
record normalizes with the account resolved.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from pivotwatch.schemas.event import Event, Source
from pivotwatch.schemas.framing import split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record

SAMPLES = Path(str(importlib.resources.files("pivotwatch") / "samples"))
INCIDENTS = sorted(path.name for path in SAMPLES.iterdir() if (path / "README.md").is_file())

CLOUDTRAIL_FILE_NAME = re.compile(
    r"^(?P<account>\d{12})_CloudTrail_(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)_"
    r"(?P<stamp>\d{8}T\d{4}Z)_(?P<suffix>[A-Za-z0-9]{16})\.json$"
)
CLOUDTRAIL_DELIVERY_MINUTES = 5
CLOUDTRAIL_REQUIRED_KEYS = (
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "requestParameters",
    "responseElements",
    "eventID",
    "readOnly",
    "eventType",
    "managementEvent",
    "recipientAccountId",
    "eventCategory",
)
FALCO_REQUIRED_KEYS = (
    "uuid",
    "output",
    "priority",
    "rule",
    "time",
    "output_fields",
    "source",
    "tags",
    "hostname",
)
FALCO_REQUIRED_FIELDS = (
    "container.id",
    "container.image.repository",
    "k8s.ns.name",
    "k8s.pod.name",
    "evt.time",
)
FALCO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ASSUMED_ROLE_ARN = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]+)$")
TIMELINE_ROW = re.compile(r"^\|\s*(\d{2}:\d{2}:\d{2})\s*\|\s*(\w+)\s*\|.*\|\s*`([^`]+)`\s*\|\s*$")
MAX_INCIDENT_SPAN = timedelta(hours=12)

DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


@dataclass(frozen=True)
class Incident:
    """The parsed files of one sample incident folder."""

    folder: Path
    cloudtrail: dict[str, list[dict[str, Any]]]
    falco: list[dict[str, Any]]
    reservations: list[dict[str, Any]]
    pods: list[dict[str, Any]]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for records in self.cloudtrail.values() for record in records]

    @property
    def instances(self) -> list[dict[str, Any]]:
        return [
            instance for reservation in self.reservations for instance in reservation["Instances"]
        ]

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        for pod in self.pods:
            if pod["metadata"]["namespace"] == namespace and pod["metadata"]["name"] == name:
                return pod
        return None


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_json_lines(path: Path) -> list[Any]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@cache
def load_incident(name: str) -> Incident:
    folder = SAMPLES / name
    cloudtrail = {
        path.name: read_json(path)["Records"]
        for path in sorted((folder / "cloudtrail").glob("*.json"))
    }
    return Incident(
        folder=folder,
        cloudtrail=cloudtrail,
        falco=read_json_lines(folder / "falco.jsonl"),
        reservations=read_json(folder / "inventory" / "ec2-describe-instances.json")[
            "Reservations"
        ],
        pods=read_json(folder / "inventory" / "kubectl-pods.json")["items"],
    )


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def falco_time_ns(text: str) -> int:
    """Return integer nanoseconds since the epoch of a Falco ``time`` with 9 fractional digits."""
    seconds, fraction = text.removesuffix("Z").split(".")
    whole = datetime.fromisoformat(seconds).replace(tzinfo=UTC)
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction)


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def timeline_rows(folder: Path) -> list[tuple[str, str, str]]:
    """Return (time, source, id) of each row of the README's timeline table."""
    rows = []
    for line in (folder / "README.md").read_text(encoding="utf-8").splitlines():
        match = TIMELINE_ROW.match(line)
        if match is not None:
            rows.append((match.group(1), match.group(2), match.group(3)))
    return rows


@pytest.fixture(params=INCIDENTS)
def incident(request: pytest.FixtureRequest) -> Incident:
    return load_incident(request.param)


# Package layout.


def test_samples_demo_incident_present() -> None:
    assert "eks-imds-pivot" in INCIDENTS


def test_samples_folder_has_every_source(incident: Incident) -> None:
    assert incident.cloudtrail, f"{incident.folder} has no cloudtrail/*.json file"
    assert incident.falco, f"{incident.folder} has an empty falco.jsonl"
    assert incident.reservations, f"{incident.folder} lists no EC2 reservation"
    assert incident.pods, f"{incident.folder} lists no pod"


def test_samples_every_file_is_json(incident: Incident) -> None:
    for path in sorted(incident.folder.rglob("*.json")):
        read_json(path)
    for path in sorted(incident.folder.rglob("*.jsonl")):
        read_json_lines(path)


# CloudTrail files.


def test_samples_cloudtrail_file_names(incident: Incident) -> None:
    for name in incident.cloudtrail:
        assert CLOUDTRAIL_FILE_NAME.match(name), (
            f"{name} is not <account>_CloudTrail_<region>_<time>_<id>.json"
        )


def test_samples_cloudtrail_record_keys(incident: Incident) -> None:
    for name, records in incident.cloudtrail.items():
        assert records, f"{name} has an empty Records list"
        for record in records:
            missing = [key for key in CLOUDTRAIL_REQUIRED_KEYS if key not in record]
            assert not missing, f"{name}: record {record.get('eventID')} lacks {missing}"


def test_samples_cloudtrail_records_match_file(incident: Incident) -> None:
    for name, records in incident.cloudtrail.items():
        match = CLOUDTRAIL_FILE_NAME.match(name)
        assert match is not None
        stamp = datetime.strptime(match["stamp"], "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        window_start = stamp - timedelta(minutes=CLOUDTRAIL_DELIVERY_MINUTES)
        for record in records:
            event_id = record["eventID"]
            assert record["recipientAccountId"] == match["account"], f"{name}: {event_id} account"
            assert record["awsRegion"] == match["region"], f"{name}: {event_id} region"
            assert window_start <= parse_utc(record["eventTime"]) < stamp, (
                f"{name}: {event_id} time"
            )


def test_samples_cloudtrail_event_ids_unique(incident: Incident) -> None:
    counts = Counter(record["eventID"] for record in incident.records)

    assert [event_id for event_id, count in counts.items() if count > 1] == []
    assert all(UUID.match(event_id) for event_id in counts)


def test_samples_cloudtrail_request_ids_unique(incident: Incident) -> None:
    counts = Counter(record["requestID"] for record in incident.records if "requestID" in record)

    assert [request_id for request_id, count in counts.items() if count > 1] == []


def test_samples_cloudtrail_data_events(incident: Incident) -> None:
    data_events = [record for record in incident.records if record["eventCategory"] == "Data"]

    assert data_events, "no S3 data event: GetObject and ListObjects are data events"
    for record in data_events:
        event_id = record["eventID"]
        assert record["managementEvent"] is False, event_id
        assert record.get("resources"), f"{event_id} has no resources"
        assert record.get("additionalEventData"), f"{event_id} has no additionalEventData"


def test_samples_instance_sessions_name_instances(incident: Incident) -> None:
    instance_ids = {instance["InstanceId"] for instance in incident.instances}
    for record in incident.records:
        identity = record["userIdentity"]
        delivery = identity.get("sessionContext", {}).get("ec2RoleDelivery")
        if delivery is None:
            continue
        match = ASSUMED_ROLE_ARN.match(identity["arn"])
        assert match is not None, (
            f"{record['eventID']}: {identity['arn']} is not an assumed-role ARN"
        )
        assert match.group(3) in instance_ids, (
            f"{record['eventID']}: session {match.group(3)} is no instance"
        )
        issuer = identity["sessionContext"]["sessionIssuer"]
        assert issuer["userName"] == match.group(2), record["eventID"]


def test_samples_imdsv2_sessions_from_own_address(incident: Incident) -> None:
    public = {
        instance["InstanceId"]: instance["PublicIpAddress"] for instance in incident.instances
    }
    for record in incident.records:
        context = record["userIdentity"].get("sessionContext", {})
        if context.get("ec2RoleDelivery") != "2.0":
            continue
        instance_id = record["userIdentity"]["arn"].rsplit("/", 1)[1]
        assert record["sourceIPAddress"] == public[instance_id], record["eventID"]


def test_samples_imdsv1_sessions_off_host(incident: Incident) -> None:
    own_addresses = {
        address
        for instance in incident.instances
        for address in (instance["PrivateIpAddress"], instance["PublicIpAddress"])
    }
    stolen = [
        record
        for record in incident.records
        if record["userIdentity"].get("sessionContext", {}).get("ec2RoleDelivery") == "1.0"
    ]

    assert stolen, "no record with ec2RoleDelivery 1.0: the demo needs the stolen session"
    for record in stolen:
        assert record["sourceIPAddress"] not in own_addresses, record["eventID"]


# Falco alerts.


def test_samples_falco_alert_keys(incident: Incident) -> None:
    for alert in incident.falco:
        missing = [key for key in FALCO_REQUIRED_KEYS if key not in alert]
        assert not missing, f"alert {alert.get('uuid')} lacks {missing}"
        missing_fields = [key for key in FALCO_REQUIRED_FIELDS if key not in alert["output_fields"]]
        assert not missing_fields, f"alert {alert['uuid']} lacks output_fields {missing_fields}"


def test_samples_falco_times_agree(incident: Incident) -> None:
    for alert in incident.falco:
        uuid = alert["uuid"]
        assert FALCO_TIME.match(alert["time"]), (
            f"{uuid}: time {alert['time']!r} needs 9 fractional digits"
        )
        assert alert["output_fields"]["evt.time"] == falco_time_ns(alert["time"]), uuid
        clock = alert["time"][11:-1]
        assert alert["output"].startswith(f"{clock}: {alert['priority']} "), uuid


def test_samples_falco_uuids_unique(incident: Incident) -> None:
    counts = Counter(alert["uuid"] for alert in incident.falco)

    assert [uuid for uuid, count in counts.items() if count > 1] == []
    assert all(UUID.match(uuid) for uuid in counts)


def test_samples_falco_hostname_is_instance(incident: Incident) -> None:
    dns_names = {instance["PrivateDnsName"] for instance in incident.instances}
    for alert in incident.falco:
        assert alert["hostname"] in dns_names, (
            f"{alert['uuid']}: {alert['hostname']} is no PrivateDnsName"
        )


def test_samples_falco_pod_on_hostname(incident: Incident) -> None:
    for alert in incident.falco:
        fields = alert["output_fields"]
        pod = incident.pod(fields["k8s.ns.name"], fields["k8s.pod.name"])
        assert pod is not None, (
            f"{alert['uuid']}: pod {fields['k8s.ns.name']}/{fields['k8s.pod.name']} not listed"
        )
        assert pod["spec"]["nodeName"] == alert["hostname"], alert["uuid"]


def test_samples_falco_container_in_pod(incident: Incident) -> None:
    for alert in incident.falco:
        fields = alert["output_fields"]
        pod = incident.pod(fields["k8s.ns.name"], fields["k8s.pod.name"])
        assert pod is not None
        statuses = {
            status["containerID"].split("://", 1)[1][:12]: status
            for status in pod["status"]["containerStatuses"]
        }
        status = statuses.get(fields["container.id"])
        assert status is not None, (
            f"{alert['uuid']}: container {fields['container.id']} not in its pod"
        )
        assert status["image"].startswith(fields["container.image.repository"] + ":"), alert["uuid"]


# Inventory.


def test_samples_reservations_shape(incident: Incident) -> None:
    for reservation in incident.reservations:
        assert re.fullmatch(r"\d{12}", reservation["OwnerId"]), reservation["ReservationId"]
        for instance in reservation["Instances"]:
            for key in (
                "InstanceId",
                "PrivateDnsName",
                "PrivateIpAddress",
                "PublicIpAddress",
                "IamInstanceProfile",
            ):
                assert key in instance, f"{instance.get('InstanceId')} lacks {key}"
            assert instance["NetworkInterfaces"], instance["InstanceId"]
            tokens = instance["MetadataOptions"]["HttpTokens"]
            assert tokens in ("optional", "required"), instance["InstanceId"]


def test_samples_instance_ids_unique(incident: Incident) -> None:
    counts = Counter(instance["InstanceId"] for instance in incident.instances)
    dns_counts = Counter(instance["PrivateDnsName"] for instance in incident.instances)

    assert [value for value, count in counts.items() if count > 1] == []
    assert [value for value, count in dns_counts.items() if count > 1] == []


def test_samples_pods_shape(incident: Incident) -> None:
    dns_names = {instance["PrivateDnsName"] for instance in incident.instances}
    for pod in incident.pods:
        name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        assert pod["kind"] == "Pod", name
        assert pod["spec"]["nodeName"] in dns_names, f"{name} runs on an unlisted node"
        assert pod["spec"]["serviceAccountName"], name
        assert pod["spec"]["containers"], name
        assert pod["status"]["podIP"], name


def test_samples_pod_ids_unique(incident: Incident) -> None:
    uids = Counter(pod["metadata"]["uid"] for pod in incident.pods)
    names = Counter(
        (pod["metadata"]["namespace"], pod["metadata"]["name"]) for pod in incident.pods
    )
    containers = Counter(
        status["containerID"]
        for pod in incident.pods
        for status in pod["status"]["containerStatuses"]
    )

    assert [uid for uid, count in uids.items() if count > 1] == []
    assert [name for name, count in names.items() if count > 1] == []
    assert [value for value, count in containers.items() if count > 1] == []


# Across sources.


def test_samples_addresses_documentation_or_private(incident: Incident) -> None:
    """Public addresses must come from RFC 5737 so that no real host appears in the samples."""
    addresses = [record["sourceIPAddress"] for record in incident.records]
    addresses += [alert["output_fields"].get("fd.rip", "") for alert in incident.falco]
    addresses += [instance["PublicIpAddress"] for instance in incident.instances]
    for text in filter(is_address, addresses):
        address = ipaddress.ip_address(text)
        documented = any(address in network for network in DOCUMENTATION_NETWORKS)
        assert documented or address.is_private or address.is_link_local, text


def test_samples_one_account(incident: Incident) -> None:
    accounts = {record["recipientAccountId"] for record in incident.records}
    accounts |= {reservation["OwnerId"] for reservation in incident.reservations}

    assert len(accounts) == 1, accounts


def test_samples_times_one_incident(incident: Incident) -> None:
    times = [parse_utc(record["eventTime"]) for record in incident.records]
    times += [parse_utc(alert["time"][:19] + "Z") for alert in incident.falco]

    assert max(times) - min(times) <= MAX_INCIDENT_SPAN


def test_samples_timeline_ids_exist(incident: Incident) -> None:
    ids_by_source = {
        "cloudtrail": {record["eventID"] for record in incident.records},
        "falco": {alert["uuid"] for alert in incident.falco},
    }
    rows = timeline_rows(incident.folder)

    assert rows, f"{incident.folder}/README.md has no timeline table"
    for clock, source, event_id in rows:
        assert source in ids_by_source, f"timeline row {clock}: unknown source {source!r}"
        assert event_id in ids_by_source[source], (
            f"timeline row {clock}: {source} id {event_id} not found"
        )


def test_samples_timeline_times_match(incident: Incident) -> None:
    times = {record["eventID"]: record["eventTime"][11:19] for record in incident.records}
    times |= {alert["uuid"]: alert["time"][11:19] for alert in incident.falco}
    for clock, _source, event_id in timeline_rows(incident.folder):
        assert times.get(event_id) == clock, (
            f"timeline row {clock}: {event_id} is at {times.get(event_id)}"
        )


# Normalization.


def normalize_folder(folder: Path) -> list[Event]:
    """Frame and normalize every record of a folder, the inventory first as the replay does."""
    context = NormalizeContext()
    inputs = [(Source.INVENTORY, path) for path in sorted((folder / "inventory").glob("*.json"))]
    inputs += [(Source.CLOUDTRAIL, path) for path in sorted((folder / "cloudtrail").glob("*.json"))]
    inputs.append((Source.FALCO, folder / "falco.jsonl"))

    events: list[Event] = []
    for source, path in inputs:
        framed = split_message(source, path.read_bytes())
        assert framed.skipped == [], f"{path.name}: {framed.skipped}"
        for record in framed.records:
            events.extend(normalize_record(source, record, context))
    return events


def test_samples_every_record_normalizes(incident: Incident) -> None:
    events = normalize_folder(incident.folder)
    counts = Counter(event.source for event in events)

    assert counts[Source.CLOUDTRAIL] == len(incident.records)
    assert counts[Source.FALCO] == len(incident.falco)
    assert counts[Source.INVENTORY] == len(incident.instances) + len(incident.pods)


def test_samples_runtime_records_get_account(incident: Incident) -> None:
    account = incident.reservations[0]["OwnerId"]
    for event in normalize_folder(incident.folder):
        assert event.key == account, f"{event.source} {event.event_id} has key {event.key}"
