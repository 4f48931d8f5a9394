"""Turning chains and single detections into alerts of the public contract."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pivotwatch.correlator.chains import ChainView
from pivotwatch.correlator.detections import Detection
from pivotwatch.correlator.resources import resource_of
from pivotwatch.correlator.scoring import (
    level_score,
    score_chain,
    severity_for_level,
    severity_for_score,
)
from pivotwatch.schemas.alert import Alert, AlertKind, Entry, Evidence
from pivotwatch.schemas.event import Event, Source

__all__ = ["MAX_EVIDENCE", "chain_alert", "single_stage_alert", "stable_id"]

# Evidence items listed in one alert; a longer chain keeps its first and latest items.
MAX_EVIDENCE = 200


def stable_id(*parts: str) -> str:
    """Return a short id that depends only on ``parts``, so replays give the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:32]


def summarize(event: Event) -> str:
    """Return one line describing a record for a responder."""
    if event.source is Source.FALCO:
        workload = event.workload
        where = (
            f"{workload.namespace}/{workload.pod}"
            if workload and workload.pod
            else (workload and workload.host)
        )
        return f"{event.action} in {where or 'unknown workload'}"
    actor = event.principal.id if event.principal else "unknown principal"
    text = f"{event.action} by {actor}"
    if event.source_ip:
        text += f" from {event.source_ip}"
    resource = resource_of(event)
    if resource:
        text += f" on {resource}"
    if event.error_code:
        text += f" ({event.error_code})"
    return text


def evidence_of(events: Iterable[Event]) -> list[Evidence]:
    items = sorted(events, key=lambda event: (event.time, event.event_id))
    if len(items) > MAX_EVIDENCE:
        half = MAX_EVIDENCE // 2
        items = items[:half] + items[-half:]
    return [
        Evidence(
            source=str(event.source),
            event_id=event.event_id,
            time=event.time,
            summary=summarize(event),
        )
        for event in items
    ]


def _identities(chain: ChainView) -> list[str]:
    names: list[str] = []
    for activity in chain.activities:
        principal = activity.event.principal
        if principal is None:
            continue
        names.extend(principal.delegation)
        names.append(principal.id)
    return list(dict.fromkeys(names))


def _techniques(detections: Iterable[Detection | None]) -> list[str]:
    return list(
        dict.fromkeys(t for detection in detections if detection for t in detection.techniques)
    )


def chain_id_for(account: str, workload: str) -> str:
    return stable_id("pivot_chain", account, workload)


def chain_alert(account: str, chain: ChainView, revision: int) -> Alert:
    """Build the alert revision of a pivot chain."""
    first = chain.signals[0].event
    workload = first.workload
    entry = Entry(
        cluster=workload.cluster if workload else None,
        namespace=workload.namespace if workload else None,
        pod=workload.pod if workload else None,
        container_id=workload.container_id if workload else None,
        host=workload.host if workload else None,
    )
    events = [signal.event for signal in chain.signals] + [
        activity.event for activity in chain.activities
    ]
    detections = [signal.detection for signal in chain.signals] + [
        activity.detection for activity in chain.activities
    ]
    score = score_chain(chain)
    identities = _identities(chain)
    stages = chain.tactics
    chain_id = chain_id_for(account, chain.workload)
    where = (
        f"{entry.namespace}/{entry.pod}"
        if entry.pod
        else (entry.container_id or entry.host or "a workload")
    )
    path = " > ".join(stages) or "cloud activity"
    latest = identities[-1] if identities else "a linked identity"
    title = f"Pivot from {where} into {account}: {path} as {latest}"
    return Alert(
        alert_id=stable_id(chain_id, str(revision)),
        chain_id=chain_id,
        revision=revision,
        kind=AlertKind.PIVOT_CHAIN,
        title=title,
        severity=severity_for_score(score),
        score=score,
        account=account,
        entry=entry,
        identities=identities,
        stages=stages,
        techniques=_techniques(detections),
        evidence=evidence_of(events),
        first_seen=min(event.time for event in events),
        last_seen=max(event.time for event in events),
        rules=list(
            dict.fromkeys(rule for detection in detections if detection for rule in detection.rules)
        ),
        details=_chain_details(chain),
    )


# CloudTrail ``sessionContext.ec2RoleDelivery`` values and what they mean.
_ROLE_DELIVERY = {"1.0": "IMDSv1", "2.0": "IMDSv2"}


def _chain_details(chain: ChainView) -> dict[str, str]:
    """Return the chain's facts for responders: off-host use, derived identities, IMDS version."""
    details = {
        "off_host_use": str(chain.off_host).lower(),
        "derived_identities": str(chain.derived).lower(),
    }
    deliveries = sorted(
        {
            _ROLE_DELIVERY.get(delivery, delivery)
            for activity in chain.activities
            if activity.event.principal is not None
            and (delivery := activity.event.principal.credential_delivery)
        }
    )
    if deliveries:
        # IMDSv1 needs no session token, so a pod can read the node's credentials with
        # one plain request; IMDSv2 with a hop limit of 1 keeps them from pods.
        details["instance_credential_delivery"] = ", ".join(deliveries)
    return details


def single_stage_alert(account: str, event: Event, detection: Detection, actor: str) -> Alert:
    """Build the alert of a rule match that joined no chain.

    Matches of the same rule by the same actor share one chain id, so a burst of
    identical calls is one alert.
    """
    chain_id = stable_id("single_stage", account, detection.rules[0], actor)
    workload = event.workload
    entry = Entry(
        cluster=workload.cluster if workload else None,
        namespace=workload.namespace if workload else None,
        pod=workload.pod if workload else None,
        container_id=workload.container_id if workload else None,
        host=workload.host if workload else None,
    )
    identities = [event.principal.id] if event.principal else []
    return Alert(
        alert_id=stable_id(chain_id, "1"),
        chain_id=chain_id,
        revision=1,
        kind=AlertKind.SINGLE_STAGE,
        title=f"{detection.titles[0]}: {summarize(event)}",
        severity=severity_for_level(detection.level),
        score=level_score(detection.level),
        account=account,
        entry=entry,
        identities=identities,
        stages=list(detection.tactics),
        techniques=list(detection.techniques),
        evidence=evidence_of([event]),
        first_seen=event.time,
        last_seen=event.time,
        rules=list(detection.rules),
    )
