"""What the rules said about one event, in the form the correlator uses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pivotwatch.correlator.sigma.attack import TACTIC_ORDER
from pivotwatch.schemas.event import Event, Source

__all__ = [
    "LEVEL_RANK",
    "TACTIC_ORDER",
    "Detection",
    "detection_from_falco_tags",
    "merge_detections",
]

LEVEL_RANK = {"informational": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

_FALCO_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_FALCO_PRIORITY_LEVEL = {
    "emergency": "critical",
    "alert": "critical",
    "critical": "critical",
    "error": "high",
    "warning": "medium",
    "notice": "low",
    "informational": "informational",
    "info": "informational",
    "debug": "informational",
}


@dataclass(frozen=True, slots=True)
class Detection:
    """The rule matches of one event, merged: rule ids, ATT&CK ids and the top level."""

    rules: tuple[str, ...]
    titles: tuple[str, ...]
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    level: str

    @property
    def rank(self) -> int:
        return LEVEL_RANK.get(self.level, 0)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def merge_detections(matches: Sequence[object]) -> Detection | None:
    """Merge rule matches (objects with rule_id, title, level, techniques, tactics)."""
    if not matches:
        return None
    level = max(
        (str(getattr(match, "level", "low")) for match in matches),
        key=lambda name: LEVEL_RANK.get(name, 0),
    )
    return Detection(
        rules=_unique(str(getattr(match, "rule_id", "")) for match in matches),
        titles=_unique(str(getattr(match, "title", "")) for match in matches),
        techniques=_unique(t for match in matches for t in getattr(match, "techniques", ())),
        tactics=_unique(t for match in matches for t in getattr(match, "tactics", ())),
        level=level,
    )


def detection_from_falco_tags(event: Event) -> Detection | None:
    """Read ATT&CK ids from a Falco alert's own tags (``T1059``, ``mitre_execution``).

    Falco's default rules carry these tags, so an alert that no pivotwatch rule matches
    still counts as a runtime signal with the techniques its rule author gave it.
    """
    if event.source is not Source.FALCO:
        return None
    techniques = tuple(tag for tag in event.tags if _FALCO_TECHNIQUE.match(tag))
    tactics = tuple(
        tag.removeprefix("mitre_").replace("_", "-")
        for tag in event.tags
        if tag.startswith("mitre_") and tag.removeprefix("mitre_").replace("_", "-") in TACTIC_ORDER
    )
    if not techniques and not tactics:
        return None
    level = _FALCO_PRIORITY_LEVEL.get((event.priority or "").lower(), "low")
    return Detection(
        rules=(f"falco:{event.action}",),
        titles=(event.action,),
        techniques=techniques,
        tactics=tactics,
        level=level,
    )
