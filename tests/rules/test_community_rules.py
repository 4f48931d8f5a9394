"""SigmaHQ's AWS CloudTrail rules, loaded unmodified from the shared folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.rules.rule_records import RecordBuilder

from pivotwatch.correlator.sigma import RuleSet, load_rule_files
from pivotwatch.schemas.event import Source

pytestmark = pytest.mark.shared

ROOT_USER = {"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"}

# rule id: (matching patch, non-matching patch), applied to the CloudTrail base record.
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # aws_cloudtrail_disable_logging
    "4db60cc0-36fb-42b7-9b58-a5b53019fb74": (
        {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"},
        {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StartLogging"},
    ),
    # aws_cloudtrail_guardduty_detector_deleted_or_updated: null errorCode, update disabling
    "d2656e78-c069-4571-8220-9e0ab5913f19": (
        {
            "eventSource": "guardduty.amazonaws.com",
            "eventName": "UpdateDetector",
            "requestParameters": {"detectorId": "12abc34d", "enable": False},
        },
        {
            "eventSource": "guardduty.amazonaws.com",
            "eventName": "UpdateDetector",
            "requestParameters": {"detectorId": "12abc34d", "enable": True},
        },
    ),
    # aws_iam_backdoor_users_keys: "contains" of a literal text, so another user's key matches
    "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2": (
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateAccessKey",
            "responseElements": {"accessKey": {"userName": "svc-metrics-sync"}},
        },
        {"eventSource": "iam.amazonaws.com", "eventName": "DeleteAccessKey"},
    ),
    # aws_update_login_profile: fieldref filter drops a user changing its own password
    "055fb148-60f8-462d-ad16-26926ce050f1": (
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateLoginProfile",
            "requestParameters": {"userName": "bob"},
        },
        {
            "eventSource": "iam.amazonaws.com",
            "eventName": "UpdateLoginProfile",
            "userIdentity": {"type": "IAMUser", "arn": "bob"},
            "requestParameters": {"userName": "bob"},
        },
    ),
    # aws_disable_bucket_versioning: contains on a whole object
    "a136ac98-b2bc-4189-a14d-f0d0388e57a7": (
        {
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutBucketVersioning",
            "requestParameters": {
                "bucketName": "acme-backups",
                "VersioningConfiguration": {"Status": "Suspended"},
            },
        },
        {
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutBucketVersioning",
            "requestParameters": {
                "bucketName": "acme-backups",
                "VersioningConfiguration": {"Status": "Enabled"},
            },
        },
    ),
    # aws_ec2_vm_export_failure: "not 1 of filter*" with contains '*'
    "54b9a76a-3c71-4673-b4b3-2edb4566ea7b": (
        {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "CreateInstanceExportTask",
            "responseElements": {"exportTask": {"state": "active"}},
        },
        {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "CreateInstanceExportTask",
            "errorCode": "Client.InvalidParameter",
        },
    ),
    # aws_cloudtrail_imds_malicious_usage: regex on the ARN
    "352a918a-34d8-4882-8470-44830c507aa3": (
        {
            "eventSource": "s3.amazonaws.com",
            "eventName": "ListBuckets",
            "sourceIPAddress": "198.51.100.23",
            "userIdentity": {
                "arn": "arn:aws:sts::111122223333:assumed-role/aws:ec2-instance/i-0c1d"
            },
        },
        {"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets"},
    ),
    # aws_root_account_usage: "and not" on the event type
    "8ad1600d-e9dc-4251-b0ee-a65268f29add": (
        {"userIdentity": ROOT_USER},
        {"userIdentity": ROOT_USER, "eventType": "AwsServiceEvent"},
    ),
    # aws_enum_buckets: ListBuckets except by assumed roles
    "f305fd62-beca-47da-ad95-7690a0620084": (
        {
            "eventSource": "s3.amazonaws.com",
            "eventName": "ListBuckets",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/bob"},
        },
        {"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets"},
    ),
    # aws_cloudtrail_bucket_deleted: "1 of selection_status_*" with a null value
    "39c9f26d-6e3b-4dbb-9c7a-4154b0281112": (
        {"eventSource": "s3.amazonaws.com", "eventName": "DeleteBucket"},
        {
            "eventSource": "s3.amazonaws.com",
            "eventName": "DeleteBucket",
            "errorCode": "AccessDenied",
        },
    ),
    # aws_cloudtrail_security_group_change_ingress_egress
    "6fb77778-040f-4015-9440-572aa9b6b580": (
        {"eventSource": "ec2.amazonaws.com", "eventName": "AuthorizeSecurityGroupIngress"},
        {"eventSource": "ec2.amazonaws.com", "eventName": "DescribeSecurityGroups"},
    ),
    # aws_sts_assumerole_misuse: nested field equality
    "905d389b-b853-46d0-9d3d-dea0d3a3cd49": (
        {},
        {"userIdentity": {"type": "IAMUser", "sessionContext": None}},
    ),
}


@pytest.fixture(scope="module")
def community_dir(shared_dir: Path) -> Path:
    return shared_dir / "sigma" / "aws-cloudtrail"


@pytest.fixture(scope="module")
def community_rules(community_dir: Path) -> RuleSet:
    return RuleSet.load([community_dir], bundled=False)


def test_community_rules_all_load(community_dir: Path) -> None:
    report = load_rule_files([community_dir])
    assert [str(error) for error in report.rejected] == []
    assert len(report.rules) == 57


def test_community_samples_cover_ten_rules(community_rules: RuleSet) -> None:
    loaded = {rule.rule_id for rule in community_rules.rules}
    assert len(SAMPLES) >= 10
    assert set(SAMPLES) <= loaded


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_community_rule_matches(
    community_rules: RuleSet, build_record: RecordBuilder, rule_id: str
) -> None:
    record = build_record(Source.CLOUDTRAIL, SAMPLES[rule_id][0])
    matched = {match.rule_id for match in community_rules.match_record(Source.CLOUDTRAIL, record)}
    assert rule_id in matched


@pytest.mark.parametrize("rule_id", sorted(SAMPLES))
def test_community_rule_ignores(
    community_rules: RuleSet, build_record: RecordBuilder, rule_id: str
) -> None:
    record = build_record(Source.CLOUDTRAIL, SAMPLES[rule_id][1])
    matched = {match.rule_id for match in community_rules.match_record(Source.CLOUDTRAIL, record)}
    assert rule_id not in matched


def test_community_rules_carry_attack_tactics(community_rules: RuleSet) -> None:
    stop_logging = next(
        rule
        for rule in community_rules.rules
        if rule.rule_id == "4db60cc0-36fb-42b7-9b58-a5b53019fb74"
    )
    assert stop_logging.tactics == ("defense-impairment",)
    assert stop_logging.techniques == ("T1685.002",)
