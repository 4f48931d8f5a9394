"""Mapping of alerts to OCSF Detection Findings (class 2004, OCSF 1.5.0).

`detection_finding` turns one alert revision into one OCSF event of the Findings
category. The finding's ``finding_info.uid`` is the chain id, so a SIEM that keeps one
finding per uid treats a chain's revisions as updates: revision 1 has activity Create,
later revisions activity Update. Times are the alert's event times in milliseconds
since the epoch, never the clock of the process that maps them.

The parts of an alert that OCSF has no attribute for (kind, score, stages, entry,
identities, details) are kept under ``unmapped.pivotwatch``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pivotwatch import __version__
from pivotwatch.correlator.sigma.attack import TECHNIQUE_TACTICS
from pivotwatch.schemas.alert import Alert, AlertKind, Evidence, Severity
from pivotwatch.schemas.alert_resources import AlertResource, ResourceKind, alert_resources

__all__ = [
    "DETECTION_FINDING_CLASS_UID",
    "FINDINGS_CATEGORY_UID",
    "OCSF_VERSION",
    "SEVERITY_IDS",
    "detection_finding",
]

OCSF_VERSION = "1.5.0"
FINDINGS_CATEGORY_UID = 2
DETECTION_FINDING_CLASS_UID = 2004
ACTIVITY_CREATE = 1
ACTIVITY_UPDATE = 2
STATUS_NEW = 1
ANALYTIC_RULE = 1
ANALYTIC_BEHAVIORAL = 2
ACCOUNT_TYPE_AWS = 10
ACCOUNT_TYPE_GCP = 5

SEVERITY_IDS: dict[Severity, tuple[int, str]] = {
    Severity.INFO: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}
"""OCSF ``severity_id`` and caption of each alert severity."""

TACTIC_IDS: dict[str, tuple[str, str]] = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource-development": ("TA0042", "Resource Development"),
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "command-and-control": ("TA0011", "Command and Control"),
    "impact": ("TA0040", "Impact"),
}
"""ATT&CK Enterprise tactic id and name of each tactic short name.

NOTE: ``stealth`` and ``defense-impairment``, the ATT&CK v18 split of defense evasion,
are missing because their tactic ids were not verified. Their OCSF tactic has a name
and no uid.
"""

TECHNIQUE_NAMES: dict[str, str] = {
    "T1033": "System Owner/User Discovery",
    "T1059": "Command and Scripting Interpreter",
    "T1059.004": "Unix Shell",
    "T1059.009": "Cloud API",
    "T1069": "Permission Groups Discovery",
    "T1069.003": "Cloud Groups",
    "T1070": "Indicator Removal",
    "T1078": "Valid Accounts",
    "T1078.004": "Cloud Accounts",
    "T1087": "Account Discovery",
    "T1087.004": "Cloud Account",
    "T1098": "Account Manipulation",
    "T1098.001": "Additional Cloud Credentials",
    "T1098.003": "Additional Cloud Roles",
    "T1105": "Ingress Tool Transfer",
    "T1136": "Create Account",
    "T1136.003": "Cloud Account",
    "T1485": "Data Destruction",
    "T1486": "Data Encrypted for Impact",
    "T1490": "Inhibit System Recovery",
    "T1496": "Resource Hijacking",
    "T1496.001": "Compute Hijacking",
    "T1526": "Cloud Service Discovery",
    "T1528": "Steal Application Access Token",
    "T1530": "Data from Cloud Storage",
    "T1531": "Account Access Removal",
    "T1537": "Transfer Data to Cloud Account",
    "T1548": "Abuse Elevation Control Mechanism",
    "T1548.005": "Temporary Elevated Cloud Access",
    "T1550": "Use Alternate Authentication Material",
    "T1550.001": "Application Access Token",
    "T1552": "Unsecured Credentials",
    "T1552.001": "Credentials In Files",
    "T1552.005": "Cloud Instance Metadata API",
    "T1552.007": "Container API",
    "T1555": "Credentials from Password Stores",
    "T1555.006": "Cloud Secrets Management Stores",
    "T1562": "Impair Defenses",
    "T1562.001": "Disable or Modify Tools",
    "T1562.007": "Disable or Modify Cloud Firewall",
    "T1562.008": "Disable or Modify Cloud Logs",
    "T1580": "Cloud Infrastructure Discovery",
    "T1609": "Container Administration Command",
    "T1610": "Deploy Container",
    "T1611": "Escape to Host",
    "T1613": "Container and Resource Discovery",
    "T1619": "Cloud Storage Object Discovery",
}
"""ATT&CK Enterprise names of the techniques that pivotwatch's rules tag.

