"""The alert model: the public contract of the alerts topic.

Downstream consumers depend on these field names. Any change to them raises
``SCHEMA_VERSION`` and is written in the CHANGELOG.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec

__all__ = ["SCHEMA_VERSION", "Alert", "AlertKind", "Entry", "Evidence", "Severity"]

SCHEMA_VERSION = "1.0"


class AlertKind(StrEnum):
    PIVOT_CHAIN = "pivot_chain"
    SINGLE_STAGE = "single_stage"
    TRANSIENT_EXPOSURE = "transient_exposure"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """The workload where a chain began; ``None`` where unknown."""

    cluster: str | None = None
    namespace: str | None = None
    pod: str | None = None
    container_id: str | None = None
    host: str | None = None


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """One source record that supports the alert."""

    source: str
    """``cloudtrail``, ``gcp_audit`` or ``falco``."""
    event_id: str
    time: datetime
    summary: str


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One revision of an alert."""

    alert_id: str
    chain_id: str
    revision: int
    kind: AlertKind
    title: str
    severity: Severity
    score: int
    account: str
    entry: Entry
    identities: list[str]
    stages: list[str]
    techniques: list[str]
    evidence: list[Evidence]
    first_seen: datetime
    last_seen: datetime
    schema_version: str = SCHEMA_VERSION
    rules: list[str] = msgspec.field(default_factory=list)
    """Ids of the detection rules that matched the evidence."""
    details: dict[str, str] = msgspec.field(default_factory=dict)
    """Kind-specific facts, such as a transient exposure's change, revert and duration."""

    def __post_init__(self) -> None:
        if not 0 <= self.score <= 100:
            raise ValueError(f"alert score {self.score} is outside 0-100")
        if self.revision < 1:
            raise ValueError(f"alert revision {self.revision} must be 1 or more")
        if self.first_seen.tzinfo is None or self.last_seen.tzinfo is None:
            raise ValueError("alert times must be timezone-aware")
