"""Inventory mapping: asset records in the JSON that the cloud and Kubernetes APIs return.

One inventory message contains one asset record (framing splits API list documents):

- an EC2 ``Reservation`` from ``DescribeInstances`` (``OwnerId``, ``Instances``): one
  event per instance, with the instance object as ``raw``;
- a bare EC2 ``Instance`` object;
- a GCE instance (``kind: compute#instance``), as ``gcloud compute instances list
  --format=json`` prints it;
- a Kubernetes ``Pod`` or ``ServiceAccount`` object.

Asset events have kind ASSET and a stable id ``inventory:<action>:<asset id>``, so
the same asset in two inventory snapshots has the same event id. The event time is
the asset's creation time, not the time of the snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, EventKind, Source, Workload
from pivotwatch.schemas.sources.context import UNKNOWN_KEY, NormalizeContext
from pivotwatch.schemas.sources.gcp_audit import project_from_service_account
from pivotwatch.schemas.sources.table import (
    Field,
    JsonObject,
    Path,
    as_documented_utc_time,
    as_text,
    as_utc_time,
    first_text,
    lookup,
    map_fields,
    show_value,
)

__all__ = [
    "EC2_INSTANCE",
    "GCE_INSTANCE",
    "K8S_POD",
    "K8S_SERVICE_ACCOUNT",
    "host_names",
    "normalize",
]

_SOURCE: Final = Source.INVENTORY.value

EC2_INSTANCE: Final = "aws.ec2.instance"
GCE_INSTANCE: Final = "gcp.compute.instance"
K8S_POD: Final = "k8s.pod"
K8S_SERVICE_ACCOUNT: Final = "k8s.serviceaccount"

IRSA_ROLE_ANNOTATION: Final = "eks.amazonaws.com/role-arn"
WORKLOAD_IDENTITY_ANNOTATION: Final = "iam.gke.io/gcp-service-account"

_AWS_REGION: Final = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+")
_ARN_ACCOUNT: Final = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
_GCE_PROJECT: Final = re.compile(r"/projects/([^/]+)/zones/([^/]+)")

_ANY: Final = "*"
"""Path step that visits every item of a list."""


def _aws_region(availability_zone: Any) -> str | None:
    """Return the region of an availability zone.

    ``us-east-1a`` gives ``us-east-1``, and the Local Zone ``us-west-2-lax-1a`` gives
    ``us-west-2``.
    """
    match = _AWS_REGION.match(as_text(availability_zone))
    return match.group(0) if match else None


def _account_from_arn(arn: Any) -> str | None:
    match = _ARN_ACCOUNT.match(as_text(arn))
    return match.group(1) if match else None


def _owner_account(value: Any) -> str | None:
    """Accept an interface's ``OwnerId``, or take the account from an instance profile ARN."""
    text = as_text(value)
    return _account_from_arn(text) if text.startswith("arn:") else text


def _gce_project(url: Any) -> str | None:
    match = _GCE_PROJECT.search(as_text(url))
    return match.group(1) if match else None


def _gce_region(url: Any) -> str | None:
    """Return the region of a zone URL or name: ``…/zones/us-central1-b`` gives ``us-central1``."""
    zone = as_text(url).rsplit("/", 1)[-1]
    region, separator, _ = zone.rpartition("-")
    return region if separator else None


# -- tables --------------------------------------------------------------------------------

EC2_FIELDS: Final[tuple[Field, ...]] = (
    # EC2 documents LaunchTime as UTC.
    Field("time", (("LaunchTime",),), as_documented_utc_time, required=True),
    Field(
        "account",
        (("NetworkInterfaces", "0", "OwnerId"), ("IamInstanceProfile", "Arn")),
        _owner_account,
    ),
    Field("region", (("Placement", "AvailabilityZone"),), _aws_region),
)

GCE_FIELDS: Final[tuple[Field, ...]] = (
    Field("time", (("creationTimestamp",),), as_utc_time, required=True),
    Field("account", (("selfLink",), ("zone",)), _gce_project),
    Field("region", (("zone",),), _gce_region),
)

KUBERNETES_FIELDS: Final[tuple[Field, ...]] = (
    Field("time", (("metadata", "creationTimestamp"),), as_utc_time, required=True),
)

_EC2_HOST_PATHS: Final[tuple[Path, ...]] = (
    ("InstanceId",),
    ("PrivateDnsName",),
    ("PrivateIpAddress",),
    ("PublicIpAddress",),
    ("PublicDnsName",),
    ("NetworkInterfaces", _ANY, "PrivateIpAddresses", _ANY, "PrivateIpAddress"),
    ("NetworkInterfaces", _ANY, "PrivateIpAddresses", _ANY, "Association", "PublicIp"),
    ("NetworkInterfaces", _ANY, "Ipv6Addresses", _ANY, "Ipv6Address"),
)

_GCE_HOST_PATHS: Final[tuple[Path, ...]] = (
    ("name",),
    ("id",),
    ("networkInterfaces", _ANY, "networkIP"),
    ("networkInterfaces", _ANY, "ipv6Address"),
    ("networkInterfaces", _ANY, "accessConfigs", _ANY, "natIP"),
)

