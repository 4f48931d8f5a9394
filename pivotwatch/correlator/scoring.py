"""Scores and severities of pivot chains.

The score (0-100) grows with what makes a chain more certain and more harmful:

======================================  ======================================
runtime signal joined to cloud activity  40 (every pivot chain has it)
each distinct ATT&CK tactic              +5, at most +35
a credential used off-host               +15
an identity the attacker derived         +10 (role assumed, user or key created)
the highest rule level in the chain      +0 low, +4 medium, +8 high, +12 critical
each distinct sensitive resource         +2, at most +10
======================================  ======================================

Sensitive resources are those touched by calls tagged with credential access,
collection, exfiltration, defense evasion (stealth, defense impairment), persistence,
privilege escalation or impact.
Severity thresholds: critical from 85, high from 65, medium from 45, low from 25.
"""

from __future__ import annotations

from pivotwatch.correlator.chains import ChainView
from pivotwatch.correlator.detections import LEVEL_RANK
from pivotwatch.correlator.resources import resource_of
from pivotwatch.schemas.alert import Severity

__all__ = ["SENSITIVE_TACTICS", "score_chain", "severity_for_level", "severity_for_score"]

SENSITIVE_TACTICS = frozenset(
    {
        "credential-access",
        "collection",
        "exfiltration",
        "defense-evasion",
        "defense-impairment",
        "stealth",
        "persistence",
        "privilege-escalation",
        "impact",
    }
)
_LEVEL_BONUS = {0: 0, 1: 0, 2: 4, 3: 8, 4: 12}
_SEVERITY_THRESHOLDS = (
    (85, Severity.CRITICAL),
    (65, Severity.HIGH),
    (45, Severity.MEDIUM),
    (25, Severity.LOW),
)
_LEVEL_SEVERITY = {
    "informational": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


def sensitive_resources(chain: ChainView) -> set[str]:
    touched: set[str] = set()
    for activity in chain.activities:
        detection = activity.detection
        if detection is None or not SENSITIVE_TACTICS.intersection(detection.tactics):
            continue
        resource = resource_of(activity.event)
        if resource is not None:
            touched.add(resource)
    return touched


def score_chain(chain: ChainView) -> int:
    """Return the chain's score, 0-100."""
    levels = [signal.detection.rank for signal in chain.signals]
    levels += [
        activity.detection.rank for activity in chain.activities if activity.detection is not None
    ]
    score = 40
    score += min(5 * len(chain.tactics), 35)
    score += 15 if chain.off_host else 0
    score += 10 if chain.derived else 0
    score += _LEVEL_BONUS[max(levels, default=0)]
    score += min(2 * len(sensitive_resources(chain)), 10)
    return min(score, 100)


def severity_for_score(score: int) -> Severity:
    for threshold, severity in _SEVERITY_THRESHOLDS:
        if score >= threshold:
            return severity
    return Severity.INFO


def severity_for_level(level: str) -> Severity:
    """Map a Sigma rule level to an alert severity."""
    return _LEVEL_SEVERITY.get(level, Severity.LOW)


def level_score(level: str) -> int:
    """Return the score of a single-stage alert of a rule level."""
    return {0: 10, 1: 30, 2: 50, 3: 70, 4: 90}[LEVEL_RANK.get(level, 1)]
