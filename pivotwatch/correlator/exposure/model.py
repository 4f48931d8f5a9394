"""What the exposure extractors produce and what the tracker reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pivotwatch.schemas.event import Event

__all__ = ["Direction", "Facet", "TransientExposure", "Transition"]


class Direction(StrEnum):
    """Whether a configuration change opens an exposure or closes one."""

    OPEN = "open"
    CLOSE = "close"


class Facet(StrEnum):
    """The part of a resource's configuration that an exposure lives in.

    A close only affects opens of its own facet: deleting a bucket policy does not
    undo a public ACL on the same bucket.
    """

    INGRESS = "ingress"
    """A security group's inbound rules."""
    BUCKET_POLICY = "bucket_policy"
    BUCKET_ACL = "bucket_acl"
    PUBLIC_ACCESS_BLOCK = "public_access_block"
    """The bucket-level S3 Block Public Access settings."""
    IAM = "iam"
    """A GCP resource's IAM policy."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One exposure opened or closed by one successful API call.

    ``rule`` names the exposed rule inside the facet, such as ``tcp/22 0.0.0.0/0`` or
    ``roles/storage.objectViewer allUsers``. A close with neither ``rule`` nor
    ``rule_ids`` closes every open rule of its facet, except those in ``kept_rules``
    (rules that a full replacement policy still grants). A close with ``facet`` None
    closes every facet, as deleting the whole resource does.
    """

    direction: Direction
    event: Event
    account: str
    resource: str
    """ARN of the AWS resource, or the GCP ``resourceName``."""
    facet: Facet | None
    rule: str | None = None
    rule_ids: frozenset[str] = frozenset()
    """Provider ids of the rule, such as security group rule ids (``sgr-...``)."""
    kept_rules: frozenset[str] = frozenset()
    exposure: str = ""
    """The exposure in words, for example ``security group sg-1 ingress tcp/22 from 0.0.0.0/0``."""
    headline: str = ""
    """The start of the alert title, for example ``S3 bucket acme-x was public``."""
    techniques: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    """ATT&CK tactics of ``techniques``, in matrix order."""

    def closes(self, opened: Transition) -> bool:
        """Tell whether this close undoes the exposure that ``opened`` created."""
        if self.direction is not Direction.CLOSE or opened.direction is not Direction.OPEN:
            return False
        if self.facet is not None and self.facet is not opened.facet:
            return False

        if self.rule is None and not self.rule_ids:
            return opened.rule not in self.kept_rules
        if self.rule is not None and self.rule == opened.rule:
            return True
        return bool(self.rule_ids & opened.rule_ids)


@dataclass(frozen=True, slots=True)
class TransientExposure:
    """A risky configuration change that was reverted within the transient window."""

    account: str
    resource: str
    """ARN of the AWS resource, or the GCP ``resourceName``."""
    exposure: str
    change: Event
    revert: Event
    changed_by: str | None
    reverted_by: str | None
    duration: timedelta
    techniques: tuple[str, ...]
    stages: tuple[str, ...]
    """ATT&CK tactics of ``techniques``, in matrix order."""
    headline: str
    """The start of the alert title; `exposure_alert` appends the duration."""