A technique missing here is named by its id, because the OCSF technique object needs a name.
"""

RESOURCE_TYPES: dict[ResourceKind, str] = {
    ResourceKind.EC2_INSTANCE: "AWS::EC2::Instance",
    ResourceKind.IAM_ROLE: "AWS::IAM::Role",
    ResourceKind.IAM_USER: "AWS::IAM::User",
    ResourceKind.S3_BUCKET: "AWS::S3::Bucket",
    ResourceKind.SECURITY_GROUP: "AWS::EC2::SecurityGroup",
    ResourceKind.GCP_SERVICE_ACCOUNT: "iam.googleapis.com/ServiceAccount",
    ResourceKind.GCS_BUCKET: "storage.googleapis.com/Bucket",
    ResourceKind.GCE_INSTANCE: "compute.googleapis.com/Instance",
    ResourceKind.KUBERNETES_POD: "k8s.io/Pod",
    ResourceKind.KUBERNETES_SERVICE_ACCOUNT: "k8s.io/ServiceAccount",
}
"""OCSF ``resources[].type``.

AWS kinds have CloudFormation type names, GCP and Kubernetes kinds Cloud Asset Inventory names.
"""

_AWS_ACCOUNT = re.compile(r"^\d{12}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def detection_finding(alert: Alert) -> dict[str, Any]:
    """Map one alert revision to an OCSF 1.5.0 Detection Finding, as a JSON-ready dict."""
    activity_id = ACTIVITY_CREATE if alert.revision == 1 else ACTIVITY_UPDATE
    activity_name = "Create" if activity_id == ACTIVITY_CREATE else "Update"
    severity_id, severity = SEVERITY_IDS[alert.severity]

    finding: dict[str, Any] = {
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": FINDINGS_CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": DETECTION_FINDING_CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": DETECTION_FINDING_CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity_name}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": STATUS_NEW,
        "status": "New",
        "time": _milliseconds(alert.last_seen),
        "start_time": _milliseconds(alert.first_seen),
        "end_time": _milliseconds(alert.last_seen),
        "message": alert.title,
        "risk_score": alert.score,
        "metadata": _metadata(alert),
        "cloud": _cloud(alert.account),
        "finding_info": _finding_info(alert),
        "evidences": [_evidence(item) for item in alert.evidence],
        "resources": [_resource(resource) for resource in alert_resources(alert)],
        "unmapped": {"pivotwatch": _unmapped(alert)},
    }
    if not finding["resources"]:
        del finding["resources"]
    return finding


def _milliseconds(time: datetime) -> int:
    return (time - _EPOCH) // timedelta(milliseconds=1)


def _metadata(alert: Alert) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "uid": alert.alert_id,
        "correlation_uid": alert.chain_id,
        "profiles": ["cloud"],
        "product": {"name": "pivotwatch", "vendor_name": "pivotwatch", "version": __version__},
        "labels": [f"schema_version:{alert.schema_version}"],
    }


def _cloud(account: str) -> dict[str, Any]:
    if _AWS_ACCOUNT.match(account):
        return {
            "provider": "AWS",
            "account": {"uid": account, "name": account, "type_id": ACCOUNT_TYPE_AWS},
        }
    return {
        "provider": "GCP",
        "account": {"uid": account, "name": account, "type_id": ACCOUNT_TYPE_GCP},
    }


def _finding_info(alert: Alert) -> dict[str, Any]:
    info: dict[str, Any] = {
        "uid": alert.chain_id,
        "title": alert.title,
        "desc": _description(alert),
        "types": [str(alert.kind)],
        "first_seen_time": _milliseconds(alert.first_seen),
        "last_seen_time": _milliseconds(alert.last_seen),
        "data_sources": sorted({item.source for item in alert.evidence}),
        "analytic": _analytic(alert.kind),
        "attacks": attacks(alert.techniques, alert.stages),
    }
    if alert.rules:
        info["related_analytics"] = [
            {"uid": rule, "name": rule, "type_id": ANALYTIC_RULE} for rule in alert.rules
        ]
    return info


def _description(alert: Alert) -> str:
    stages = " > ".join(alert.stages) or "no ATT&CK stage"
    identities = ", ".join(alert.identities) or "no cloud identity"
    return (
        f"{alert.kind} with score {alert.score} (revision {alert.revision}) in {alert.account}: "
        f"{stages}. Identities: {identities}."
    )


def _analytic(kind: AlertKind) -> dict[str, Any]:
    if kind is AlertKind.PIVOT_CHAIN:
        return {
            "uid": f"pivotwatch.{kind}",
            "name": "pivotwatch pivot chain",
            "type_id": ANALYTIC_BEHAVIORAL,
        }
    return {
        "uid": f"pivotwatch.{kind}",
        "name": f"pivotwatch {kind.replace('_', ' ')}",
        "type_id": ANALYTIC_RULE,
    }


def attacks(techniques: list[str], stages: list[str]) -> list[dict[str, Any]]:
    """Build OCSF ``attacks``: one object per technique and tactic of the alert.

    A technique is paired with every alert stage that ATT&CK lists it under; a technique
    whose tactics are not among the stages is paired with no tactic. A sub-technique
    (``T1552.005``) fills ``sub_technique`` and names its parent in ``technique``.
    """
    found: list[dict[str, Any]] = []
    for technique in techniques:
        tactics = [tactic for tactic in _tactics_of(technique) if tactic in stages]
        base = _technique_objects(technique)
        if not tactics:
            found.append(base)
        for tactic in tactics:
            found.append({**base, "tactic": _tactic(tactic)})
    return found


def _tactics_of(technique: str) -> tuple[str, ...]:
    """Return the tactics ATT&CK lists a technique under, else those of its parent technique."""
    known = TECHNIQUE_TACTICS.get(technique)
    if known is not None:
        return known
    return TECHNIQUE_TACTICS.get(technique.partition(".")[0], ())


def _technique_objects(technique: str) -> dict[str, Any]:
    parent, _, sub = technique.partition(".")
    objects: dict[str, Any] = {
        "technique": {"uid": parent, "name": TECHNIQUE_NAMES.get(parent, parent)}
    }
    if sub:
        objects["sub_technique"] = {
            "uid": technique,
            "name": TECHNIQUE_NAMES.get(technique, technique),
        }
    return objects


def _tactic(stage: str) -> dict[str, Any]:
    known = TACTIC_IDS.get(stage)
    if known is None:
        return {"name": stage.replace("-", " ").title()}
    uid, name = known
    return {"uid": uid, "name": name}


def _evidence(item: Evidence) -> dict[str, Any]:
    return {
        "name": item.source,
        "data": {
            "source": item.source,
            "event_id": item.event_id,
            "time": _milliseconds(item.time),
            "summary": item.summary,
        },
    }


def _resource(resource: AlertResource) -> dict[str, Any]:
    details: dict[str, Any] = {
        "uid": resource.uid,
        "name": resource.name,
        "type": RESOURCE_TYPES[resource.kind],
    }
    if (
        resource.kind in (ResourceKind.KUBERNETES_POD, ResourceKind.KUBERNETES_SERVICE_ACCOUNT)
        and "/" in resource.uid
    ):
        details["namespace"] = resource.uid.partition("/")[0]
    if resource.uid.startswith("arn:"):
        details["cloud_partition"] = resource.partition
    if resource.region:
        details["region"] = resource.region
    return details


def _unmapped(alert: Alert) -> dict[str, Any]:
    return {
        "kind": str(alert.kind),
        "score": alert.score,
        "revision": alert.revision,
        "stages": list(alert.stages),
        "identities": list(alert.identities),
        "entry": {name: value for name, value in _entry_fields(alert).items() if value is not None},
        "details": dict(alert.details),
    }


def _entry_fields(alert: Alert) -> dict[str, str | None]:
    entry = alert.entry
    return {
        "cluster": entry.cluster,
        "namespace": entry.namespace,
        "pod": entry.pod,
        "container_id": entry.container_id,
        "host": entry.host,
    }