_HOST_PATHS_BY_ACTION: Final[dict[str, tuple[Path, ...]]] = {
    EC2_INSTANCE: _EC2_HOST_PATHS,
    GCE_INSTANCE: _GCE_HOST_PATHS,
}


# -- dispatch --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AssetShape:
    name: str
    matches: Callable[[JsonObject], bool]
    normalize: Callable[[JsonObject, NormalizeContext], list[Event]]


def normalize(record: JsonObject, context: NormalizeContext) -> list[Event]:
    """Map one asset record to its events: one per instance of a reservation, else one.

    Raises:
        MappingError: the record is of no supported asset shape, or lacks its id or
            creation time.
    """
    for shape in _ASSET_SHAPES:
        if shape.matches(record):
            return shape.normalize(record, context)
    raise MappingError(
        f"inventory record of kind {show_value(record.get('kind'))} with keys "
        f"{show_value(sorted(record)[:8])} is not a supported asset: expected an EC2 "
        "reservation or instance, a GCE instance (compute#instance), or a Kubernetes Pod "
        "or ServiceAccount"
    )


def host_names(event: Event) -> list[str]:
    """Return the names and addresses by which Falco and audit logs can name an instance.

    For an EC2 instance: the instance id, the private DNS name and its first label
    (``ip-10-0-23-91``), the public DNS name and every private, public and IPv6
    address. For a GCE instance: the name, the numeric id and every internal, external
    and IPv6 address. Other assets have none.
    """
    paths = _HOST_PATHS_BY_ACTION.get(event.action)
    if paths is None:
        return []

    names: list[str] = []
    for path in paths:
        found = _collect(event.raw, path)
        names.extend(value for value in found if isinstance(value, str) and value)
    private_dns = event.raw.get("PrivateDnsName") if event.action == EC2_INSTANCE else None
    if isinstance(private_dns, str) and "." in private_dns:
        names.append(private_dns.split(".", 1)[0])
    return list(dict.fromkeys(names))


def _collect(value: Any, path: Path) -> Iterator[Any]:
    """Yield the values at ``path``, where a ``*`` step visits every item of a list."""
    if not path:
        yield value
        return
    step, rest = path[0], path[1:]
    if step == _ANY:
        if isinstance(value, list):
            for item in value:
                yield from _collect(item, rest)
    elif isinstance(value, dict) and step in value:
        yield from _collect(value[step], rest)


# -- EC2 -------------------------------------------------------------------------------------


def _is_reservation(record: JsonObject) -> bool:
    return isinstance(record.get("Instances"), list)


def _is_ec2_instance(record: JsonObject) -> bool:
    return "InstanceId" in record


def _normalize_reservation(record: JsonObject, context: NormalizeContext) -> list[Event]:
    owner = record.get("OwnerId")
    owner_account = owner if isinstance(owner, str) and owner else None

    events: list[Event] = []
    for index, instance in enumerate(record["Instances"]):
        if not isinstance(instance, dict):
            raise MappingError(
                f"inventory reservation {show_value(record.get('ReservationId'))} has a "
                f"{type(instance).__name__} at Instances[{index}]: expected an instance object"
            )
        events.append(_ec2_event(instance, owner_account, context))
    return events


def _normalize_ec2_instance(record: JsonObject, context: NormalizeContext) -> list[Event]:
    return [_ec2_event(record, None, context)]


def _ec2_event(instance: JsonObject, owner: str | None, context: NormalizeContext) -> Event:
    instance_id = _require_text(instance, ("InstanceId",), "EC2 instance")
    event_id = f"inventory:{EC2_INSTANCE}:{instance_id}"
    fields = map_fields(instance, EC2_FIELDS, source=_SOURCE, event_id=event_id)
    instance_account = fields.pop("account", None)
    account = owner or instance_account or context.default_account
    host = first_text(instance, (("PrivateDnsName",),)) or instance_id
    return _asset_event(
        event_id, EC2_INSTANCE, "ec2.amazonaws.com", account, Workload(host=host), instance, fields
    )


# -- GCE -------------------------------------------------------------------------------------


def _is_gce_instance(record: JsonObject) -> bool:
    return record.get("kind") == "compute#instance"


def _normalize_gce_instance(record: JsonObject, context: NormalizeContext) -> list[Event]:
    name = _require_text(record, ("name",), "GCE instance")
    asset_id = first_text(record, (("id",),)) or name
    event_id = f"inventory:{GCE_INSTANCE}:{asset_id}"
    fields = map_fields(record, GCE_FIELDS, source=_SOURCE, event_id=event_id)
    account = fields.pop("account", None) or context.default_account
    cluster = first_text(record, (("labels", "goog-k8s-cluster-name"),))
    workload = Workload(cluster=cluster, host=name)
    return [
        _asset_event(
            event_id, GCE_INSTANCE, "compute.googleapis.com", account, workload, record, fields
        )
    ]


