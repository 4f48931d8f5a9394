"""Tests of transient-exposure detection: extractors, tracker and alert."""

from __future__ import annotations

import copy
import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pivotwatch.correlator.exposure import (
    ExposureTracker,
    TransientExposure,
    exposure_alert,
    exposure_chain_id,
    extract_transitions,
)
from pivotwatch.correlator.exposure.s3 import is_public_policy
from pivotwatch.errors import ConfigurationError
from pivotwatch.schemas.alert import Alert, AlertKind, Severity
from pivotwatch.schemas.event import Event, Source
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.settings import CorrelationSettings

FIXTURES = Path(__file__).parent / "fixtures" / "exposure"
WINDOW = timedelta(minutes=60)
LATENESS = timedelta(minutes=30)
SCENARIO = "transient-exposure"
OPEN_EXPOSURE_ID = "a8856c09-9066-4a74-bcfa-b0ced44b926e"


# -- helpers ---------------------------------------------------------------------------


def normalize(source: Source, record: dict[str, Any]) -> Event:
    (event,) = normalize_record(source, record, NormalizeContext())
    return event


def cloudtrail_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["Records"]
    return records


def gcp_records(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def fixture_events(name: str) -> list[Event]:
    path = FIXTURES / name
    if path.suffix == ".jsonl":
        return [normalize(Source.GCP_AUDIT, record) for record in gcp_records(path)]
    return [normalize(Source.CLOUDTRAIL, record) for record in cloudtrail_records(path)]


def new_tracker(**overrides: Any) -> ExposureTracker:
    settings: dict[str, Any] = {"window": WINDOW, "lateness": LATENESS}
    settings.update(overrides)
    return ExposureTracker(**settings)


def run(tracker: ExposureTracker, events: list[Event]) -> list[TransientExposure]:
    findings: list[TransientExposure] = []
    for event in events:
        findings.extend(tracker.observe(event))
    return findings


def pairs(findings: list[TransientExposure]) -> set[tuple[str, str]]:
    return {(finding.change.event_id, finding.revert.event_id) for finding in findings}


def shifted(record: dict[str, Any], event_id: str, minutes: float) -> dict[str, Any]:
    """Copy a CloudTrail record under a new event id, ``minutes`` later."""
    moved = copy.deepcopy(record)
    moved["eventID"] = event_id
    time = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
    moved["eventTime"] = (time + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moved


def load_scorer(shared_dir: Path) -> Any:
    path = shared_dir / "tools" / "score_scenarios.py"
    spec = importlib.util.spec_from_file_location("score_scenarios", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scenario_events(folder: Path) -> list[Event]:
    """Normalize a scenario's records, each file in the order the source delivered it."""
    events = []
    for path in sorted((folder / "cloudtrail").glob("*.json")):
        for record in cloudtrail_records(path):
            events.extend(normalize_record(Source.CLOUDTRAIL, record, NormalizeContext()))
    for record in gcp_records(folder / "gcp-audit.jsonl"):
        events.extend(normalize_record(Source.GCP_AUDIT, record, NormalizeContext()))
    return events


# -- scenario --------------------------------------------------------------------------


def test_scenario_finds_expected_three(shared_dir: Path) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))

    findings = run(new_tracker(), scenario_events(folder))

    wanted = {tuple(chain["evidence"]) for chain in expected["chains"]}
    assert len(findings) == 3
    assert pairs(findings) == wanted


def test_scenario_alerts_pass_scorer(shared_dir: Path) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    scorer = load_scorer(shared_dir)

    findings = run(new_tracker(), scenario_events(folder))
    alerts = [msgspec.json.decode(msgspec.json.encode(exposure_alert(f))) for f in findings]

    for chain in expected["chains"]:
        assert any(scorer.matches(chain, alert) for alert in alerts), chain["evidence"]
    evidence_ids = {item["event_id"] for alert in alerts for item in alert["evidence"]}
    assert OPEN_EXPOSURE_ID not in evidence_ids


def test_scenario_open_exposure_stays_pending(shared_dir: Path) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    tracker = new_tracker()

    findings = run(tracker, scenario_events(folder))

    assert all(finding.change.event_id != OPEN_EXPOSURE_ID for finding in findings)
    assert tracker.dropped_late == 0


def test_scenario_same_result_in_reverse_order(shared_dir: Path) -> None:
    folder = shared_dir / "scenarios" / SCENARIO
    events = scenario_events(folder)
    events.sort(key=lambda event: event.time)

    forward = run(new_tracker(), events)
    # Reversed, each record arrives up to two hours behind its account's newest one.
    per_account = run(new_tracker(lateness=timedelta(hours=3)), list(reversed(events)))

    assert pairs(per_account) == pairs(forward)


# -- security groups -------------------------------------------------------------------


def test_security_group_revoke_and_delete_close() -> None:
    findings = run(new_tracker(), fixture_events("invictus-security-group.json"))

    by_change = {finding.change.event_id: finding for finding in findings}
    ssh = by_change["74bd84b4-6729-4895-b2a4-e2beb7c6b377"]
    https = by_change["7e96f0e7-4d78-423d-b3f5-391370685b30"]
    assert len(findings) == 2
    assert ssh.revert.event_id == "8733f811-267d-4c46-8e5b-000fe7c6a9f2"
    assert ssh.duration == timedelta(minutes=1, seconds=49)
    assert ssh.exposure == "security group sg-04cfb7a4712d75b00 ingress tcp/22 from 0.0.0.0/0"
    assert https.revert.action == "DeleteSecurityGroup"
    assert (
        https.resource == "arn:aws:ec2:us-east-1:123837392027:security-group/sg-04cfb7a4712d75b00"
    )
    assert https.techniques == ("T1562.007",)
    assert https.changed_by == "arn:aws:iam::123837392027:user/bert-jan"


def test_security_group_revoke_by_rule_id() -> None:
    findings = run(new_tracker(), fixture_events("sg-rule-ids.json"))

    assert pairs(findings) == {
        ("b1627e80-e593-43c4-a0c6-6283940b5c6d", "c2738f91-f6a4-44d5-b1d7-7394a51c6d7e")
    }
    assert findings[0].exposure == "security group sg-0f1e2d3c4b5a69788 ingress tcp/443 from ::/0"


def test_security_group_private_range_ignored() -> None:
    record = cloudtrail_records(FIXTURES / "invictus-security-group.json")[0]
    private = copy.deepcopy(record)
    private["requestParameters"]["ipPermissions"]["items"][0]["ipRanges"]["items"][0]["cidrIp"] = (
        "10.0.0.0/16"
    )

    assert extract_transitions(normalize(Source.CLOUDTRAIL, private)) == []


def test_security_group_interleaved_pairs_any_order() -> None:
    opened, revoked = (
        record
        for record in cloudtrail_records(FIXTURES / "invictus-security-group.json")
        if record["eventName"] in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress")
        and record.get("requestParameters", {}).get("fromPort") == 22
    )
    reopened = shifted(opened, "aaaaaaaa-0000-4000-8000-000000000001", 10)
    revoked_again = shifted(revoked, "aaaaaaaa-0000-4000-8000-000000000002", 10)
    records = [opened, reopened, revoked_again, revoked]

    findings = run(new_tracker(), [normalize(Source.CLOUDTRAIL, r) for r in records])

    assert pairs(findings) == {
        (opened["eventID"], revoked["eventID"]),
        (reopened["eventID"], revoked_again["eventID"]),
    }


# -- S3 --------------------------------------------------------------------------------


def test_s3_acl_public_then_private() -> None:
    findings = run(new_tracker(), fixture_events("s3-acl.json"))

    (finding,) = findings
    assert finding.resource == "arn:aws:s3:::acme-build-artifacts"
    assert finding.exposure == "S3 bucket acme-build-artifacts ACL grants READ to AllUsers"
    assert finding.changed_by == "arn:aws:iam::210987654321:user/carol"
    assert finding.reverted_by == "arn:aws:iam::210987654321:user/dave"
    assert finding.duration == timedelta(minutes=12, seconds=30)
    assert finding.techniques == ("T1530",)


def test_s3_public_access_block_restored() -> None:
    (finding,) = run(new_tracker(), fixture_events("s3-public-access-block.json"))

    assert finding.change.action == "DeletePublicAccessBlock"
    assert finding.revert.action == "PutPublicAccessBlock"
    assert finding.duration == timedelta(minutes=20, seconds=30)


def test_s3_bucket_policy_as_string() -> None:
    events = fixture_events("s3-policy-string.json")

    (finding,) = run(new_tracker(), events)

    assert isinstance(events[0].raw["requestParameters"]["bucketPolicy"], str)
    assert finding.change.event_id == "9f405c6e-c371-41a2-8eb5-40617182a3b4"
    assert finding.revert.event_id == "a0516d7f-d482-42b3-9fc6-5172839a4b5c"
    assert "s3:GetObject, s3:ListBucket" in finding.exposure


def test_s3_invalid_policy_string_ignored() -> None:
    record = cloudtrail_records(FIXTURES / "s3-policy-string.json")[0]
    record["requestParameters"]["bucketPolicy"] = '{"Statement": ['

    assert extract_transitions(normalize(Source.CLOUDTRAIL, record)) == []


@pytest.mark.parametrize(
    ("statement", "public"),
    [
        ({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}, True),
        ({"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:*"}, True),
        ({"Effect": "Deny", "Principal": "*", "Action": "s3:*"}, False),
        ({"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}}, False),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
            },
            False,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": ["0.0.0.0/0"]}},
            },
            True,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"StringLike": {"aws:SourceVpce": "vpce-*"}},
            },
            True,
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "true"}},
            },
            True,
        ),
    ],
)
def test_bucket_policy_public_statements(statement: dict[str, Any], public: bool) -> None:
    assert bool(is_public_policy({"Statement": [statement]})) is public


