"""The normalized event: one immutable shape for every source.

A normalized event keeps the fields that correlation needs under common names and the
original record under ``raw``, so detection rules can still read the source's own
field names. Events travel on the events topic in batches (`EventBatch`) that share one
correlation key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

__all__ = ["Event", "EventBatch", "EventKind", "Principal", "Source", "Workload"]


class Source(StrEnum):
    """Where a record came from; the value is the alert contract's ``evidence.source``."""

    CLOUDTRAIL = "cloudtrail"
    GCP_AUDIT = "gcp_audit"
    FALCO = "falco"
    INVENTORY = "inventory"


class EventKind(StrEnum):
    """What a normalized event describes."""

    API_CALL = "api_call"
    """A cloud control-plane or data-plane call (CloudTrail, GCP audit)."""
    SERVICE_EVENT = "service_event"
    """A record that a cloud service wrote on its own (CloudTrail ``AwsServiceEvent``)."""
    INSIGHT = "insight"
    """A CloudTrail Insights event: a statistic about calls, not a call."""
    RUNTIME_ALERT = "runtime_alert"
    """A Falco alert about a process in a container or on a host."""
    ASSET = "asset"
    """An inventory record: an instance, a pod or a Kubernetes service account."""


class Principal(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The identity that acted.

    ``id`` is the name that links the identity across events: an ARN for AWS (the
    session ARN for an assumed role), an email for a GCP principal, else the GCP
    ``principalSubject``.
    """

    id: str
    type: str
    account: str | None = None
    session_issuer: str | None = None
    """ARN of the role behind an assumed-role session (CloudTrail ``sessionIssuer.arn``)."""
    session_name: str | None = None
    access_key_id: str | None = None
    subject: str | None = None
    """GCP ``principalSubject``, or the web identity subject of an AWS federated call."""
    delegation: tuple[str, ...] = ()
    """GCP impersonation chain, first delegate first (``serviceAccountDelegationInfo``)."""
    credential_delivery: str | None = None
    """CloudTrail ``sessionContext.ec2RoleDelivery``: ``1.0`` is IMDSv1, ``2.0`` is IMDSv2."""


class Workload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A container or pod, with the host it runs on; any part may be unknown."""

    cluster: str | None = None
    namespace: str | None = None
    pod: str | None = None
    container_id: str | None = None
    container_name: str | None = None
    image: str | None = None
    host: str | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One normalized record.

    ``time`` is the event time from the record, always timezone-aware UTC. ``key`` is
    the correlation key (the cloud account by default): every event that can belong to
    one chain has the same key. ``event_id`` is the source's own id, or a stable hash of
    the record where the source has none.
    """

    source: Source
    kind: EventKind
    event_id: str
    time: datetime
    key: str
    action: str
    """``eventName``, GCP ``methodName``, Falco ``rule``, or the asset type."""
    service: str | None = None
    """``eventSource``, GCP ``serviceName``, Falco ``source``, or the inventory API."""
    account: str | None = None
    region: str | None = None
    principal: Principal | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    error_code: str | None = None
    read_only: bool | None = None
    workload: Workload | None = None
    priority: str | None = None
    """Falco priority (``Critical`` … ``Debug``)."""
    tags: tuple[str, ...] = ()
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    """The original record as decoded JSON, unchanged."""


class EventBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Normalized events that share one correlation key: one message on the events topic."""

    key: str
    events: list[Event]
