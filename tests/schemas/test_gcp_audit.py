from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, EventKind, Principal, Source
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from tests.schemas.conftest import load_fixture


def normalize_one(record: dict[str, Any]) -> Event:
    events = normalize_record(Source.GCP_AUDIT, record, NormalizeContext())
    assert len(events) == 1
    return events[0]


def with_authentication(authentication: Any) -> dict[str, Any]:
    record = copy.deepcopy(load_fixture("gcp_audit/impersonation-chain.json"))
    record["protoPayload"]["authenticationInfo"] = authentication
    return record


def test_gcp_event_fields() -> None:
    event = normalize_one(load_fixture("gcp_audit/impersonation-chain.json"))

    assert event.source is Source.GCP_AUDIT
    assert event.kind is EventKind.API_CALL
    assert event.event_id == "m1n2b3v4c5x6"
    assert event.time == datetime(2025, 3, 4, 13, 0, tzinfo=UTC)
    assert event.action == "v1.compute.instances.insert"
    assert event.service == "compute.googleapis.com"
    assert event.account == "demo-project-1234"
    assert event.key == "demo-project-1234"
    assert event.region == "europe-west1-b"
    assert event.source_ip == "2001:db8::5"
    assert event.user_agent == "google-api-go-client/0.5,gzip(gfe)"
    assert event.error_code is None
    assert event.read_only is False


def test_gcp_delegation_order_skips_empty() -> None:
    event = normalize_one(load_fixture("gcp_audit/impersonation-chain.json"))

    assert event.principal == Principal(
        id="deployer@demo-project-1234.iam.gserviceaccount.com",
        type="serviceAccount",
        account="demo-project-1234",
        subject="serviceAccount:deployer@demo-project-1234.iam.gserviceaccount.com",
        delegation=(
            "builder@demo-project-1234.iam.gserviceaccount.com",
            "serviceAccount:demo-project-1234.svc.id.goog[build/runner]",
        ),
    )


def test_gcp_subject_only_principal() -> None:
    event = normalize_one(load_fixture("gcp_audit/token-minting-subject-only.json"))

    assert event.principal is not None
    assert event.principal.id.startswith("principal://iam.googleapis.com/projects/123456789012/")
    assert event.principal.type == "federatedPrincipal"
    assert event.principal.delegation == ()
    assert event.read_only is True


def test_gcp_nine_digit_time() -> None:
    event = normalize_one(load_fixture("gcp_audit/token-minting-subject-only.json"))

    assert event.time == datetime(2025, 3, 4, 11, 0, 0, 981234, tzinfo=UTC)


def test_gcp_empty_authentication() -> None:
    event = normalize_one(load_fixture("gcp_audit/denied-with-empty-authentication.json"))

    assert event.principal is None


def test_gcp_status_code_named() -> None:
    event = normalize_one(load_fixture("gcp_audit/denied-with-empty-authentication.json"))

    assert event.error_code == "PERMISSION_DENIED"


def test_gcp_unknown_status_code() -> None:
    record = load_fixture("gcp_audit/denied-with-empty-authentication.json")
    record["protoPayload"]["status"]["code"] = 99

    assert normalize_one(record).error_code == "99"


def test_gcp_caller_ip_not_address() -> None:
    event = normalize_one(load_fixture("gcp_audit/denied-with-empty-authentication.json"))

    assert event.source_ip is None


def test_gcp_receive_timestamp_fallback() -> None:
    record = load_fixture("gcp_audit/impersonation-chain.json")
    del record["timestamp"]

    assert normalize_one(record).time == datetime(2025, 3, 4, 13, 0, 1, tzinfo=UTC)


def test_gcp_project_from_log_name() -> None:
    record = load_fixture("gcp_audit/impersonation-chain.json")
    del record["resource"]["labels"]["project_id"]

    event = normalize_one(record)

    assert event.account == "demo-project-1234"
    assert event.key == "demo-project-1234"


def test_gcp_organization_log_key() -> None:
    record = load_fixture("gcp_audit/impersonation-chain.json")
    del record["resource"]["labels"]["project_id"]
    record["logName"] = "organizations/123456789/logs/cloudaudit.googleapis.com%2Factivity"

    event = normalize_one(record)

    assert event.account is None
    assert event.key == "organizations/123456789"