# -- GCP -------------------------------------------------------------------------------


def test_gcp_full_policy_form() -> None:
    (finding,) = run(new_tracker(), fixture_events("gcp-request-policy.jsonl"))

    assert finding.account == "acme-dev-271828"
    assert finding.resource == "namespaces/acme-dev-271828/services/report-api"
    assert finding.exposure.endswith("grants roles/run.invoker to allUsers")
    assert finding.techniques == ("T1098.003",)
    assert finding.changed_by == "erin@example.com"


def test_gcp_binding_delta_form(shared_dir: Path) -> None:
    path = shared_dir / "scenarios" / SCENARIO / "gcp-audit.jsonl"
    events = [normalize(Source.GCP_AUDIT, record) for record in gcp_records(path)]

    (finding,) = run(new_tracker(), events)

    assert finding.resource == "projects/_/buckets/acme-prod-314159-partner-drop"
    assert finding.techniques == ("T1530",)


# -- failed calls, order, window, state -------------------------------------------------


def test_failed_change_or_revert_ignored() -> None:
    change, revert = cloudtrail_records(FIXTURES / "s3-acl.json")
    failed_change = copy.deepcopy(change)
    failed_change["errorCode"] = "AccessDenied"
    failed_change["errorMessage"] = "Access Denied"
    failed_revert = copy.deepcopy(revert)
    failed_revert["errorCode"] = "AccessDenied"

    for records in ([failed_change, revert], [change, failed_revert]):
        events = [normalize(Source.CLOUDTRAIL, record) for record in records]
        assert run(new_tracker(), events) == []


