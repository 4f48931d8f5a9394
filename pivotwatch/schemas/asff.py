"""Mapping of alerts to AWS Security Finding Format (ASFF) findings for Security Hub.

`asff_finding` turns one alert revision into one ASFF finding (``SchemaVersion``
2018-10-08) whose ``Id`` is the chain id, so each revision replaces the chain's finding.
The finding belongs to the importing account's default product
(``arn:aws:securityhub:<region>:<account>:product/<account>/default``), because Security
Hub accepts findings of that product only for the account that imports them. The
alert's own account or GCP project is kept in ``ProductFields`` and in the resources.

ASFF limits honoured here: ``Title`` 256 characters, ``Description`` 1024,
``Resources`` 32 items, ``RelatedFindings`` 10, ``ProductFields`` values 2048
characters and 50 pairs (pivotwatch uses at most `MAX_PRODUCT_FIELDS`, leaving room for
the pairs that Security Hub adds). A finding's JSON must stay under 240 KB;
`fit_finding` drops evidence until it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from pivotwatch import __version__
from pivotwatch.schemas.alert import Alert, AlertKind, Evidence, Severity
from pivotwatch.schemas.alert_resources import AlertResource, ResourceKind, alert_resources

__all__ = [
    "ASFF_SCHEMA_VERSION",
    "MAX_FINDING_BYTES",
    "AsffContext",
    "asff_finding",
    "default_product_arn",
    "finding_size",
    "fit_finding",
]

ASFF_SCHEMA_VERSION = "2018-10-08"
MAX_FINDING_BYTES = 240 * 1024
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_RESOURCES = 32
MAX_RELATED_FINDINGS = 10
MAX_PRODUCT_FIELD_VALUE = 2048
MAX_PRODUCT_FIELDS = 45
EVIDENCE_PREFIX = "pivotwatch/evidence/"

SEVERITY_LABELS: dict[Severity, str] = {
    Severity.INFO: "INFORMATIONAL",
    Severity.LOW: "LOW",
    Severity.MEDIUM: "MEDIUM",
    Severity.HIGH: "HIGH",
    Severity.CRITICAL: "CRITICAL",
}

STAGE_TYPES: dict[str, str] = {
    "initial-access": "TTPs/Initial Access",
    "execution": "TTPs/Execution",
    "persistence": "TTPs/Persistence",
    "privilege-escalation": "TTPs/Privilege Escalation",
    "defense-evasion": "TTPs/Defense Evasion",
    "stealth": "TTPs/Defense Evasion",
    "defense-impairment": "TTPs/Defense Evasion",
    "credential-access": "TTPs/Credential Access",
    "discovery": "TTPs/Discovery",
    "lateral-movement": "TTPs/Lateral Movement",
    "collection": "TTPs/Collection",
    "command-and-control": "TTPs/Command and Control",
    "exfiltration": "Effects/Data Exfiltration",
}
"""ASFF finding type of each ATT&CK tactic.

ASFF's TTPs namespace has no exfiltration or impact category, so exfiltration maps to
``Effects/Data Exfiltration`` and impact, whose effect varies, to no type.
"""

RESOURCE_TYPES: dict[ResourceKind, str] = {
    ResourceKind.EC2_INSTANCE: "AwsEc2Instance",
    ResourceKind.IAM_ROLE: "AwsIamRole",
    ResourceKind.IAM_USER: "AwsIamUser",
    ResourceKind.S3_BUCKET: "AwsS3Bucket",
    ResourceKind.SECURITY_GROUP: "AwsEc2SecurityGroup",
}
"""ASFF resource type of each AWS resource kind; the other kinds are ``Other``."""

_AWS_ACCOUNT = re.compile(r"^\d{12}$")


@dataclass(frozen=True)
class AsffContext:
    """Inputs of a finding besides the alert: the importing account and the import time."""

    account_id: str
    region: str
    updated_at: datetime
    """When this revision is imported: the finding record's ``UpdatedAt``."""
    partition: str = "aws"
    related_ids: tuple[str, ...] = field(default=())
    """Ids of other pivotwatch findings that share evidence with this one."""

    @property
    def product_arn(self) -> str:
        return default_product_arn(self.region, self.account_id, self.partition)