# -- Kubernetes ------------------------------------------------------------------------------


def _is_pod(record: JsonObject) -> bool:
    return record.get("kind") == "Pod"


def _is_service_account(record: JsonObject) -> bool:
    return record.get("kind") == "ServiceAccount"


def _normalize_pod(record: JsonObject, context: NormalizeContext) -> list[Event]:
    event_id = _kubernetes_event_id(record, K8S_POD)
    fields = map_fields(record, KUBERNETES_FIELDS, source=_SOURCE, event_id=event_id)
    node = first_text(record, (("spec", "nodeName"),))
    account = (
        context.account_for_host(node)
        or _account_from_role_arn(_pod_role_arn(record))
        or _account_from_annotations(record)
        or context.default_account
    )
    workload = Workload(
        namespace=first_text(record, (("metadata", "namespace"),)),
        pod=first_text(record, (("metadata", "name"),)),
        host=node,
        **_single_container(record),
    )
    return [_asset_event(event_id, K8S_POD, "kubernetes", account, workload, record, fields)]


def _normalize_service_account(record: JsonObject, context: NormalizeContext) -> list[Event]:
    event_id = _kubernetes_event_id(record, K8S_SERVICE_ACCOUNT)
    fields = map_fields(record, KUBERNETES_FIELDS, source=_SOURCE, event_id=event_id)
    account = _account_from_annotations(record) or context.default_account
    workload = Workload(namespace=first_text(record, (("metadata", "namespace"),)))
    return [
        _asset_event(event_id, K8S_SERVICE_ACCOUNT, "kubernetes", account, workload, record, fields)
    ]


def _kubernetes_event_id(record: JsonObject, action: str) -> str:
    uid = first_text(record, (("metadata", "uid"),))
    if uid is not None:
        return f"inventory:{action}:{uid}"
    name = _require_text(record, ("metadata", "name"), f"Kubernetes {record.get('kind')}")
    namespace = first_text(record, (("metadata", "namespace"),)) or ""
    return f"inventory:{action}:{namespace}/{name}"


def _account_from_annotations(record: JsonObject) -> str | None:
    """Return the account of the IRSA role annotation, else the Workload Identity project."""
    annotations = lookup(record, ("metadata", "annotations"))
    if not isinstance(annotations, dict):
        return None
    role_account = _account_from_role_arn(annotations.get(IRSA_ROLE_ANNOTATION))
    if role_account is not None:
        return role_account
    email = annotations.get(WORKLOAD_IDENTITY_ANNOTATION)
    return project_from_service_account(email) if isinstance(email, str) else None


def _account_from_role_arn(arn: Any) -> str | None:
    return _account_from_arn(arn) if isinstance(arn, str) else None


def _pod_role_arn(record: JsonObject) -> str | None:
    """Return the IRSA role that the EKS webhook injected as ``AWS_ROLE_ARN``, if any."""
    for container in _collect(record, ("spec", "containers", _ANY)):
        for variable in _collect(container, ("env", _ANY)):
            if isinstance(variable, dict) and variable.get("name") == "AWS_ROLE_ARN":
                value = variable.get("value")
                if isinstance(value, str):
                    return value
    return None


def _single_container(record: JsonObject) -> dict[str, str]:
    """Return the container name and image when the pod has exactly one container."""
    containers = lookup(record, ("spec", "containers"))
    if not isinstance(containers, list) or len(containers) != 1:
        return {}
    if not isinstance(containers[0], dict):
        return {}
    container = containers[0]
    named = {"container_name": container.get("name"), "image": container.get("image")}
    return {key: value for key, value in named.items() if isinstance(value, str) and value}


# -- shared ----------------------------------------------------------------------------------


def _asset_event(
    event_id: str,
    action: str,
    service: str,
    account: str | None,
    workload: Workload,
    raw: JsonObject,
    fields: dict[str, Any],
) -> Event:
    return Event(
        source=Source.INVENTORY,
        kind=EventKind.ASSET,
        event_id=event_id,
        key=account or UNKNOWN_KEY,
        action=action,
        service=service,
        account=account,
        workload=workload,
        raw=raw,
        **fields,
    )


def _require_text(record: JsonObject, path: Path, what: str) -> str:
    value = lookup(record, path)
    if isinstance(value, str) and value:
        return value
    raise MappingError(
        f"inventory {what} has {'no' if value is None else 'an invalid'} {'.'.join(path)}"
        f"{'' if value is None else ' ' + show_value(value)}: expected a non-empty string"
    )


_ASSET_SHAPES: Final[tuple[_AssetShape, ...]] = (
    _AssetShape("EC2 reservation", _is_reservation, _normalize_reservation),
    _AssetShape("EC2 instance", _is_ec2_instance, _normalize_ec2_instance),
    _AssetShape("GCE instance", _is_gce_instance, _normalize_gce_instance),
    _AssetShape("Kubernetes Pod", _is_pod, _normalize_pod),
    _AssetShape("Kubernetes ServiceAccount", _is_service_account, _normalize_service_account),
)
