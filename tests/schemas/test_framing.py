from __future__ import annotations

from typing import Any

import orjson
import pytest

from pivotwatch.errors import DecodeError
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import Framed, guess_source, split_message
from tests.schemas.conftest import fixture_bytes, load_fixture

CLOUDTRAIL_RECORD = {"eventID": "e-1", "eventName": "ListBuckets", "eventVersion": "1.08"}


def test_split_single_object() -> None:
    framed = split_message(Source.FALCO, b'{"rule": "r", "priority": "Notice", "output": "x"}')

    assert framed == Framed(
        records=[{"rule": "r", "priority": "Notice", "output": "x"}], skipped=[]
    )


def test_split_array_of_objects() -> None:
    framed = split_message(Source.GCP_AUDIT, b'[{"insertId": "a"}, {"insertId": "b"}]')

    assert [record["insertId"] for record in framed.records] == ["a", "b"]


def test_split_cloudtrail_records_file() -> None:
    value = orjson.dumps({"Records": [CLOUDTRAIL_RECORD, {**CLOUDTRAIL_RECORD, "eventID": "e-2"}]})

    framed = split_message(Source.CLOUDTRAIL, value)

    assert [record["eventID"] for record in framed.records] == ["e-1", "e-2"]
    assert framed.skipped == []


def test_split_cloudtrail_array_of_files() -> None:
    value = orjson.dumps([{"Records": [CLOUDTRAIL_RECORD]}, {"Records": [CLOUDTRAIL_RECORD]}])

    framed = split_message(Source.CLOUDTRAIL, value)

    assert len(framed.records) == 2


def test_split_cloudtrail_skips_digest_files() -> None:
    framed = split_message(Source.CLOUDTRAIL, fixture_bytes("cloudtrail/digest-file.json"))

    assert framed.records == []
    assert len(framed.skipped) == 1
    assert "digest" in framed.skipped[0]


def test_split_skips_empty_records_file() -> None:
    framed = split_message(Source.CLOUDTRAIL, b'{"Records": []}')

    assert framed.records == []
    assert framed.skipped == ["the message: CloudTrail log file with an empty Records list"]


def test_split_cloudtrail_skips_sns_notification() -> None:
    value = b'{"s3Bucket": "trail-bucket", "s3ObjectKey": ["AWSLogs/1/CloudTrail/a.json.gz"]}'

    framed = split_message(Source.CLOUDTRAIL, value)

    assert framed.records == []
    assert "notification" in framed.skipped[0]


def test_split_cloudtrail_keeps_insight_events() -> None:
    framed = split_message(Source.CLOUDTRAIL, fixture_bytes("cloudtrail/insight-event.json"))

    assert framed.records == [load_fixture("cloudtrail/insight-event.json")]


def test_split_unwraps_eventbridge_event() -> None:
    value = orjson.dumps(
        {
            "version": "0",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3",
            "detail": CLOUDTRAIL_RECORD,
        }
    )

    framed = split_message(Source.CLOUDTRAIL, value)

    assert framed.records == [CLOUDTRAIL_RECORD]


def test_split_json_lines() -> None:
    framed = split_message(Source.FALCO, fixture_bytes("falco/alerts-no-uuid.jsonl"))

    assert len(framed.records) == 3


def test_split_pretty_printed_object() -> None:
    framed = split_message(
        Source.GCP_AUDIT, fixture_bytes("gcp_audit/token-minting-subject-only.json")
    )

    assert len(framed.records) == 1


def test_split_strips_utf8_bom() -> None:
    framed = split_message(Source.FALCO, b'\xef\xbb\xbf{"rule": "r"}')

    assert framed.records == [{"rule": "r"}]


def test_split_gcp_entries_list_response() -> None:
    value = b'{"entries": [{"insertId": "a"}, {"insertId": "b"}], "nextPageToken": "t"}'

    framed = split_message(Source.GCP_AUDIT, value)

    assert [record["insertId"] for record in framed.records] == ["a", "b"]


def test_split_inventory_describe_instances() -> None:
    framed = split_message(Source.INVENTORY, fixture_bytes("inventory/ec2-describe-instances.json"))

    assert len(framed.records) == 1
    assert framed.records[0]["OwnerId"] == "111122223333"


def test_split_inventory_kubectl_list() -> None:
    framed = split_message(
        Source.INVENTORY, fixture_bytes("inventory/kubectl-pods-serviceaccounts.json")
    )

    assert [record["kind"] for record in framed.records] == [
        "Pod",
        "Pod",
        "ServiceAccount",
        "ServiceAccount",
    ]


def test_split_inventory_gcloud_array() -> None:
    framed = split_message(Source.INVENTORY, fixture_bytes("inventory/gce-instances.json"))

    assert [record["kind"] for record in framed.records] == ["compute#instance"]


def test_split_inventory_api_pod_list() -> None:
    value = b'{"apiVersion": "v1", "kind": "PodList", "items": [{"kind": "Pod"}]}'

    framed = split_message(Source.INVENTORY, value)

    assert framed.records == [{"kind": "Pod"}]


