from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import EventKind, Principal, Source
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.schemas.sources.cloudtrail import resolve_principal
from tests.schemas.conftest import load_fixture

ACCOUNT = "111122223333"


def make_record(identity: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "eventTime": "2025-03-04T10:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": None,
        "responseElements": None,
        "eventID": "0d9e1f2a-0000-4000-8000-000000000001",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT,
    }
    if identity is not None:
        record["userIdentity"] = identity
    record.update(fields)
    return record


def normalize_one(record: dict[str, Any]) -> Any:
    events = normalize_record(Source.CLOUDTRAIL, record, NormalizeContext())
    assert len(events) == 1
    return events[0]


PRINCIPALS: list[tuple[str, dict[str, Any] | None, dict[str, Any], Principal | None]] = [
    (
        "root with arn",
        {
            "type": "Root",
            "principalId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:root",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAROOTEXAMPLE",
        },
        {},
        Principal(
            id=f"arn:aws:iam::{ACCOUNT}:root",
            type="Root",
            account=ACCOUNT,
            access_key_id="ASIAROOTEXAMPLE",
        ),
    ),
    (
        "root without arn",
        {"type": "Root", "principalId": ACCOUNT, "accountId": ACCOUNT},
        {},
        Principal(id=f"arn:aws:iam::{ACCOUNT}:root", type="Root", account=ACCOUNT),
    ),
    (
        "iam user",
        {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "accountId": ACCOUNT,
            "accessKeyId": "AKIAEXAMPLE",
            "userName": "alice",
        },
        {},
        Principal(
            id=f"arn:aws:iam::{ACCOUNT}:user/alice",
            type="IAMUser",
            account=ACCOUNT,
            access_key_id="AKIAEXAMPLE",
        ),
    ),
    (
        "iam user without arn",
        {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT, "userName": "bob"},
        {},
        Principal(id=f"arn:aws:iam::{ACCOUNT}:user/bob", type="IAMUser", account=ACCOUNT),
    ),
    (
        "assumed role from instance profile over IMDSv2",
        {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:i-0abc",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-node/i-0abc",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLE",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/eks-node",
                    "accountId": ACCOUNT,
                    "userName": "eks-node",
                },
                "attributes": {"creationDate": "2025-03-04T09:00:00Z", "mfaAuthenticated": "false"},
                "ec2RoleDelivery": "2.0",
            },
        },
        {},
        Principal(
            id=f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-node/i-0abc",
            type="AssumedRole",
            account=ACCOUNT,
            session_issuer=f"arn:aws:iam::{ACCOUNT}:role/eks-node",
            session_name="i-0abc",
            access_key_id="ASIAEXAMPLE",
            credential_delivery="2.0",
        ),
    ),
    (
        "assumed role without arn",
        {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:deploy-session",
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/deploy",
                    "userName": "deploy",
                }
            },
        },
        {},
        Principal(
            id=f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/deploy-session",
            type="AssumedRole",
            account=ACCOUNT,
            session_issuer=f"arn:aws:iam::{ACCOUNT}:role/deploy",
            session_name="deploy-session",
        ),
    ),
    (
        "federated user",
        {
            "type": "FederatedUser",
            "principalId": f"{ACCOUNT}:carol",
            "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIAFEDEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "IAMUser",
                    "arn": f"arn:aws:iam::{ACCOUNT}:user/broker",
                    "userName": "broker",
                }
            },
        },
        {},
        Principal(
            id=f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
            type="FederatedUser",
            account=ACCOUNT,
            session_issuer=f"arn:aws:iam::{ACCOUNT}:user/broker",
            session_name="carol",
            access_key_id="ASIAFEDEXAMPLE",
        ),
    ),
    (
        "web identity user (IRSA)",
        {
            "type": "WebIdentityUser",
            "principalId": (
                f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
                ":sts.amazonaws.com:system:serviceaccount:payments:api"
            ),
            "userName": "system:serviceaccount:payments:api",
            "identityProvider": (
                f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
            ),
        },
        {"eventName": "AssumeRoleWithWebIdentity"},
        Principal(
            id=(
                f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
                ":sts.amazonaws.com:system:serviceaccount:payments:api"
            ),
            type="WebIdentityUser",
            account=ACCOUNT,
            subject="system:serviceaccount:payments:api",
        ),
    ),
    (
        "web identity user, subject only in the response",
        {"type": "WebIdentityUser", "principalId": "accounts.google.com:aud:1234567890"},
        {
            "eventName": "AssumeRoleWithWebIdentity",
            "responseElements": {"subjectFromWebIdentityToken": "1234567890"},
        },
        Principal(
            id="accounts.google.com:aud:1234567890",
            type="WebIdentityUser",
            account=ACCOUNT,
            subject="1234567890",
        ),
    ),
    (
        "saml user",
        {
            "type": "SAMLUser",
            "principalId": "SAMLStoreExample:dave@example.com",
            "userName": "dave@example.com",
            "identityProvider": "bdGOnTesti4+ExamplexR+ZIA=",
        },
        {"eventName": "AssumeRoleWithSAML"},
        Principal(
            id="SAMLStoreExample:dave@example.com",
            type="SAMLUser",
            account=ACCOUNT,
            subject="dave@example.com",
        ),
    ),
    (
        "aws service",
        {"type": "AWSService", "invokedBy": "rds.amazonaws.com"},
        {},
        Principal(id="rds.amazonaws.com", type="AWSService"),
    ),
    (
        "aws account",
        {"type": "AWSAccount", "principalId": "AIDAOTHER", "accountId": "444455556666"},
        {},
        Principal(id="444455556666", type="AWSAccount", account="444455556666"),
    ),
    (
        "identity center user",
        {
            "type": "IdentityCenterUser",
            "accountId": ACCOUNT,
            "onBehalfOf": {
                "userId": "94482488-3041-7026-18f3-be45837cd0e4",
                "identityStoreArn": "arn:aws:identitystore::111122223333:identitystore/d-123",
            },
            "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
        },
        {},
        Principal(
            id="94482488-3041-7026-18f3-be45837cd0e4", type="IdentityCenterUser", account=ACCOUNT
        ),
    ),
    (
        "unknown (failed console login)",
        {"type": "Unknown", "principalId": ACCOUNT, "accountId": ACCOUNT, "userName": "eve"},
        {"eventName": "ConsoleLogin", "eventType": "AwsConsoleSignIn"},
        Principal(id="eve", type="Unknown", account=ACCOUNT),
    ),
    (
        "type missing, service invoked",
        {"accountId": ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
        {"eventType": "AwsServiceEvent"},
        Principal(id="secretsmanager.amazonaws.com", type="AWSService", account=ACCOUNT),
    ),
    (
        "type missing, arn present",
        {"arn": f"arn:aws:iam::{ACCOUNT}:user/frank", "accountId": ACCOUNT},
        {},
        Principal(id=f"arn:aws:iam::{ACCOUNT}:user/frank", type="Unknown", account=ACCOUNT),
    ),
    (
        "type not in the table",
        {"type": "Directory", "principalId": "d-1234:george", "accountId": ACCOUNT},
        {},
        Principal(id="d-1234:george", type="Directory", account=ACCOUNT),
    ),
    ("userIdentity missing", None, {}, None),
    ("userIdentity null", None, {"userIdentity": None}, None),
    ("userIdentity empty", {}, {}, None),
    ("userIdentity with nothing usable", {"type": "AssumedRole"}, {}, None),
]


