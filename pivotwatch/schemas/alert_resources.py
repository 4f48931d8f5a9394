"""The cloud and Kubernetes resources that an alert names, for the output mappings.

An alert carries resources as text: identity ARNs and emails in ``identities``, the
target of each cloud call at the end of an evidence summary (``... on s3://bucket/key``),
the entry workload, and a transient exposure's ``details["resource"]``. `alert_resources`
reads them into typed `AlertResource` values, which the OCSF and ASFF mappings turn into
their own resource objects.

Only names that identify a resource without doubt are read: an instance-profile session
name (``i-0123...``) gives the EC2 instance, a ``service:name`` target of a CloudTrail
call is skipped because it cannot tell a role from a user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pivotwatch.schemas.alert import Alert

__all__ = ["AlertResource", "ResourceKind", "alert_resources"]


class ResourceKind(StrEnum):
    EC2_INSTANCE = "ec2_instance"
    IAM_ROLE = "iam_role"
    IAM_USER = "iam_user"
    S3_BUCKET = "s3_bucket"
    SECURITY_GROUP = "security_group"
    GCP_SERVICE_ACCOUNT = "gcp_service_account"
    GCS_BUCKET = "gcs_bucket"
    GCE_INSTANCE = "gce_instance"
    KUBERNETES_POD = "kubernetes_pod"
    KUBERNETES_SERVICE_ACCOUNT = "kubernetes_service_account"


@dataclass(frozen=True, slots=True)
class AlertResource:
    """One resource named by an alert."""

    kind: ResourceKind
    uid: str
    """Canonical id: an ARN for AWS (an EC2 instance of unknown region has its instance id),
    ``projects/...`` or an email for GCP, ``namespace/name`` for Kubernetes."""
    name: str
    account: str | None = None
    partition: str = "aws"
    """AWS partition of an ARN (``aws``, ``aws-cn``, ``aws-us-gov``); ``aws`` elsewhere."""
    region: str | None = None


_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>\d*):(?P<resource>.+)$"
)
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
_GCP_SERVICE_ACCOUNT = re.compile(
    r"^[a-z0-9-]+@(?:[a-z0-9-]+\.iam|developer|appspot|cloudservices)\.gserviceaccount\.com$"
)
_WORKLOAD_IDENTITY = re.compile(
    r"^serviceAccount:(?P<pool>[a-z0-9.-]+\.svc\.id\.goog)\[(?P<namespace>[^/\]]+)/(?P<name>[^\]]+)\]$"
)
_IRSA_SUBJECT = re.compile(r":system:serviceaccount:(?P<namespace>[^:]+):(?P<name>[^:]+)$")
_SUMMARY_TARGET = re.compile(r" on (?P<target>\S+)")
_S3_URL = re.compile(r"^s3://(?P<bucket>[^/]+)")
_GCS_BUCKET = re.compile(r"^projects/_/buckets/(?P<bucket>[^/]+)")
_GCE_INSTANCE = re.compile(
    r"^projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)$"
)


def alert_resources(alert: Alert) -> list[AlertResource]:
    """Read every resource an alert names, without duplicates, in a stable order.

    The order is: the entry pod, then resources of the identities in chain order, then
    the targets of the evidence in time order, then a transient exposure's resource.
    """
    found: list[AlertResource] = []

    found.extend(_entry_resources(alert))
    for identity in alert.identities:
        found.extend(_identity_resources(identity))
    for evidence in alert.evidence:
        match = _SUMMARY_TARGET.search(evidence.summary)
        if match is not None:
            found.extend(_target_resources(match["target"], alert.account))
    exposed = alert.details.get("resource")
    if exposed:
        found.extend(_target_resources(exposed, alert.account))

    unique: dict[tuple[ResourceKind, str], AlertResource] = {}
    for resource in found:
        unique.setdefault((resource.kind, resource.uid), resource)
    return list(unique.values())


def _entry_resources(alert: Alert) -> list[AlertResource]:
    entry = alert.entry
    if entry.pod is None:
        return []
    uid = f"{entry.namespace}/{entry.pod}" if entry.namespace else entry.pod
    return [
        AlertResource(ResourceKind.KUBERNETES_POD, uid=uid, name=entry.pod, account=alert.account)
    ]


def _identity_resources(identity: str) -> list[AlertResource]:
    arn = _ARN.match(identity)
    if arn is not None:
        return _arn_identity_resources(arn)
    workload = _WORKLOAD_IDENTITY.match(identity)
    if workload is not None:
        uid = f"{workload['namespace']}/{workload['name']}"
        return [
            AlertResource(ResourceKind.KUBERNETES_SERVICE_ACCOUNT, uid=uid, name=workload["name"])
        ]
    if _GCP_SERVICE_ACCOUNT.match(identity):
        return [
            AlertResource(
                ResourceKind.GCP_SERVICE_ACCOUNT, uid=identity, name=identity.partition("@")[0]
            )
        ]
    return []


def _arn_identity_resources(arn: re.Match[str]) -> list[AlertResource]:
    """Resources behind an identity ARN: the role (and instance) of a session, a role, a user."""
    partition, account, resource = arn["partition"], arn["account"], arn["resource"]
    kind, _, path = resource.partition("/")

    if arn["service"] == "sts" and kind == "assumed-role":
        role, _, session = path.partition("/")
        found = [_role(partition, account, role)]
        if _INSTANCE_ID.match(session):
            found.append(_instance(partition, account, None, session))
        return found
    if arn["service"] != "iam":
        return []
    if kind == "role":
        return [_role(partition, account, path)]
    if kind == "user":
        uid = f"arn:{partition}:iam::{account}:user/{path}"
        return [
            AlertResource(
                ResourceKind.IAM_USER,
                uid=uid,
                name=path.rpartition("/")[2],
                account=account,
                partition=partition,
            )
        ]
    subject = _IRSA_SUBJECT.search(resource) if kind == "oidc-provider" else None
    if subject is not None:
        uid = f"{subject['namespace']}/{subject['name']}"
        return [
            AlertResource(
                ResourceKind.KUBERNETES_SERVICE_ACCOUNT,
                uid=uid,
                name=subject["name"],
                account=account,
            )
        ]
    return []


def _target_resources(target: str, account: str) -> list[AlertResource]:
    arn = _ARN.match(target)
    if arn is not None:
        return _arn_target_resources(arn)
    s3 = _S3_URL.match(target)
    if s3 is not None:
        return [_bucket(s3["bucket"], account, "aws")]
    gcs = _GCS_BUCKET.match(target)
    if gcs is not None:
        bucket = gcs["bucket"]
        return [
            AlertResource(
                ResourceKind.GCS_BUCKET,
                uid=f"projects/_/buckets/{bucket}",
                name=bucket,
                account=account,
            )
        ]
    gce = _GCE_INSTANCE.match(target)
    if gce is not None:
        return [
            AlertResource(
                ResourceKind.GCE_INSTANCE,
                uid=target,
                name=gce["name"],
                account=gce["project"],
                region=gce["zone"],
            )
        ]
    return []


def _arn_target_resources(arn: re.Match[str]) -> list[AlertResource]:
    partition, account, region, resource = (
        arn["partition"],
        arn["account"],
        arn["region"] or None,
        arn["resource"],
    )
    service = arn["service"]
    kind, _, path = resource.partition("/")

    if service == "iam" and kind == "role":
        return [_role(partition, account, path)]
    if service == "s3" and "/" not in resource:
        return [_bucket(resource, account or None, partition)]
    if service == "ec2" and kind == "instance":
        return [_instance(partition, account, region, path)]
    if service == "ec2" and kind == "security-group":
        uid = arn.string
        return [
            AlertResource(
                ResourceKind.SECURITY_GROUP,
                uid=uid,
                name=path,
                account=account,
                partition=partition,
                region=region,
            )
        ]
    return []


def _role(partition: str, account: str, path: str) -> AlertResource:
    uid = f"arn:{partition}:iam::{account}:role/{path}"
    return AlertResource(
        ResourceKind.IAM_ROLE,
        uid=uid,
        name=path.rpartition("/")[2],
        account=account,
        partition=partition,
    )


def _instance(partition: str, account: str, region: str | None, instance_id: str) -> AlertResource:
    """Build an EC2 instance resource, named by ARN where the region is known, else by its id."""
    uid = (
        f"arn:{partition}:ec2:{region}:{account}:instance/{instance_id}" if region else instance_id
    )
    return AlertResource(
        ResourceKind.EC2_INSTANCE,
        uid=uid,
        name=instance_id,
        account=account,
        partition=partition,
        region=region,
    )


def _bucket(bucket: str, account: str | None, partition: str) -> AlertResource:
    uid = f"arn:{partition}:s3:::{bucket}"
    return AlertResource(
        ResourceKind.S3_BUCKET, uid=uid, name=bucket, account=account, partition=partition
    )
