"""MITRE ATT&CK tags: technique ids and tactic names read from Sigma rule tags.

Sigma rules tag ATT&CK as ``attack.<tactic>`` (``attack.credential-access``) and
``attack.t<id>`` (``attack.t1552.005``). Tactics come out as ATT&CK short names in the
order of the ATT&CK Enterprise matrix, because the correlator uses them as chain stages.
A rule that carries technique tags but no tactic tag gets its tactics from
`TECHNIQUE_TACTICS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TACTIC_ORDER", "TECHNIQUE_TACTICS", "AttackTags", "parse_attack_tags"]

TACTIC_ORDER: tuple[str, ...] = (
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "stealth",
    "defense-impairment",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)
"""ATT&CK Enterprise tactics, in matrix order.

ATT&CK v18 split ``defense-evasion`` into ``stealth`` and ``defense-impairment``; SigmaHQ
rules use the new names and older rules the old one, so all three are accepted and sit
where defense evasion sat.
"""

_TACTIC_RANK = {name: rank for rank, name in enumerate(TACTIC_ORDER)}

_EXECUTION = ("execution",)
_CREDENTIAL_ACCESS = ("credential-access",)
_DISCOVERY = ("discovery",)
_PERSISTENCE_ESCALATION = ("persistence", "privilege-escalation")
_IMPACT = ("impact",)

TECHNIQUE_TACTICS: dict[str, tuple[str, ...]] = {
    # Execution
    "T1059": _EXECUTION,
    "T1059.004": _EXECUTION,
    "T1059.009": _EXECUTION,
    "T1609": _EXECUTION,
    "T1610": ("execution", "defense-evasion"),
    # Persistence and privilege escalation
    "T1098": _PERSISTENCE_ESCALATION,
    "T1098.001": _PERSISTENCE_ESCALATION,
    "T1098.003": _PERSISTENCE_ESCALATION,
    "T1136": ("persistence",),
    "T1136.003": ("persistence",),
    "T1078": ("initial-access", "persistence", "privilege-escalation", "defense-evasion"),
    "T1078.004": ("initial-access", "persistence", "privilege-escalation", "defense-evasion"),
    "T1548.005": ("privilege-escalation", "defense-evasion"),
    "T1611": ("privilege-escalation",),
    # Defense evasion
    "T1562": ("defense-evasion",),
    "T1562.001": ("defense-evasion",),
    "T1562.007": ("defense-evasion",),
    "T1562.008": ("defense-evasion",),
    "T1685": ("defense-impairment",),
    "T1685.002": ("defense-impairment",),
    "T1070": ("defense-evasion",),
    "T1550": ("defense-evasion", "lateral-movement"),
    "T1550.001": ("defense-evasion", "lateral-movement"),
    # Credential access
    "T1528": _CREDENTIAL_ACCESS,
    "T1552": _CREDENTIAL_ACCESS,
    "T1552.001": _CREDENTIAL_ACCESS,
    "T1552.005": _CREDENTIAL_ACCESS,
    "T1552.007": _CREDENTIAL_ACCESS,
    "T1555": _CREDENTIAL_ACCESS,
    "T1555.006": _CREDENTIAL_ACCESS,
    # Discovery
    "T1033": _DISCOVERY,
    "T1087": _DISCOVERY,
    "T1087.004": _DISCOVERY,
    "T1069.003": _DISCOVERY,
    "T1526": _DISCOVERY,
    "T1580": _DISCOVERY,
    "T1613": _DISCOVERY,
    "T1619": _DISCOVERY,
    # Collection, command and control, exfiltration
    "T1530": ("collection",),
    "T1105": ("command-and-control",),
    "T1537": ("exfiltration",),
    # Impact
    "T1485": _IMPACT,
    "T1486": _IMPACT,
    "T1490": _IMPACT,
    "T1496": _IMPACT,
    "T1496.001": _IMPACT,
    "T1531": _IMPACT,
}
"""Tactics of the techniques that cloud and container rules use, from ATT&CK Enterprise.

Only consulted for a rule without tactic tags. The defense-evasion techniques are listed
under their pre-v18 tactic, except the v18 ids (T1685), which exist only under the new one.
"""

_TECHNIQUE_TAG = re.compile(r"^t(\d{4})(?:\.(\d{3}))?$")


@dataclass(frozen=True, slots=True)
class AttackTags:
    """Technique ids (``T1552.005``) and ordered tactic names of one rule."""

    techniques: tuple[str, ...]
    tactics: tuple[str, ...]


def parse_attack_tags(tags: Iterable[str]) -> AttackTags:
    """Read the ATT&CK techniques and tactics from a rule's tags.

    Tags of other namespaces, ATT&CK group and software tags (``attack.g0001``,
    ``attack.s0002``) and unknown tactic names are ignored. Underscores in tactic names
    (``attack.credential_access``, the older Sigma form) are read as hyphens.
    """
    techniques: list[str] = []
    tactics: set[str] = set()

    for tag in tags:
        namespace, _, name = tag.lower().partition(".")
        if namespace != "attack" or not name:
            continue
        technique = _technique_id(name)
        if technique is not None:
            if technique not in techniques:
                techniques.append(technique)
            continue
        tactic = name.replace("_", "-")
        if tactic in _TACTIC_RANK:
            tactics.add(tactic)

    if not tactics:
        for technique in techniques:
            tactics.update(_tactics_of(technique))
    return AttackTags(tuple(techniques), tuple(sorted(tactics, key=_TACTIC_RANK.__getitem__)))


def _technique_id(name: str) -> str | None:
    match = _TECHNIQUE_TAG.match(name)
    if match is None:
        return None
    base, sub = match.groups()
    return f"T{base}.{sub}" if sub else f"T{base}"


def _tactics_of(technique: str) -> tuple[str, ...]:
    """Tactics of a technique, falling back to its parent technique for an unlisted one."""
    known = TECHNIQUE_TACTICS.get(technique)
    if known is not None:
        return known
    return TECHNIQUE_TACTICS.get(technique.partition(".")[0], ())
