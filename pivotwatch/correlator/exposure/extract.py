"""Turn a normalized event into the exposures it opens or closes."""

from __future__ import annotations

import logging
from typing import Final

from pivotwatch.correlator.exposure.fields import as_mapping
from pivotwatch.correlator.exposure.gcp import (
    gcp_account,
    iam_policy_transitions,
    is_set_iam_policy,
)
from pivotwatch.correlator.exposure.model import Transition
from pivotwatch.correlator.exposure.s3 import S3_ACTIONS, bucket_transitions
from pivotwatch.correlator.exposure.security_groups import security_group_transitions
from pivotwatch.schemas.event import Event, EventKind, Source

__all__ = ["call_failed", "extract_transitions"]

logger = logging.getLogger(__name__)

_SECURITY_GROUP_ACTIONS: Final = frozenset(
    {"AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "DeleteSecurityGroup"}
)


def extract_transitions(event: Event) -> list[Transition]:
    """Return the exposures that the event opens or closes, or an empty list.

    A failed call changes nothing, so it is neither an exposure nor a revert.
    """
    if event.kind is not EventKind.API_CALL or not _is_exposure_action(event):
        return []
    if call_failed(event):
        logger.debug("event %s: %s failed, so it changes no exposure", event.event_id, event.action)
        return []

    if event.source is Source.GCP_AUDIT:
        project = gcp_account(event)
        return iam_policy_transitions(event, project) if project else []
    account = event.account or event.raw.get("recipientAccountId")
    if not isinstance(account, str) or not account:
        logger.debug("event %s: %s names no AWS account", event.event_id, event.action)
        return []
    if event.action in _SECURITY_GROUP_ACTIONS:
        return security_group_transitions(event, account)
    return bucket_transitions(event, account)


def call_failed(event: Event) -> bool:
    """Tell whether the call was rejected: CloudTrail ``errorCode``, GCP non-zero status."""
    if event.error_code:
        return True
    if event.source is Source.CLOUDTRAIL:
        return bool(event.raw.get("errorCode"))
    status = as_mapping(as_mapping(event.raw.get("protoPayload")).get("status"))
    return bool(status.get("code"))


def _is_exposure_action(event: Event) -> bool:
    if event.source is Source.CLOUDTRAIL:
        return event.action in _SECURITY_GROUP_ACTIONS or event.action in S3_ACTIONS
    if event.source is Source.GCP_AUDIT:
        return is_set_iam_policy(event.action)
    return False