def default_product_arn(region: str, account_id: str, partition: str = "aws") -> str:
    """Return the ARN of an account's default Security Hub product, used for custom findings."""
    return f"arn:{partition}:securityhub:{region}:{account_id}:product/{account_id}/default"


def asff_finding(alert: Alert, context: AsffContext) -> dict[str, Any]:
    """Map one alert revision to an ASFF finding, as the dict that BatchImportFindings takes.

    ``CreatedAt`` and ``FirstObservedAt`` are the alert's first event time,
    ``LastObservedAt`` its last, and ``UpdatedAt`` the import time from ``context``.
    """
    label = SEVERITY_LABELS[alert.severity]
    types = finding_types(alert)
    related = [
        {"ProductArn": context.product_arn, "Id": uid}
        for uid in context.related_ids[:MAX_RELATED_FINDINGS]
    ]
    first_seen = _timestamp(alert.first_seen)
    updated_at = max(_timestamp(context.updated_at), first_seen)

    finding: dict[str, Any] = {
        "SchemaVersion": ASFF_SCHEMA_VERSION,
        "Id": alert.chain_id,
        "ProductArn": context.product_arn,
        "ProductName": "pivotwatch",
        "CompanyName": "pivotwatch",
        "GeneratorId": f"pivotwatch/{alert.kind}",
        "AwsAccountId": context.account_id,
        "Region": context.region,
        "Types": types,
        "CreatedAt": first_seen,
        "UpdatedAt": updated_at,
        "FirstObservedAt": first_seen,
        "LastObservedAt": _timestamp(alert.last_seen),
        "Severity": {"Label": label, "Original": str(alert.score)},
        "Title": _truncate(alert.title, MAX_TITLE),
        "Description": _truncate(_description(alert), MAX_DESCRIPTION),
        "Resources": _resources(alert, context),
        "ProductFields": _product_fields(alert),
        "RecordState": "ACTIVE",
        "Workflow": {"Status": "NEW"},
        "FindingProviderFields": {
            "Severity": {"Label": label, "Original": str(alert.score)},
            "Types": types,
        },
    }
    if related:
        finding["RelatedFindings"] = related
        finding["FindingProviderFields"]["RelatedFindings"] = related
    return finding


def finding_types(alert: Alert) -> list[str]:
    """Return ASFF ``Types``: one per stage, ``Effects/Data Exposure`` for a transient exposure."""
    if alert.kind is AlertKind.TRANSIENT_EXPOSURE:
        return ["Effects/Data Exposure"]
    types = [STAGE_TYPES[stage] for stage in alert.stages if stage in STAGE_TYPES]
    return list(dict.fromkeys(types)) or ["Unusual Behaviors/User"]


