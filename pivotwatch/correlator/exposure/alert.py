"""The ``transient_exposure`` alert built from one finding.

Severity is ``high``, or ``critical`` when the exposure stayed open for
`CRITICAL_AFTER` or longer. The threshold is a judgement, not a measurement: an open
port or a public bucket is found by Internet-wide scanners within minutes to hours, so
past ten minutes a responder should assume it was reached and check the access logs.
The score grows with the duration inside each severity's band.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Final

from pivotwatch.correlator.exposure.model import TransientExposure
from pivotwatch.schemas.alert import Alert, AlertKind, Entry, Evidence, Severity
from pivotwatch.schemas.event import Event

__all__ = ["CRITICAL_AFTER", "exposure_alert", "exposure_chain_id", "format_duration"]

CRITICAL_AFTER: Final = timedelta(minutes=10)

_HIGH_SCORES: Final = (70, 89)
_CRITICAL_SCORES: Final = (90, 100)
_REVISION: Final = 1


def exposure_alert(finding: TransientExposure) -> Alert:
    """Build the alert for a transient exposure; the same finding always gives the same ids."""
    chain_id = exposure_chain_id(finding)
    severity = Severity.CRITICAL if finding.duration >= CRITICAL_AFTER else Severity.HIGH
    duration = format_duration(finding.duration)
    principals = (finding.changed_by, finding.reverted_by)
    identities = [principal for principal in principals if principal is not None]

    return Alert(
        alert_id=_digest(f"{chain_id}\x1f{_REVISION}"),
        chain_id=chain_id,
        revision=_REVISION,
        kind=AlertKind.TRANSIENT_EXPOSURE,
        title=f"{finding.headline} for {duration}",
        severity=severity,
        score=_score(finding.duration, severity),
        account=finding.account,
        entry=Entry(),
        identities=list(dict.fromkeys(identities)),
        stages=list(finding.stages),
        techniques=list(finding.techniques),
        evidence=[
            _evidence(
                finding.change,
                f"{_actor(finding.change, finding.changed_by)}: {finding.exposure}",
            ),
            _evidence(
                finding.revert,
                f"{_actor(finding.revert, finding.reverted_by)}: closed it after {duration}",
            ),
        ],
        first_seen=finding.change.time,
        last_seen=finding.revert.time,
        details=_details(finding),
    )


def exposure_chain_id(finding: TransientExposure) -> str:
    """Return the chain id: a hash of account, resource and the change's event id.

    Replays and a second worker derive the same id from the same change record.
    """
    return _digest(
        f"{AlertKind.TRANSIENT_EXPOSURE}\x1f{finding.account}\x1f{finding.resource}"
        f"\x1f{finding.change.event_id}"
    )


def format_duration(duration: timedelta) -> str:
    """Format a duration for a title, such as ``6 min 12 s`` or ``1 h 0 min 5 s``."""
    seconds = int(duration.total_seconds())
    hours, remainder = divmod(seconds, 3600)
    minutes, seconds = divmod(remainder, 60)
    if hours:
        return f"{hours} h {minutes} min {seconds} s"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


def _score(duration: timedelta, severity: Severity) -> int:
    """Place the duration in the severity's band.

    A high alert gains one point per 30 s open, a critical one per 5 min past the threshold.
    """
    if severity is Severity.CRITICAL:
        low, high = _CRITICAL_SCORES
        steps = (duration - CRITICAL_AFTER) // timedelta(minutes=5)
    else:
        low, high = _HIGH_SCORES
        steps = duration // timedelta(seconds=30)
    return min(high, low + steps)


def _evidence(event: Event, summary: str) -> Evidence:
    return Evidence(
        source=event.source.value, event_id=event.event_id, time=event.time, summary=summary
    )


def _actor(event: Event, principal: str | None) -> str:
    return f"{event.action} by {principal}" if principal else event.action


def _details(finding: TransientExposure) -> dict[str, str]:
    details = {
        "resource": finding.resource,
        "exposure": finding.exposure,
        "change_event_id": finding.change.event_id,
        "change_action": finding.change.action,
        "change_time": finding.change.time.isoformat(),
        "revert_event_id": finding.revert.event_id,
        "revert_action": finding.revert.action,
        "revert_time": finding.revert.time.isoformat(),
        "duration_seconds": str(int(finding.duration.total_seconds())),
    }
    if finding.changed_by is not None:
        details["changed_by"] = finding.changed_by
    if finding.reverted_by is not None:
        details["reverted_by"] = finding.reverted_by
    return details


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
