"""ATT&CK techniques and tactics that each kind of exposure maps to.

Ids and names are from ATT&CK Enterprise v17. ATT&CK later split the defense-evasion
tactic in two, and the correlator's tactic order accepts both forms, so the pre-split
tactic is kept here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLOUD_FIREWALL", "PUBLIC_IAM_BINDING", "PUBLIC_STORAGE", "AttackMapping"]

AttackMapping = tuple[tuple[str, ...], tuple[str, ...]]
"""Technique ids and their tactics, in matrix order."""

CLOUD_FIREWALL: Final[AttackMapping] = (("T1562.007",), ("defense-evasion",))
"""Impair Defenses: Disable or Modify Cloud Firewall; an ingress rule open to the world."""

PUBLIC_STORAGE: Final[AttackMapping] = (("T1530",), ("collection",))
"""Data from Cloud Storage; a bucket or dataset that anyone can read."""

PUBLIC_IAM_BINDING: Final[AttackMapping] = (
    ("T1098.003",),
    ("persistence", "privilege-escalation"),
)
"""Account Manipulation: Additional Cloud Roles; a role granted to every Internet user
on a GCP resource that is not a storage container."""