PRINCIPALS: list[tuple[str, Any, Principal | None]] = [
    (
        "email and subject",
        {"principalEmail": "alice@example.com", "principalSubject": "user:alice@example.com"},
        Principal(id="alice@example.com", type="user", subject="user:alice@example.com"),
    ),
    (
        "email only",
        {"principalEmail": "314159265358-compute@developer.gserviceaccount.com"},
        Principal(id="314159265358-compute@developer.gserviceaccount.com", type="serviceAccount"),
    ),
    (
        "workload identity subject only",
        {
            "principalSubject": "serviceAccount:demo-project-1234.svc.id.goog[ml/trainer]",
            "serviceAccountDelegationInfo": [{}],
        },
        Principal(
            id="serviceAccount:demo-project-1234.svc.id.goog[ml/trainer]",
            type="kubernetesServiceAccount",
            account="demo-project-1234",
            subject="serviceAccount:demo-project-1234.svc.id.goog[ml/trainer]",
        ),
    ),
    (
        "workload identity acting as a service account",
        {
            "principalEmail": "trainer@demo-project-1234.iam.gserviceaccount.com",
            "serviceAccountDelegationInfo": [
                {"principalSubject": "serviceAccount:demo-project-1234.svc.id.goog[ml/trainer]"}
            ],
        },
        Principal(
            id="trainer@demo-project-1234.iam.gserviceaccount.com",
            type="serviceAccount",
            account="demo-project-1234",
            delegation=("serviceAccount:demo-project-1234.svc.id.goog[ml/trainer]",),
        ),
    ),
    ("empty object", {}, None),
    ("missing", None, None),
    ("delegation without caller", {"serviceAccountDelegationInfo": [{}]}, None),
    (
        "delegation entries of wrong types",
        {"principalEmail": "a@example.com", "serviceAccountDelegationInfo": ["x", 3, {}]},
        Principal(id="a@example.com", type="user"),
    ),
]


@pytest.mark.parametrize(
    ("authentication", "expected"),
    [(authentication, expected) for _, authentication, expected in PRINCIPALS],
    ids=[name for name, _, _ in PRINCIPALS],
)
def test_gcp_principal_fallbacks(authentication: Any, expected: Principal | None) -> None:
    event = normalize_one(with_authentication(authentication))

    assert event.principal == expected


BROKEN: list[tuple[str, str, Any, list[str]]] = [
    ("methodName missing", "protoPayload.methodName", None, ["no action", "methodName"]),
    ("no protoPayload", "protoPayload", None, ["no action", "protoPayload.methodName"]),
    ("methodName a list", "protoPayload.methodName", ["a"], ["methodName", "['a']"]),
    ("timestamp garbage", "timestamp", "13:00", ["timestamp", "13:00"]),
    ("status code a string", "protoPayload.status", {"code": "7"}, ["status.code", "'7'"]),
]


@pytest.mark.parametrize(
    ("dotted", "value", "fragments"),
    [(dotted, value, fragments) for _, dotted, value, fragments in BROKEN],
    ids=[name for name, _, _, _ in BROKEN],
)
def test_gcp_broken_record_rejected(dotted: str, value: Any, fragments: list[str]) -> None:
    record = load_fixture("gcp_audit/impersonation-chain.json")
    *parents, last = dotted.split(".")
    target = record
    for key in parents:
        target = target[key]
    if value is None:
        del target[last]
    else:
        target[last] = value

    with pytest.raises(MappingError) as caught:
        normalize_record(Source.GCP_AUDIT, record, NormalizeContext())

    for fragment in fragments:
        assert fragment in str(caught.value)
    assert caught.value.event_id == "m1n2b3v4c5x6"


def test_gcp_missing_insert_id() -> None:
    record = load_fixture("gcp_audit/impersonation-chain.json")
    del record["insertId"]

    with pytest.raises(MappingError, match="no insertId"):
        normalize_record(Source.GCP_AUDIT, record, NormalizeContext())