@pytest.mark.parametrize(
    ("identity", "fields", "expected"),
    [(identity, fields, expected) for _, identity, fields, expected in PRINCIPALS],
    ids=[name for name, _, _, _ in PRINCIPALS],
)
def test_cloudtrail_principal_per_type(
    identity: dict[str, Any] | None, fields: dict[str, Any], expected: Principal | None
) -> None:
    event = normalize_one(make_record(identity, **fields))

    assert event.principal == expected


def test_cloudtrail_event_fields() -> None:
    event = normalize_one(load_fixture("cloudtrail/invictus-error-code.json"))

    assert event.source is Source.CLOUDTRAIL
    assert event.kind is EventKind.API_CALL
    assert event.event_id == event.raw["eventID"]
    assert event.time == datetime(2023, 7, 10, 11, 54, 42, tzinfo=UTC)
    assert event.action == "AssumeRole"
    assert event.service == "sts.amazonaws.com"
    assert event.account == "123837392027"
    assert event.key == "123837392027"
    assert event.region == "us-east-1"
    assert event.source_ip == "192.168.10.20"
    assert event.error_code == "AccessDenied"


def test_cloudtrail_shipper_timestamp() -> None:
    event = normalize_one(load_fixture("cloudtrail/otrf-shipper-timestamp-assumed-role.json"))

    assert event.time == datetime(2020, 9, 14, 1, 0, 33, tzinfo=UTC)


def test_cloudtrail_instance_credentials_imdsv1() -> None:
    event = normalize_one(load_fixture("cloudtrail/otrf-shipper-timestamp-assumed-role.json"))

    assert event.principal is not None
    assert event.principal.credential_delivery == "1.0"
    assert event.principal.session_name == "i-0317f6c6b66ae9c40"


