"""OCSF Detection Findings: the mapping, checked with py-ocsf-models, and `export ocsf`."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from py_ocsf_models import OCSF_VERSION as LIBRARY_OCSF_VERSION
from py_ocsf_models.events.findings.detection_finding import DetectionFinding

from pivotwatch.connectors.producer import RecordProducer
from pivotwatch.outputs.alert_stream import AlertStream
from pivotwatch.outputs.ocsf import StreamWriter, TopicWriter, export_ocsf
from pivotwatch.schemas.alert import Alert, AlertKind
from pivotwatch.schemas.ocsf import OCSF_VERSION, detection_finding
from pivotwatch.settings import Settings
from pivotwatch.streams.runner import read_topic
from pivotwatch.streams.topics import ensure_topics


def library_differences(finding: dict[str, Any]) -> list[str]:
    """Validate with py-ocsf-models and list every attribute that its model dropped or changed.

    The models ignore unknown attributes, so a round trip that loses one shows a name
    that OCSF 1.5.0 does not define.
    """
    model = DetectionFinding.model_validate(finding)
    return _differences(finding, model.model_dump(mode="json", exclude_unset=True), "")


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = [f"{path}.{name}: not in the OCSF model" for name in expected if name not in actual]
        for name in expected.keys() & actual.keys():
            found.extend(_differences(expected[name], actual[name], f"{path}.{name}"))
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            diff
            for index, pair in enumerate(zip(expected, actual, strict=True))
            for diff in _differences(*pair, f"{path}[{index}]")
        ]
    return [] if expected == actual else [f"{path}: {expected!r} became {actual!r}"]


def first_alert(alerts: list[Alert], kind: AlertKind) -> Alert:
    return next(alert for alert in alerts if alert.kind is kind)


def test_ocsf_version_matches_library() -> None:
    assert OCSF_VERSION == LIBRARY_OCSF_VERSION


def test_recorded_alerts_validate_as_detection_findings(recorded_alerts: list[Alert]) -> None:
    for alert in recorded_alerts:
        assert library_differences(detection_finding(alert)) == [], alert.chain_id


def test_finding_class_and_category(recorded_alerts: list[Alert]) -> None:
    finding = detection_finding(recorded_alerts[0])
    assert finding["class_uid"] == 2004
    assert finding["category_uid"] == 2
    assert finding["type_uid"] == 200401


def test_first_revision_is_create(recorded_alerts: list[Alert]) -> None:
    finding = detection_finding(recorded_alerts[0])
    assert finding["activity_id"] == 1
    assert finding["activity_name"] == "Create"


def test_later_revision_is_update(recorded_alerts: list[Alert]) -> None:
    finding = detection_finding(msgspec.structs.replace(recorded_alerts[0], revision=3))
    assert finding["activity_id"] == 2
    assert finding["type_uid"] == 200402
    assert library_differences(finding) == []


def test_finding_info_uid_is_chain_id(recorded_alerts: list[Alert]) -> None:
    alert = first_alert(recorded_alerts, AlertKind.PIVOT_CHAIN)
    info = detection_finding(alert)["finding_info"]
    assert info["uid"] == alert.chain_id
    assert info["title"] == alert.title


def test_times_are_event_time_in_milliseconds(recorded_alerts: list[Alert]) -> None:
    alert = first_alert(recorded_alerts, AlertKind.PIVOT_CHAIN)
    finding = detection_finding(alert)
    assert finding["time"] == int(alert.last_seen.timestamp() * 1000)
    assert finding["start_time"] == int(alert.first_seen.timestamp() * 1000)
    assert finding["finding_info"]["first_seen_time"] == finding["start_time"]


def test_time_keeps_milliseconds() -> None:
    alert = msgspec.json.decode(
        orjson.dumps(
            {
                "alert_id": "a",
                "chain_id": "c",
                "revision": 1,
                "kind": "single_stage",
                "title": "t",
                "severity": "low",
                "score": 10,
                "account": "111122223333",
                "entry": {},
                "identities": [],
                "stages": [],
                "techniques": [],
                "evidence": [],
                "first_seen": "2026-11-30T08:02:11.482913Z",
                "last_seen": "2026-11-30T08:02:11.999999Z",
            }
        ),
        type=Alert,
    )
    finding = detection_finding(alert)
    assert finding["start_time"] // 1000 == int(
        datetime(2026, 11, 30, 8, 2, 11, tzinfo=UTC).timestamp()
    )
    assert finding["start_time"] % 1000 == 482
    assert finding["time"] % 1000 == 999


@pytest.mark.parametrize(
    ("severity", "severity_id"),
    [("info", 1), ("low", 2), ("medium", 3), ("high", 4), ("critical", 5)],
)
def test_severity_id_mapping(recorded_alerts: list[Alert], severity: str, severity_id: int) -> None:
    finding = detection_finding(msgspec.structs.replace(recorded_alerts[0], severity=severity))
    assert finding["severity_id"] == severity_id


def test_attacks_pair_tactic_and_technique(recorded_alerts: list[Alert]) -> None:
    alert = first_alert(recorded_alerts, AlertKind.PIVOT_CHAIN)
    attacks = detection_finding(alert)["finding_info"]["attacks"]
    imds = [
        attack for attack in attacks if attack.get("sub_technique", {}).get("uid") == "T1552.005"
    ]
    assert imds == [
        {
            "technique": {"uid": "T1552", "name": "Unsecured Credentials"},
            "sub_technique": {"uid": "T1552.005", "name": "Cloud Instance Metadata API"},
            "tactic": {"uid": "TA0006", "name": "Credential Access"},
        }
    ]


def test_attacks_cover_every_technique(recorded_alerts: list[Alert]) -> None:
    for alert in recorded_alerts:
        attacks = detection_finding(alert)["finding_info"]["attacks"]
        named = {attack.get("sub_technique", attack["technique"])["uid"] for attack in attacks}
        assert named == set(alert.techniques), alert.chain_id


def test_resources_name_instance_role_and_bucket(recorded_alerts: list[Alert]) -> None:
    alert = first_alert(recorded_alerts, AlertKind.PIVOT_CHAIN)
    resources = {(item["type"], item["uid"]) for item in detection_finding(alert)["resources"]}
    assert ("AWS::IAM::Role", "arn:aws:iam::210987654321:role/payments-prod-node-role") in resources
    assert ("AWS::EC2::Instance", "i-04c9e2b7a1f3d8650") in resources
    assert ("AWS::S3::Bucket", "arn:aws:s3:::payments-prod-backups") in resources
    assert ("k8s.io/Pod", "checkout/web-6f8d9c7b5-q4xzt") in resources


def test_resources_name_gcp_service_account(recorded_alerts: list[Alert]) -> None:
    alert = next(
        a
        for a in recorded_alerts
        if a.kind is AlertKind.PIVOT_CHAIN and a.account == "acme-prod-314159"
    )
    resources = {(item["type"], item["uid"]) for item in detection_finding(alert)["resources"]}
    assert (
        "iam.googleapis.com/ServiceAccount",
        "ml-trainer@acme-prod-314159.iam.gserviceaccount.com",
    ) in resources
    assert ("k8s.io/ServiceAccount", "ml/trainer") in resources


def test_evidences_keep_every_item(recorded_alerts: list[Alert]) -> None:
    alert = first_alert(recorded_alerts, AlertKind.PIVOT_CHAIN)
    evidences = detection_finding(alert)["evidences"]
    assert [item["data"]["event_id"] for item in evidences] == [
        item.event_id for item in alert.evidence
    ]


def test_metadata_names_product_and_version(recorded_alerts: list[Alert]) -> None:
    metadata = detection_finding(recorded_alerts[0])["metadata"]
    assert metadata["product"]["name"] == "pivotwatch"
    assert metadata["version"] == "1.5.0"


def test_gcp_alert_has_gcp_cloud(recorded_alerts: list[Alert]) -> None:
    alert = next(a for a in recorded_alerts if a.account == "acme-prod-314159")
    assert detection_finding(alert)["cloud"]["provider"] == "GCP"


class ListStream:
    """An AlertStream stand-in over a list, for the loop of `export_ocsf` without a broker."""

    def __init__(self, alerts: list[Alert]) -> None:
        from pivotwatch.outputs.alert_stream import AlertMessage

        self.messages = [
            AlertMessage(alert, "alerts", 0, offset) for offset, alert in enumerate(alerts)
        ]
        self.committed: list[int] = []
        self.invalid = 0

    def batches(self, max_records: int, idle_seconds: float | None = None) -> Any:
        for start in range(0, len(self.messages), max_records):
            yield self.messages[start : start + max_records]

    def commit(self, messages: Any) -> None:
        self.committed.extend(message.offset for message in messages)


def test_export_ocsf_writes_json_lines(recorded_alerts: list[Alert]) -> None:
    output = io.BytesIO()
    stream = ListStream(recorded_alerts)
    summary = export_ocsf(stream, StreamWriter(output), batch_size=3)  # type: ignore[arg-type]
    lines = output.getvalue().splitlines()
    assert summary.findings == len(recorded_alerts)
    assert [orjson.loads(line)["finding_info"]["uid"] for line in lines] == [
        a.chain_id for a in recorded_alerts
    ]
    assert stream.committed == list(range(len(recorded_alerts)))


def test_export_ocsf_stops_at_max_alerts(recorded_alerts: list[Alert]) -> None:
    output = io.BytesIO()
    stream = ListStream(recorded_alerts)
    summary = export_ocsf(stream, StreamWriter(output), batch_size=3, max_alerts=4)  # type: ignore[arg-type]
    assert summary.findings == 4
    assert len(output.getvalue().splitlines()) == 4
    assert stream.committed == [0, 1, 2, 3]


@pytest.mark.integration
def test_export_ocsf_topic_to_topic(
    kafka_bootstrap: str, topic_prefix: str, recorded_alerts: list[Alert]
) -> None:
    settings = Settings(
        kafka={"bootstrap": kafka_bootstrap}, topics={"alerts": f"{topic_prefix}.alerts"}
    )
    findings_topic = f"{topic_prefix}.ocsf"
    ensure_topics(settings, [settings.topics.alerts, findings_topic])
    with RecordProducer(settings.kafka) as producer:
        for alert in recorded_alerts:
            producer.send(
                settings.topics.alerts, alert.chain_id.encode(), msgspec.json.encode(alert)
            )
        producer.send(settings.topics.alerts, b"bad", b"not an alert")
        producer.flush()

    writer = TopicWriter(settings.kafka, findings_topic)
    try:
        with AlertStream(settings, f"{topic_prefix}-export") as stream:
            summary = export_ocsf(stream, writer, idle_seconds=5.0)
    finally:
        writer.close()

    findings = [orjson.loads(value) for value in read_topic(settings, findings_topic)]
    assert summary.findings == len(recorded_alerts)
    assert summary.invalid_alerts == 1
    assert sorted(f["finding_info"]["uid"] for f in findings) == sorted(
        a.chain_id for a in recorded_alerts
    )
    for finding in findings:
        assert library_differences(finding) == []


@pytest.mark.integration
@pytest.mark.shared
def test_scenario_alerts_validate_as_detection_findings(
    scenario_alert_messages: dict[str, list[bytes]],
) -> None:
    decoder = msgspec.json.Decoder(Alert)
    for folder, messages in scenario_alert_messages.items():
        for message in messages:
            assert library_differences(detection_finding(decoder.decode(message))) == [], folder