def _timestamp(time: datetime) -> str:
    """Return an ASFF timestamp: RFC 3339 in UTC with milliseconds and a ``Z``."""
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{time.microsecond // 1000:03d}Z"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _description(alert: Alert) -> str:
    entry = (
        ", ".join(f"{name}={value}" for name, value in _entry_fields(alert).items() if value)
        or "none"
    )
    stages = " > ".join(alert.stages) or "none"
    identities = ", ".join(alert.identities) or "none"
    return (
        f"pivotwatch {alert.kind} in {alert.account}, "
        f"score {alert.score}, revision {alert.revision}. "
        f"Entry: {entry}. Stages: {stages}. Techniques: {', '.join(alert.techniques) or 'none'}. "
        f"Identities: {identities}."
    )


def _resources(alert: Alert, context: AsffContext) -> list[dict[str, Any]]:
    """ASFF resources: the alert's resources, or its account when it names none (ASFF needs one)."""
    found = [_resource(resource, context) for resource in alert_resources(alert)[:MAX_RESOURCES]]
    if found:
        return found
    if _AWS_ACCOUNT.match(alert.account):
        return [
            {
                "Type": "AwsAccount",
                "Id": f"AWS::::Account:{alert.account}",
                "Partition": context.partition,
            }
        ]
    return [
        {
            "Type": "Other",
            "Id": f"projects/{alert.account}",
            "Details": {"Other": {"kind": "gcp_project"}},
        }
    ]


def _resource(resource: AlertResource, context: AsffContext) -> dict[str, Any]:
    asff_type = RESOURCE_TYPES.get(resource.kind, "Other")
    item: dict[str, Any] = {"Type": asff_type, "Id": resource.uid}
    if resource.uid.startswith("arn:"):
        item["Partition"] = resource.partition
    if resource.region:
        item["Region"] = resource.region
    other = {"kind": str(resource.kind), "name": resource.name}
    if resource.account:
        other["account"] = resource.account
    item["Details"] = {"Other": other}
    return item


def _product_fields(alert: Alert) -> dict[str, str]:
    fields = {
        "pivotwatch/version": __version__,
        "pivotwatch/schema_version": alert.schema_version,
        "pivotwatch/kind": str(alert.kind),
        "pivotwatch/chain_id": alert.chain_id,
        "pivotwatch/alert_id": alert.alert_id,
        "pivotwatch/revision": str(alert.revision),
        "pivotwatch/score": str(alert.score),
        "pivotwatch/account": alert.account,
        "pivotwatch/techniques": ",".join(alert.techniques),
        "pivotwatch/stages": ",".join(alert.stages),
        "pivotwatch/identities": ",".join(alert.identities),
        "pivotwatch/rules": ",".join(alert.rules),
        "pivotwatch/evidence_count": str(len(alert.evidence)),
    }
    for name, value in _entry_fields(alert).items():
        if value:
            fields[f"pivotwatch/entry/{name}"] = value
    for name, value in alert.details.items():
        fields[f"pivotwatch/details/{name}"] = value

    room = MAX_PRODUCT_FIELDS - len(fields)
    for index, item in enumerate(_kept_evidence(alert.evidence, room)):
        fields[f"{EVIDENCE_PREFIX}{index:03d}"] = _evidence_line(item)
    return {
        name: _truncate(value, MAX_PRODUCT_FIELD_VALUE) for name, value in fields.items() if value
    }


def _kept_evidence(evidence: list[Evidence], room: int) -> list[Evidence]:
    """Return at most ``room`` evidence items: the first half and the latest half."""
    if room <= 0:
        return []
    if len(evidence) <= room:
        return evidence
    latest = room // 2
    return evidence[: room - latest] + (evidence[-latest:] if latest else [])


def _evidence_line(item: Evidence) -> str:
    return f"{_timestamp(item.time)} {item.source} {item.event_id}: {item.summary}"


def _entry_fields(alert: Alert) -> dict[str, str | None]:
    entry = alert.entry
    return {
        "cluster": entry.cluster,
        "namespace": entry.namespace,
        "pod": entry.pod,
        "container_id": entry.container_id,
        "host": entry.host,
    }


def finding_size(finding: dict[str, Any]) -> int:
    """Return the size of a finding's JSON in bytes, as BatchImportFindings counts it."""
    return len(orjson.dumps(finding))


def fit_finding(finding: dict[str, Any], limit: int = MAX_FINDING_BYTES) -> dict[str, Any] | None:
    """Return the finding trimmed to ``limit`` bytes by dropping evidence, or None if it cannot fit.

    Evidence fields are dropped newest first until the finding fits; the count of
    dropped items is kept in ``pivotwatch/evidence_dropped``.
    """
    if finding_size(finding) <= limit:
        return finding
    fields = dict(finding["ProductFields"])
    evidence_keys = sorted(
        (name for name in fields if name.startswith(EVIDENCE_PREFIX)), reverse=True
    )
    for dropped, name in enumerate(evidence_keys, start=1):
        del fields[name]
        fields["pivotwatch/evidence_dropped"] = str(dropped)
        trimmed = {**finding, "ProductFields": fields}
        if finding_size(trimmed) <= limit:
            return trimmed
    return None