def test_cloudtrail_invented_region_kept() -> None:
    event = normalize_one(load_fixture("cloudtrail/stratus-stop-logging-invented-region.json"))

    assert event.region == "apiso-centralnorth-2r"
    assert event.action == "StopLogging"


def test_cloudtrail_untyped_service_event() -> None:
    event = normalize_one(load_fixture("cloudtrail/invictus-service-event-without-type.json"))

    assert event.kind is EventKind.SERVICE_EVENT
    assert event.principal == Principal(
        id="secretsmanager.amazonaws.com", type="AWSService", account="123837392027"
    )


def test_cloudtrail_service_name_is_not_source_ip() -> None:
    event = normalize_one(load_fixture("cloudtrail/invictus-aws-service-assume-role.json"))

    assert event.source_ip is None
    assert event.raw["sourceIPAddress"] == "inspector2.amazonaws.com"


def test_cloudtrail_console_sign_in_is_api_call() -> None:
    event = normalize_one(load_fixture("cloudtrail/invictus-console-sign-in.json"))

    assert event.kind is EventKind.API_CALL
    assert event.action == "ConsoleLogin"


def test_cloudtrail_insight_event() -> None:
    event = normalize_one(load_fixture("cloudtrail/insight-event.json"))

    assert event.kind is EventKind.INSIGHT
    assert event.action == "RunInstances"
    assert event.service == "ec2.amazonaws.com"
    assert event.principal is None
    assert event.key == ACCOUNT


def test_cloudtrail_account_from_identity() -> None:
    record = make_record({"type": "IAMUser", "accountId": "444455556666", "userName": "x"})
    del record["recipientAccountId"]

    event = normalize_one(record)

    assert event.key == "444455556666"


def test_cloudtrail_read_only_string() -> None:
    event = normalize_one(make_record(None, readOnly="false"))

    assert event.read_only is False


def test_cloudtrail_ipv6_source_address() -> None:
    event = normalize_one(make_record(None, sourceIPAddress="2001:db8::1"))

    assert event.source_ip == "2001:db8::1"


def test_cloudtrail_raw_is_the_record() -> None:
    record = load_fixture("cloudtrail/stratus-stolen-credentials-caller-identity.json")

    event = normalize_one(record)

    assert event.raw is record


def test_resolve_principal_ignores_non_object_identity() -> None:
    assert resolve_principal({"userIdentity": "alice"}) is None


BROKEN: list[tuple[str, dict[str, Any], list[str], str | None]] = [
    (
        "eventName missing",
        {k: v for k, v in make_record(None).items() if k != "eventName"},
        ["no action", "eventName"],
        "0d9e1f2a-0000-4000-8000-000000000001",
    ),
    ("eventName a number", make_record(None, eventName=42), ["eventName", "42"], None),
    (
        "eventID missing",
        {k: v for k, v in make_record(None).items() if k != "eventID"},
        ["no eventID", "GetCallerIdentity"],
        None,
    ),
    ("eventID a number", make_record(None, eventID=7), ["eventID", "7"], None),
    (
        "no time at all",
        {k: v for k, v in make_record(None).items() if k != "eventTime"},
        ["no time", "eventTime or @timestamp"],
        None,
    ),
    ("time garbage", make_record(None, eventTime="yesterday"), ["eventTime", "yesterday"], None),
    (
        "no account",
        {k: v for k, v in make_record(None).items() if k != "recipientAccountId"},
        ["no account", "recipientAccountId"],
        None,
    ),
    ("readOnly garbage", make_record(None, readOnly="maybe"), ["readOnly", "maybe"], None),
]


@pytest.mark.parametrize(
    ("record", "fragments", "event_id"),
    [(record, fragments, event_id) for _, record, fragments, event_id in BROKEN],
    ids=[name for name, _, _, _ in BROKEN],
)
def test_cloudtrail_broken_record_rejected(
    record: dict[str, Any], fragments: list[str], event_id: str | None
) -> None:
    with pytest.raises(MappingError) as caught:
        normalize_record(Source.CLOUDTRAIL, record, NormalizeContext())

    for fragment in fragments:
        assert fragment in str(caught.value)
    if event_id is not None:
        assert caught.value.event_id == event_id


def test_cloudtrail_error_carries_event_id() -> None:
    record = make_record(None, eventTime="soon")

    with pytest.raises(MappingError) as caught:
        normalize_record(Source.CLOUDTRAIL, record, NormalizeContext())

    assert caught.value.event_id == record["eventID"]