def test_failed_gcp_call_ignored() -> None:
    change, revert = gcp_records(FIXTURES / "gcp-request-policy.jsonl")
    change["protoPayload"]["status"] = {"code": 7, "message": "PERMISSION_DENIED"}
    events = [normalize(Source.GCP_AUDIT, record) for record in (change, revert)]

    assert run(new_tracker(), events) == []


def test_revert_before_change_same_finding() -> None:
    events = fixture_events("s3-acl.json")

    in_order = run(new_tracker(), events)
    reversed_order = run(new_tracker(), list(reversed(events)))

    assert reversed_order == in_order


def test_revert_after_window_ignored() -> None:
    events = fixture_events("s3-acl.json")

    assert run(new_tracker(window=timedelta(minutes=12)), events) == []
    assert len(run(new_tracker(window=timedelta(minutes=13)), events)) == 1


def test_duplicate_delivery_one_finding() -> None:
    change, revert = fixture_events("s3-acl.json")

    findings = run(new_tracker(), [change, change, revert, revert, change])

    assert len(findings) == 1


def test_repeated_close_no_second_finding() -> None:
    change, revert = cloudtrail_records(FIXTURES / "s3-policy-string.json")
    second_revert = shifted(revert, "bbbbbbbb-0000-4000-8000-000000000001", 2)
    records = [change, revert, second_revert]

    findings = run(new_tracker(), [normalize(Source.CLOUDTRAIL, r) for r in records])

    assert pairs(findings) == {(change["eventID"], revert["eventID"])}


def test_late_repeat_change_no_second_finding() -> None:
    change, revert = cloudtrail_records(FIXTURES / "s3-policy-string.json")
    repeat_change = shifted(change, "bbbbbbbb-0000-4000-8000-000000000002", 3)
    repeat_revert = shifted(revert, "bbbbbbbb-0000-4000-8000-000000000003", 3)
    records = [change, revert, repeat_change, repeat_revert]

    findings = run(new_tracker(), [normalize(Source.CLOUDTRAIL, r) for r in records])

    assert pairs(findings) == {(change["eventID"], revert["eventID"])}


def test_state_expires_after_window() -> None:
    change, _ = cloudtrail_records(FIXTURES / "s3-acl.json")
    later = shifted(change, "cccccccc-0000-4000-8000-000000000001", 120)
    later["eventName"] = "GetBucketAcl"
    tracker = new_tracker()

    run(tracker, [normalize(Source.CLOUDTRAIL, change)])
    stored = len(tracker)
    run(tracker, [normalize(Source.CLOUDTRAIL, later)])

    assert stored == 1
    assert len(tracker) == 0