def test_split_inventory_gce_aggregated_list() -> None:
    value = orjson.dumps(
        {
            "kind": "compute#instanceAggregatedList",
            "items": {
                "zones/us-central1-a": {"instances": [{"kind": "compute#instance", "name": "a"}]},
                "zones/us-central1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
            },
        }
    )

    framed = split_message(Source.INVENTORY, value)

    assert framed.records == [{"kind": "compute#instance", "name": "a"}]


def test_split_inventory_skips_empty_list() -> None:
    framed = split_message(Source.INVENTORY, b'{"apiVersion": "v1", "kind": "List", "items": []}')

    assert framed.records == []
    assert framed.skipped == ["the message: List with no items"]


def test_split_containers_per_source() -> None:
    value = b'{"Records": [{"a": 1}]}'

    framed = split_message(Source.FALCO, value)

    assert framed.records == [{"Records": [{"a": 1}]}]


GARBAGE: list[tuple[str, bytes, list[str]]] = [
    ("not JSON", b"this is not json", ["not valid JSON", "b'this is not json'"]),
    ("truncated object", b'{"eventID": "e-1", ', ["not valid JSON", "eventID"]),
    ("empty", b"", ["empty"]),
    ("whitespace only", b"  \n ", ["empty"]),
    ("number", b"42", ["JSON number", "42", "expected a JSON object"]),
    ("string", b'"hello"', ["JSON string", "hello"]),
    ("null", b"null", ["JSON null"]),
    ("array with a string", b'[{"a": 1}, "oops"]', ["array element 1", "JSON string", "oops"]),
    ("array with a number", b"[1, 2]", ["array element 0", "JSON number"]),
    ("nested array", b"[[{}]]", ["array element 0", "JSON array"]),
    (
        "JSON lines with a bad line",
        b'{"a": 1}\n{"b": 2}\nnot json\n',
        ["line 3", "not valid JSON", "not json"],
    ),
    ("JSON lines with a number", b'{"a": 1}\n7\n', ["line 2", "JSON number"]),
]


@pytest.mark.parametrize(
    ("value", "fragments"),
    [(value, fragments) for _, value, fragments in GARBAGE],
    ids=[name for name, _, _ in GARBAGE],
)
def test_split_garbage_rejected(value: bytes, fragments: list[str]) -> None:
    with pytest.raises(DecodeError) as caught:
        split_message(Source.CLOUDTRAIL, value)

    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message


def test_split_cloudtrail_records_with_a_string() -> None:
    with pytest.raises(DecodeError, match=r"Records\[1\] is a JSON string"):
        split_message(Source.CLOUDTRAIL, b'{"Records": [{"eventID": "a"}, "b"]}')


def test_split_garbage_preview_is_truncated() -> None:
    value = b"x" * 500

    with pytest.raises(DecodeError) as caught:
        split_message(Source.FALCO, value)

    assert len(str(caught.value)) < 300
    assert "..." in str(caught.value)


GUESSES: list[tuple[str, dict[str, Any], Source | None]] = [
    ("cloudtrail record", load_fixture("cloudtrail/invictus-error-code.json"), Source.CLOUDTRAIL),
    (
        "cloudtrail shipper record",
        load_fixture("cloudtrail/otrf-shipper-timestamp-iam-user.json"),
        Source.CLOUDTRAIL,
    ),
    ("cloudtrail file", {"Records": []}, Source.CLOUDTRAIL),
    ("cloudtrail digest", load_fixture("cloudtrail/digest-file.json"), Source.CLOUDTRAIL),
    ("cloudtrail insight", load_fixture("cloudtrail/insight-event.json"), Source.CLOUDTRAIL),
    (
        "gcp entry",
        load_fixture("gcp_audit/token-minting-subject-only.json"),
        Source.GCP_AUDIT,
    ),
    ("falco alert", load_fixture("falco/alert-kubernetes.json"), Source.FALCO),
    (
        "ec2 describe-instances",
        load_fixture("inventory/ec2-describe-instances.json"),
        Source.INVENTORY,
    ),
    ("ec2 instance", load_fixture("inventory/ec2-instance-bare.json"), Source.INVENTORY),
    ("gce instance", {"kind": "compute#instance", "name": "vm-1"}, Source.INVENTORY),
    (
        "kubectl list",
        load_fixture("inventory/kubectl-pods-serviceaccounts.json"),
        Source.INVENTORY,
    ),
    ("pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {}}, Source.INVENTORY),
    ("unrelated object", {"hello": "world"}, None),
    ("empty object", {}, None),
]


@pytest.mark.parametrize(
    ("record", "expected"),
    [(record, expected) for _, record, expected in GUESSES],
    ids=[name for name, _, _ in GUESSES],
)
def test_guess_source(record: dict[str, Any], expected: Source | None) -> None:
    assert guess_source(record) is expected
