"""Models and mappings: normalized events, alerts, and per-source mapping tables."""

from pivotwatch.schemas.alert import SCHEMA_VERSION, Alert, AlertKind, Entry, Evidence, Severity
from pivotwatch.schemas.event import Event, EventBatch, EventKind, Principal, Source, Workload

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "AlertKind",
    "Entry",
    "Event",
    "EventBatch",
    "EventKind",
    "Evidence",
    "Principal",
    "Severity",
    "Source",
    "Workload",
]