def test_event_beyond_lateness_dropped() -> None:
    change, revert = cloudtrail_records(FIXTURES / "s3-acl.json")
    much_later = shifted(change, "dddddddd-0000-4000-8000-000000000001", 90)
    tracker = new_tracker()

    findings = run(tracker, [normalize(Source.CLOUDTRAIL, r) for r in (much_later, change, revert)])

    assert findings == []
    assert tracker.dropped_late == 2


def test_cap_evicts_oldest_entry() -> None:
    opened = cloudtrail_records(FIXTURES / "invictus-security-group.json")[0]
    revoked = copy.deepcopy(opened)
    revoked["eventName"] = "RevokeSecurityGroupIngress"
    revoked["eventID"] = "eeeeeeee-0000-4000-8000-0000000000ff"
    revoked["eventTime"] = "2023-07-10T12:15:00Z"
    del revoked["responseElements"]["securityGroupRuleSet"]
    others = []
    for number, port in enumerate((8080, 8443), start=1):
        other = shifted(opened, f"eeeeeeee-0000-4000-8000-00000000000{number}", number)
        permission = other["requestParameters"]["ipPermissions"]["items"][0]
        permission["fromPort"] = permission["toPort"] = port
        others.append(other)
    tracker = new_tracker(max_open=2)

    records = [opened, *others, revoked]
    findings = run(tracker, [normalize(Source.CLOUDTRAIL, r) for r in records])

    assert findings == []
    assert tracker.evicted == 2
    assert len(tracker) == 2


@pytest.mark.parametrize(
    "settings",
    [
        {"window": timedelta(0), "lateness": LATENESS},
        {"window": WINDOW, "lateness": timedelta(seconds=-1)},
        {"window": WINDOW, "lateness": LATENESS, "max_open": 0},
    ],
)
def test_tracker_rejects_invalid_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ExposureTracker(**settings)


def test_tracker_from_settings() -> None:
    settings = CorrelationSettings(transient_window_seconds=600, allowed_lateness_seconds=60)

    tracker = ExposureTracker.from_settings(settings)

    assert tracker.window == timedelta(minutes=10)
    assert tracker.lateness == timedelta(minutes=1)


# -- alert -----------------------------------------------------------------------------


def acl_finding() -> TransientExposure:
    (finding,) = run(new_tracker(), fixture_events("s3-acl.json"))
    return finding


def test_alert_fields() -> None:
    finding = acl_finding()

    alert = exposure_alert(finding)

    assert alert.kind is AlertKind.TRANSIENT_EXPOSURE
    assert alert.revision == 1
    assert alert.account == "210987654321"
    assert (
        alert.title == "S3 bucket acme-build-artifacts was public through its ACL for 12 min 30 s"
    )
    assert alert.identities == [
        "arn:aws:iam::210987654321:user/carol",
        "arn:aws:iam::210987654321:user/dave",
    ]
    assert alert.stages == ["collection"]
    assert alert.techniques == ["T1530"]
    assert [item.event_id for item in alert.evidence] == [
        "5b0c1e2a-8f3d-4d6e-9a71-0c2b3d4e5f60",
        "6c1d2f3b-904e-4e7f-8b82-1d3c4e5f6071",
    ]
    assert [item.source for item in alert.evidence] == ["cloudtrail", "cloudtrail"]
    assert alert.first_seen == datetime(2026, 11, 20, 8, 0, 10, tzinfo=UTC)
    assert alert.last_seen == datetime(2026, 11, 20, 8, 12, 40, tzinfo=UTC)
    assert alert.entry.pod is None
    assert alert.details["duration_seconds"] == "750"
    assert alert.details["change_action"] == "PutBucketAcl"
    assert alert.details["reverted_by"] == "arn:aws:iam::210987654321:user/dave"


def test_alert_severity_by_duration() -> None:
    long_open = exposure_alert(acl_finding())
    (short, _) = run(new_tracker(), fixture_events("invictus-security-group.json"))
    short_open = exposure_alert(short)

    assert long_open.severity is Severity.CRITICAL
    assert 90 <= long_open.score <= 100
    assert short_open.severity is Severity.HIGH
    assert 70 <= short_open.score < 90


def test_alert_ids_deterministic() -> None:
    first = exposure_alert(acl_finding())
    second = exposure_alert(acl_finding())
    other = exposure_alert(run(new_tracker(), fixture_events("s3-policy-string.json"))[0])

    assert first.chain_id == second.chain_id
    assert first.alert_id == second.alert_id
    assert first.alert_id != first.chain_id
    assert other.chain_id != first.chain_id
    assert first.chain_id == exposure_chain_id(acl_finding())


def test_alert_round_trip() -> None:
    alert = exposure_alert(acl_finding())

    decoded = msgspec.json.decode(msgspec.json.encode(alert), type=Alert)

    assert decoded == alert
