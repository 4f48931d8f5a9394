"""Security Hub export against moto's server on loopback, read back with GetFindings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import msgspec
import pytest
import requests
from botocore.awsrequest import AWSResponse
from moto.server import ThreadedMotoServer

from pivotwatch.outputs.securityhub import (
    MAX_BATCH_FINDINGS,
    RetryPolicy,
    SecurityHubError,
    SecurityHubExporter,
    batch_findings,
)
from pivotwatch.schemas.alert import Alert, AlertKind, Evidence
from pivotwatch.schemas.asff import (
    MAX_FINDING_BYTES,
    AsffContext,
    asff_finding,
    finding_size,
    fit_finding,
)

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
PRODUCT_ARN = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
REQUIRED_FIELDS = (
    "SchemaVersion",
    "Id",
    "ProductArn",
    "GeneratorId",
    "AwsAccountId",
    "Types",
    "CreatedAt",
    "UpdatedAt",
    "Severity",
    "Title",
    "Description",
    "Resources",
)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def client(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return boto3.client(
        "securityhub",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        config=boto3.session.Config(
            retries={"total_max_attempts": 1}
        ),  # retries are the exporter's
    )


def exporter_for(client: Any, **options: Any) -> SecurityHubExporter:
    return SecurityHubExporter(
        client,
        account_id=ACCOUNT,
        region=REGION,
        clock=lambda: NOW,
        sleep=lambda _: None,
        **options,
    )


def imported_findings(client: Any) -> dict[str, dict[str, Any]]:
    findings: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("get_findings").paginate():
        findings.update({finding["Id"]: finding for finding in page["Findings"]})
    return findings


def revised(alert: Alert, revision: int, **changes: Any) -> Alert:
    return msgspec.structs.replace(
        alert, revision=revision, alert_id=f"{alert.alert_id}-{revision}", **changes
    )


def synthetic_alerts(count: int, template: Alert) -> list[Alert]:
    return [
        msgspec.structs.replace(template, chain_id=f"chain-{index:04d}") for index in range(count)
    ]


def test_export_imports_one_finding_per_chain(client: Any, recorded_alerts: list[Alert]) -> None:
    result = exporter_for(client).export(recorded_alerts)
    findings = imported_findings(client)
    assert result.imported == len({alert.chain_id for alert in recorded_alerts})
    assert result.failed == []
    assert set(findings) == {alert.chain_id for alert in recorded_alerts}


def test_imported_findings_have_required_fields(client: Any, recorded_alerts: list[Alert]) -> None:
    exporter_for(client).export(recorded_alerts)
    for finding in imported_findings(client).values():
        for name in REQUIRED_FIELDS:
            assert finding.get(name), f"{finding['Id']} lacks {name}"
        assert finding["SchemaVersion"] == "2018-10-08"
        assert finding["ProductArn"] == PRODUCT_ARN
        assert finding["AwsAccountId"] == ACCOUNT


def test_chain_finding_content(client: Any, recorded_alerts: list[Alert]) -> None:
    chain = next(alert for alert in recorded_alerts if alert.kind is AlertKind.PIVOT_CHAIN)
    exporter_for(client).export([chain])
    finding = imported_findings(client)[chain.chain_id]
    resources = {(item["Type"], item["Id"]) for item in finding["Resources"]}
    assert finding["Severity"]["Label"] == "CRITICAL"
    assert "TTPs/Credential Access" in finding["Types"]
    assert finding["GeneratorId"] == "pivotwatch/pivot_chain"
    assert finding["CreatedAt"] == "2026-11-30T08:02:11.482Z"
    assert finding["LastObservedAt"] == "2026-11-30T08:11:20.000Z"
    assert finding["UpdatedAt"] == "2026-12-01T09:00:00.000Z"
    assert ("AwsEc2Instance", "i-04c9e2b7a1f3d8650") in resources
    assert ("AwsIamRole", "arn:aws:iam::210987654321:role/payments-prod-node-role") in resources
    assert ("AwsS3Bucket", "arn:aws:s3:::payments-prod-backups") in resources
    assert ("Other", "checkout/web-6f8d9c7b5-q4xzt") in resources
    assert finding["ProductFields"]["pivotwatch/techniques"].split(",") == chain.techniques
    assert finding["ProductFields"]["pivotwatch/account"] == "210987654321"


def test_gcp_chain_uses_importing_account(client: Any, recorded_alerts: list[Alert]) -> None:
    chain = next(
        a
        for a in recorded_alerts
        if a.kind is AlertKind.PIVOT_CHAIN and a.account == "acme-prod-314159"
    )
    exporter_for(client).export([chain])
    finding = imported_findings(client)[chain.chain_id]
    assert finding["AwsAccountId"] == ACCOUNT
    assert {item["Type"] for item in finding["Resources"]} == {"Other"}


def test_newer_revision_replaces_finding(client: Any, recorded_alerts: list[Alert]) -> None:
    exporter = exporter_for(client)
    alert = recorded_alerts[0]
    exporter.export([alert])
    exporter.export([revised(alert, 2, score=99)])
    finding = imported_findings(client)[alert.chain_id]
    assert finding["ProductFields"]["pivotwatch/revision"] == "2"
    assert finding["Severity"]["Original"] == "99"


def test_older_revision_is_skipped(client: Any, recorded_alerts: list[Alert]) -> None:
    exporter = exporter_for(client)
    alert = recorded_alerts[0]
    exporter.export([revised(alert, 3)])
    result = exporter.export([revised(alert, 2)])
    assert result.skipped_stale == 1
    assert result.imported == 0
    assert imported_findings(client)[alert.chain_id]["ProductFields"]["pivotwatch/revision"] == "3"


def test_restarted_exporter_reads_revision_back(client: Any, recorded_alerts: list[Alert]) -> None:
    alert = recorded_alerts[0]
    exporter_for(client).export([revised(alert, 3)])
    result = exporter_for(client).export([revised(alert, 2)])
    assert result.skipped_stale == 1
    assert imported_findings(client)[alert.chain_id]["ProductFields"]["pivotwatch/revision"] == "3"


def test_revisions_in_one_call_keep_newest(client: Any, recorded_alerts: list[Alert]) -> None:
    alert = recorded_alerts[0]
    result = exporter_for(client).export([revised(alert, 2), revised(alert, 4), revised(alert, 3)])
    assert result.imported == 1
    assert result.skipped_stale == 2
    assert imported_findings(client)[alert.chain_id]["ProductFields"]["pivotwatch/revision"] == "4"


def test_related_findings_link_shared_evidence(client: Any, recorded_alerts: list[Alert]) -> None:
    chain = next(alert for alert in recorded_alerts if alert.kind is AlertKind.PIVOT_CHAIN)
    part = msgspec.structs.replace(
        chain,
        chain_id="single-stage-part",
        kind=AlertKind.SINGLE_STAGE,
        evidence=chain.evidence[:1],
    )
    exporter = exporter_for(client)
    exporter.export([part])
    exporter.export([chain])
    finding = imported_findings(client)[chain.chain_id]
    assert finding["RelatedFindings"] == [{"ProductArn": PRODUCT_ARN, "Id": "single-stage-part"}]


def test_batches_hold_at_most_100_findings(client: Any, recorded_alerts: list[Alert]) -> None:
    sizes: list[int] = []

    def record_batch(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["Findings"]))

    client.meta.events.register(
        "provide-client-params.securityhub.BatchImportFindings", record_batch
    )
    result = exporter_for(client).export(synthetic_alerts(250, recorded_alerts[0]))
    assert sizes == [100, 100, 50]
    assert result.imported == 250
    assert len(imported_findings(client)) == 250


def test_batch_findings_respects_byte_limit(recorded_alerts: list[Alert]) -> None:
    context = AsffContext(ACCOUNT, REGION, NOW)
    findings = [asff_finding(alert, context) for alert in synthetic_alerts(10, recorded_alerts[0])]
    limit = finding_size(findings[0]) * 3
    batches = batch_findings(findings, max_bytes=limit)
    assert [len(batch) for batch in batches] == [3, 3, 3, 1]
    for batch in batches:
        assert sum(finding_size(finding) for finding in batch) <= limit


def test_batch_findings_respects_count_limit(recorded_alerts: list[Alert]) -> None:
    context = AsffContext(ACCOUNT, REGION, NOW)
    findings = [asff_finding(alert, context) for alert in synthetic_alerts(201, recorded_alerts[0])]
    assert [len(batch) for batch in batch_findings(findings)] == [
        MAX_BATCH_FINDINGS,
        MAX_BATCH_FINDINGS,
        1,
    ]


def test_fit_finding_drops_evidence_to_fit(recorded_alerts: list[Alert]) -> None:
    chain = next(alert for alert in recorded_alerts if alert.kind is AlertKind.PIVOT_CHAIN)
    finding = asff_finding(chain, AsffContext(ACCOUNT, REGION, NOW))
    limit = finding_size(finding) - 500
    fitted = fit_finding(finding, limit)
    assert fitted is not None
    assert finding_size(fitted) <= limit
    assert int(fitted["ProductFields"]["pivotwatch/evidence_dropped"]) >= 1


def test_large_alert_stays_under_240_kb(recorded_alerts: list[Alert]) -> None:
    chain = next(alert for alert in recorded_alerts if alert.kind is AlertKind.PIVOT_CHAIN)
    template = chain.evidence[0]
    evidence = [
        Evidence(
            source=template.source, event_id=f"e{index}", time=template.time, summary="x" * 5000
        )
        for index in range(500)
    ]
    huge = msgspec.structs.replace(
        chain,
        evidence=evidence,
        identities=[f"arn:aws:iam::210987654321:user/u{i}" for i in range(300)],
    )
    finding = fit_finding(asff_finding(huge, AsffContext(ACCOUNT, REGION, NOW)))
    assert finding is not None
    assert finding_size(finding) <= MAX_FINDING_BYTES
    assert len(finding["Resources"]) <= 32
    assert len(finding["ProductFields"]) <= 50


class Throttle:
    """A botocore before-send hook that returns HTTP 429 for the first ``count`` calls.

    moto cannot throttle, so this hook stands in for Security Hub on those calls.
    botocore parses the 429 response as it would parse AWS's.
    """

    def __init__(self, count: int, code: str) -> None:
        self.remaining = count
        self.code = code

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.remaining == 0:
            return None
        self.remaining -= 1
        body = json.dumps({"__type": self.code, "message": "Rate exceeded"}).encode()
        return AWSResponse(
            request.url,
            429,
            {"x-amzn-ErrorType": self.code, "Content-Type": "application/json"},
            RawBody(body),
        )


class RawBody:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.mark.parametrize("code", ["ThrottlingException", "TooManyRequestsException"])
def test_throttled_import_is_retried(client: Any, recorded_alerts: list[Alert], code: str) -> None:
    client.meta.events.register("before-send.securityhub.BatchImportFindings", Throttle(2, code))
    delays: list[float] = []
    exporter = SecurityHubExporter(
        client, account_id=ACCOUNT, region=REGION, clock=lambda: NOW, sleep=delays.append
    )
    result = exporter.export(recorded_alerts[:1])
    assert result.throttled == 2
    assert result.imported == 1
    assert len(delays) == 2
    assert recorded_alerts[0].chain_id in imported_findings(client)


def test_throttling_gives_up_after_max_attempts(client: Any, recorded_alerts: list[Alert]) -> None:
    client.meta.events.register(
        "before-send.securityhub.BatchImportFindings", Throttle(10, "ThrottlingException")
    )
    exporter = exporter_for(client, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(SecurityHubError, match="still throttled"):
        exporter.export(recorded_alerts[:1])


def test_rejected_finding_is_reported(client: Any, recorded_alerts: list[Alert]) -> None:
    rejected = recorded_alerts[1].chain_id

    def empty_resources(params: dict[str, Any], **_: Any) -> None:
        # moto rejects a finding without resources, so this makes the server reject one.
        for finding in params["Findings"]:
            if finding["Id"] == rejected:
                finding["Resources"] = []

    client.meta.events.register(
        "provide-client-params.securityhub.BatchImportFindings", empty_resources
    )
    exporter = exporter_for(client)
    result = exporter.export(recorded_alerts[:3])
    assert [failure.id for failure in result.failed] == [rejected]
    assert result.imported == 2
    assert rejected not in exporter.revisions
    assert rejected not in imported_findings(client)


def test_updated_at_never_precedes_created_at(recorded_alerts: list[Alert]) -> None:
    context = AsffContext(ACCOUNT, REGION, recorded_alerts[0].first_seen - timedelta(days=1))
    finding = asff_finding(recorded_alerts[0], context)
    assert finding["UpdatedAt"] >= finding["CreatedAt"]
