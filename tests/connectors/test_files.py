"""Replay readers: every file layout, source guessing, message keys and bad input."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from pivotwatch.connectors.files import (
    STDIN,
    Outcome,
    Position,
    ReadItem,
    Rejected,
    SourceRecord,
    list_input_files,
    message_key,
    read_records,
)
from pivotwatch.errors import ReplayError
from pivotwatch.schemas.event import Source

# --- sample records (sanitized, shaped like the real ones) -----------------------------

CLOUDTRAIL_CALL: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/node-role/i-0a3f9c2e7b1d45e68",
        "accountId": "111122223333",
    },
    "eventTime": "2026-11-03T09:24:15Z",
    "eventSource": "sts.amazonaws.com",
    "eventName": "GetCallerIdentity",
    "sourceIPAddress": "198.51.100.23",
    "eventID": "b4cd3415-1091-4ee0-a29b-00bdc7ce181e",
    "recipientAccountId": "444455556666",
}

CLOUDTRAIL_NO_RECIPIENT: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "IAMUser", "accountId": "111122223333"},
    "eventTime": "2026-11-03T09:24:49Z",
    "eventSource": "s3.amazonaws.com",
    "eventName": "ListBuckets",
    "eventID": "5e500a9b-6f32-48e3-9107-0953aaa80beb",
}

CLOUDTRAIL_DIGEST: dict[str, Any] = {
    "awsAccountId": "111122223333",
    "digestStartTime": "2026-11-03T08:00:00Z",
    "digestEndTime": "2026-11-03T09:00:00Z",
    "digestS3Bucket": "org-trail-bucket",
    "digestS3Object": "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/digest.json.gz",
    "digestPublicKeyFingerprint": "0d4b6e5c7a8f9e0d1c2b3a4f5e6d7c8b",
    "digestSignatureAlgorithm": "SHA256withRSA",
    "logFiles": [],
}

GCP_ENTRY: dict[str, Any] = {
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "node-sa@acme-prod.iam.gserviceaccount.com"},
        "serviceName": "storage.googleapis.com",
        "methodName": "storage.buckets.list",
    },
    "insertId": "1bbryf0fams3hh",
    "resource": {"type": "gcs_bucket", "labels": {"project_id": "acme-prod-314159"}},
    "timestamp": "2026-11-12T14:21:07.242030762Z",
    "logName": "projects/acme-prod-314159/logs/cloudaudit.googleapis.com%2Fdata_access",
}

GCP_ENTRY_NO_LABELS: dict[str, Any] = {
    "protoPayload": {"methodName": "google.iam.admin.v1.CreateServiceAccountKey"},
    "insertId": "x7k2m1e9a3bq",
    "resource": {"type": "service_account"},
    "timestamp": "2026-11-12T14:25:00Z",
    "logName": "projects/acme-dev-271828/logs/cloudaudit.googleapis.com%2Factivity",
}

FALCO_LINE_HOST = (
    b'{"uuid":"3056e820-a79d-451f-8add-a23aa875c913","output":"09:21:58: Warning Contact EC2 '
    b'Instance Metadata Service From Container","priority":"Warning","rule":"Contact EC2 Instance'
    b' Metadata Service From Container","time":"2026-11-03T09:21:58.123456789Z",'
    b'"output_fields":{"k8s.pod.name":"frontend-7d9f8c6b54-x2lqp","fd.sip":"169.254.169.254"},'
    b'"source":"syscall","tags":["T1552.005"],"hostname":"ip-10-0-34-112.ec2.internal"}'
)

# Spaces after the separators prove that the line is sent as it is, not re-serialized.
FALCO_LINE_CLUSTER = (
    b'{"uuid": "0e0c280d-1a89-423d-b0a5-82c2b4100d53", "output": "reverse shell", '
    b'"priority": "Critical", "rule": "Redirect STDOUT/STDIN to Network Connection in '
    b'Container", "time": "2026-11-03T09:20:41Z", "output_fields": {"k8s.cluster.name": '
    b'"shop-prod", "k8s.ns.name": "shop"}, "hostname": "ip-10-0-34-112.ec2.internal"}'
)

EC2_DESCRIBE_INSTANCES: dict[str, Any] = {
    "Reservations": [
        {
            "Groups": [],
            "Instances": [
                {
                    "InstanceId": "i-0a3f9c2e7b1d45e68",
                    "ImageId": "ami-0c4f2a9d7e31b5a68",
                    "LaunchTime": "2026-10-29T06:41:17+00:00",
                    "PrivateDnsName": "ip-10-0-34-112.ec2.internal",
                    "PrivateIpAddress": "10.0.34.112",
                    "PublicIpAddress": "203.0.113.24",
                }
            ],
            "OwnerId": "111122223333",
            "ReservationId": "r-0d1e2f3a4b5c6d7e8",
        },
        {
            "Groups": [],
            "Instances": [
                {
                    "InstanceId": "i-0c71e5d94a2b8f360",
                    "ImageId": "ami-0c4f2a9d7e31b5a68",
                    "LaunchTime": "2026-10-29T06:41:19+00:00",
                    "PrivateDnsName": "ip-10-0-71-45.ec2.internal",
                }
            ],
            "OwnerId": "111122223333",
            "ReservationId": "r-0f9e8d7c6b5a4f3e2",
        },
    ]
}

GCE_INSTANCES: list[dict[str, Any]] = [
    {
        "kind": "compute#instance",
        "id": "4816093357241150977",
        "name": "gke-analytics-prod-default-pool-7c1e4b2a-k3vd",
        "selfLink": "https://www.googleapis.com/compute/v1/projects/acme-prod-314159/zones/"
        "us-central1-a/instances/gke-analytics-prod-default-pool-7c1e4b2a-k3vd",
        "zone": "https://www.googleapis.com/compute/v1/projects/acme-prod-314159/zones/us-central1-a",
    },
    {
        "kind": "compute#instance",
        "id": "4816093357241150978",
        "name": "ci-runner-1",
        "zone": "https://www.googleapis.com/compute/v1/projects/acme-ci-161803/zones/us-east1-b",
    },
]

KUBECTL_LIST: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "frontend-7d9f8c6b54-x2lqp", "namespace": "shop"},
            "spec": {"nodeName": "ip-10-0-34-112.ec2.internal", "serviceAccountName": "frontend"},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "frontend",
                "namespace": "shop",
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/x"},
            },
        },
    ],
    "metadata": {"resourceVersion": ""},
}


# --- helpers -----------------------------------------------------------------------------


def write_json(path: Path, document: Any, indent: bool = False) -> Path:
    text = json.dumps(document, indent=2) if indent else json.dumps(document)
    path.write_text(text + "\n")
    return path


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def records_of(items: list[ReadItem]) -> list[SourceRecord]:
    return [item for item in items if isinstance(item, SourceRecord)]


def rejected_of(items: list[ReadItem]) -> list[Rejected]:
    return [item for item in items if isinstance(item, Rejected)]


# --- CloudTrail ---------------------------------------------------------------------------


def test_read_cloudtrail_records_document(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "trail.json", {"Records": [CLOUDTRAIL_CALL, CLOUDTRAIL_NO_RECIPIENT]}
    )

    items = list(read_records(path))
    records = records_of(items)

    assert len(items) == 2
    assert [record.source for record in records] == [Source.CLOUDTRAIL, Source.CLOUDTRAIL]
    assert records[0].value == orjson.dumps(CLOUDTRAIL_CALL)
    assert records[1].value == orjson.dumps(CLOUDTRAIL_NO_RECIPIENT)
    assert [record.position.index for record in records] == [0, 1]
    assert records[0].position.path == path


def test_read_cloudtrail_keys_recipient_then_identity(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "trail.json", {"Records": [CLOUDTRAIL_CALL, CLOUDTRAIL_NO_RECIPIENT]}
    )

    keys = [record.key for record in records_of(list(read_records(path)))]

    assert keys == [b"444455556666", b"111122223333"]


def test_read_cloudtrail_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "111122223333_CloudTrail_us-east-1_20261103T0925Z_x.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps({"Records": [CLOUDTRAIL_CALL]})))

    records = records_of(list(read_records(path)))

    assert len(records) == 1
    assert records[0].value == orjson.dumps(CLOUDTRAIL_CALL)


def test_read_gzip_recognised_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "trail.json"
    path.write_bytes(gzip.compress(orjson.dumps({"Records": [CLOUDTRAIL_CALL]})))

    records = records_of(list(read_records(path)))

    assert [record.source for record in records] == [Source.CLOUDTRAIL]


def test_read_truncated_gzip_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "trail.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps({"Records": [CLOUDTRAIL_CALL]}))[:-12])

    items = list(read_records(path))

    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert items[0].outcome is Outcome.INVALID
    assert "gzip" in items[0].reason


def test_read_cloudtrail_json_array(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "events.json", [CLOUDTRAIL_CALL, CLOUDTRAIL_NO_RECIPIENT], indent=True
    )

    records = records_of(list(read_records(path)))

    assert [record.value for record in records] == [
        orjson.dumps(CLOUDTRAIL_CALL),
        orjson.dumps(CLOUDTRAIL_NO_RECIPIENT),
    ]
    assert records[1].position.index == 1


def test_read_cloudtrail_object_per_line_keeps_bytes(tmp_path: Path) -> None:
    lines = [json.dumps(CLOUDTRAIL_CALL).encode(), json.dumps(CLOUDTRAIL_NO_RECIPIENT).encode()]
    path = write_lines(tmp_path / "events.json", lines)

    records = records_of(list(read_records(path)))

    assert [record.value for record in records] == lines
    assert [record.position.line for record in records] == [1, 2]
    assert [record.position.index for record in records] == [None, None]


def test_read_cloudtrail_digest_skipped(tmp_path: Path) -> None:
    path = tmp_path / "111122223333_CloudTrail-Digest_us-east-1_20261103T0900Z.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps(CLOUDTRAIL_DIGEST)))

    items = list(read_records(path))

    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert items[0].outcome is Outcome.SKIPPED_DIGEST
    assert items[0].source is Source.CLOUDTRAIL


def test_read_records_document_on_one_line(tmp_path: Path) -> None:
    # Two compact CloudTrail log files concatenated, one per line.
    lines = [
        orjson.dumps({"Records": [CLOUDTRAIL_CALL]}),
        orjson.dumps({"Records": [CLOUDTRAIL_CALL]}),
    ]
    path = write_lines(tmp_path / "concatenated.jsonl", lines)

    records = records_of(list(read_records(path)))

    assert len(records) == 2
    assert [(record.position.line, record.position.index) for record in records] == [(1, 0), (2, 0)]


# --- GCP audit ----------------------------------------------------------------------------


def test_read_gcp_lines_keep_bytes(tmp_path: Path) -> None:
    lines = [orjson.dumps(GCP_ENTRY), orjson.dumps(GCP_ENTRY_NO_LABELS)]
    path = write_lines(tmp_path / "gcp-audit.jsonl", lines)

    records = records_of(list(read_records(path)))

    assert [record.source for record in records] == [Source.GCP_AUDIT, Source.GCP_AUDIT]
    assert [record.value for record in records] == lines


def test_read_gcp_keys_label_then_log_name(tmp_path: Path) -> None:
    lines = [orjson.dumps(GCP_ENTRY), orjson.dumps(GCP_ENTRY_NO_LABELS)]
    path = write_lines(tmp_path / "gcp-audit.log", lines)

    keys = [record.key for record in records_of(list(read_records(path)))]

    assert keys == [b"acme-prod-314159", b"acme-dev-271828"]


def test_read_gcp_pretty_printed_entry(tmp_path: Path) -> None:
    path = write_json(tmp_path / "entry.json", GCP_ENTRY, indent=True)

    items = list(read_records(path))

    assert len(items) == 1
    assert isinstance(items[0], SourceRecord)
    assert items[0].source is Source.GCP_AUDIT
    assert items[0].value == orjson.dumps(GCP_ENTRY)
    assert items[0].position == Position(path)


def test_read_gcp_json_array(tmp_path: Path) -> None:
    path = write_json(tmp_path / "read.json", [GCP_ENTRY, GCP_ENTRY_NO_LABELS], indent=True)

    records = records_of(list(read_records(path)))

    assert [record.key for record in records] == [b"acme-prod-314159", b"acme-dev-271828"]


# --- Falco --------------------------------------------------------------------------------


def test_read_falco_lines_byte_for_byte(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "falco.jsonl", [FALCO_LINE_HOST, FALCO_LINE_CLUSTER])

    records = records_of(list(read_records(path)))

    assert [record.source for record in records] == [Source.FALCO, Source.FALCO]
    assert [record.value for record in records] == [FALCO_LINE_HOST, FALCO_LINE_CLUSTER]


def test_read_falco_keys_cluster_then_host(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "falco.jsonl", [FALCO_LINE_HOST, FALCO_LINE_CLUSTER])

    keys = [record.key for record in records_of(list(read_records(path)))]

    assert keys == [b"ip-10-0-34-112.ec2.internal", b"shop-prod"]


def test_read_falco_crlf_lines(tmp_path: Path) -> None:
    path = tmp_path / "falco.jsonl"
    path.write_bytes(FALCO_LINE_HOST + b"\r\n\r\n" + FALCO_LINE_CLUSTER + b"\r\n")

    records = records_of(list(read_records(path)))

    assert [record.value for record in records] == [FALCO_LINE_HOST, FALCO_LINE_CLUSTER]
    assert [record.position.line for record in records] == [1, 3]


def test_read_falco_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(FALCO_LINE_HOST + b"\nnot json\n" + FALCO_LINE_CLUSTER))
    monkeypatch.setattr(sys, "stdin", stdin)

    items = list(read_records(STDIN))
    records = records_of(items)
    rejected = rejected_of(items)

    assert [record.value for record in records] == [FALCO_LINE_HOST, FALCO_LINE_CLUSTER]
    assert [record.position.path for record in records] == [None, None]
    assert [item.position.line for item in rejected] == [2]
    assert str(rejected[0].position) == "standard input, line 2"
    assert not stdin.closed


# --- inventory ----------------------------------------------------------------------------


def test_read_describe_instances_one_per_reservation(tmp_path: Path) -> None:
    path = write_json(tmp_path / "ec2-describe-instances.json", EC2_DESCRIBE_INSTANCES, indent=True)

    records = records_of(list(read_records(path)))

    assert [record.source for record in records] == [Source.INVENTORY, Source.INVENTORY]
    assert [record.value for record in records] == [
        orjson.dumps(reservation) for reservation in EC2_DESCRIBE_INSTANCES["Reservations"]
    ]
    assert [record.key for record in records] == [b"111122223333", b"111122223333"]


def test_read_gcloud_instances_array(tmp_path: Path) -> None:
    path = write_json(tmp_path / "gce-instances.json", GCE_INSTANCES, indent=True)

    records = records_of(list(read_records(path)))

    assert [record.source for record in records] == [Source.INVENTORY, Source.INVENTORY]
    assert [record.value for record in records] == [orjson.dumps(item) for item in GCE_INSTANCES]


def test_read_gcloud_keys_self_link_then_zone(tmp_path: Path) -> None:
    path = write_json(tmp_path / "gce-instances.json", GCE_INSTANCES, indent=True)

    keys = [record.key for record in records_of(list(read_records(path)))]

    assert keys == [b"acme-prod-314159", b"acme-ci-161803"]


def test_read_kubectl_list_items_without_key(tmp_path: Path) -> None:
    path = write_json(tmp_path / "kubectl-pods.json", KUBECTL_LIST, indent=True)

    records = records_of(list(read_records(path)))

    assert [record.value for record in records] == [
        orjson.dumps(item) for item in KUBECTL_LIST["items"]
    ]
    assert [record.source for record in records] == [Source.INVENTORY, Source.INVENTORY]
    assert [record.key for record in records] == [None, None]


# --- bad and unknown input ----------------------------------------------------------------


def test_read_garbage_lines_counted_and_skipped(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "falco.jsonl",
        [FALCO_LINE_HOST, b'{"rule": "truncated', b"", b"\x00\xff binary", FALCO_LINE_CLUSTER],
    )

    items = list(read_records(path))
    rejected = rejected_of(items)

    assert [record.value for record in records_of(items)] == [FALCO_LINE_HOST, FALCO_LINE_CLUSTER]
    assert [item.outcome for item in rejected] == [Outcome.INVALID, Outcome.INVALID]
    assert [item.position.line for item in rejected] == [2, 4]
    assert rejected[0].raw == b'{"rule": "truncated'
    assert "invalid JSON" in rejected[0].reason


def test_read_garbage_first_line_then_records(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "falco.jsonl", [b"Falco 0.39.2 starting", FALCO_LINE_HOST])

    items = list(read_records(path))

    assert [record.value for record in records_of(items)] == [FALCO_LINE_HOST]
    assert [item.position.line for item in rejected_of(items)] == [1]


def test_read_broken_pretty_document_is_one_invalid(tmp_path: Path) -> None:
    text = json.dumps(EC2_DESCRIBE_INSTANCES, indent=2)
    path = tmp_path / "ec2-describe-instances.json"
    path.write_text(text[: len(text) // 2])

    items = list(read_records(path))

    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert items[0].outcome is Outcome.INVALID
    assert "invalid JSON document at line" in items[0].reason


def test_read_non_object_values_invalid(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "values.jsonl", [b"42", b'"text"', b"[1, 2]"])

    items = list(read_records(path))

    rejected = rejected_of(items)

    assert [item.outcome for item in rejected] == [Outcome.INVALID] * 4
    assert [(item.position.line, item.position.index) for item in rejected] == [
        (1, None),
        (2, None),
        (3, 0),
        (3, 1),
    ]
    assert records_of(items) == []


def test_read_unknown_record_unrecognized(tmp_path: Path) -> None:
    path = write_json(tmp_path / "expected.json", {"description": "a story", "chains": []})

    items = list(read_records(path))

    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert items[0].outcome is Outcome.UNRECOGNIZED
    assert items[0].source is None


def test_read_given_source_skips_guessing(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "odd.jsonl", [b'{"hostname": "node-1", "msg": "custom"}'])

    records = records_of(list(read_records(path, Source.FALCO)))

    assert [record.source for record in records] == [Source.FALCO]
    assert [record.key for record in records] == [b"node-1"]


def test_read_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n  \n")

    assert list(read_records(path)) == []


def test_read_empty_records_list_yields_nothing(tmp_path: Path) -> None:
    path = write_json(tmp_path / "trail.json", {"Records": []})

    assert list(read_records(path)) == []


# --- file listing -------------------------------------------------------------------------


def test_list_input_files_walks_sorted_and_filters(tmp_path: Path) -> None:
    (tmp_path / "b" / "nested").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    (tmp_path / ".git").mkdir()
    for name in (
        "b/nested/z.json.gz",
        "b/x.jsonl",
        "a/y.log",
        "a/README.md",
        "a/.hidden.json",
        ".git/config.json",
        "top.json",
        "notes.txt",
    ):
        (tmp_path / name).write_text("{}")

    files = list_input_files([tmp_path])

    assert [file.relative_to(tmp_path).as_posix() for file in files] == [
        "top.json",
        "a/y.log",
        "b/x.jsonl",
        "b/nested/z.json.gz",
    ]


def test_list_input_files_keeps_named_file_and_stdin(tmp_path: Path) -> None:
    named = tmp_path / "alerts.txt"
    named.write_text("{}")

    assert list_input_files([named, "-"]) == [named, STDIN]


def test_list_input_files_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        list_input_files([tmp_path / "absent"])


# --- keys and positions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "record", "key"),
    [
        (Source.CLOUDTRAIL, {"recipientAccountId": "1", "userIdentity": {"accountId": "2"}}, b"1"),
        (Source.CLOUDTRAIL, {"userIdentity": {"accountId": "2"}}, b"2"),
        (Source.CLOUDTRAIL, {"userIdentity": "not an object"}, None),
        (Source.GCP_AUDIT, {"logName": "organizations/123/logs/cloudaudit"}, None),
        (Source.FALCO, {"output_fields": {"k8s.cluster.name": ""}, "hostname": "h"}, b"h"),
        (Source.FALCO, {}, None),
        (Source.INVENTORY, {"OwnerId": "111122223333"}, b"111122223333"),
        (Source.INVENTORY, {"selfLink": "https://compute/v1/projects//zones/a"}, None),
        (Source.INVENTORY, {"kind": "Pod", "metadata": {"name": "p"}}, None),
    ],
)
def test_message_key_cases(source: Source, record: dict[str, Any], key: bytes | None) -> None:
    assert message_key(source, record) == key


def test_position_text_names_file_line_and_record() -> None:
    position = Position(Path("trail.jsonl"), line=3, index=2)

    assert str(position) == "trail.jsonl, line 3, record 2"


# --- the shared scenarios -----------------------------------------------------------------


@pytest.mark.shared
def test_read_scenarios_only_expected_unrecognized(shared_dir: Path) -> None:
    for scenario in sorted((shared_dir / "scenarios").iterdir()):
        if not scenario.is_dir():
            continue
        rejected = [
            item
            for file in list_input_files([scenario])
            for item in read_records(file)
            if isinstance(item, Rejected)
        ]
        names = [item.position.path.name for item in rejected if item.position.path]
        assert names == ["expected.json"], scenario.name
