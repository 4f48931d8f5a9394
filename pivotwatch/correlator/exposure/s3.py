"""S3 buckets made public, and made private again, by bucket-level calls.

Three facets of a bucket are tracked apart, because each can expose it alone:

- bucket policy: ``PutBucketPolicy`` with an ``Allow`` statement for ``Principal: "*"``
  (or ``{"AWS": "*"}``) and no condition that limits who can use it opens;
  ``DeleteBucketPolicy`` or a ``PutBucketPolicy`` that is not public closes.
- ACL: ``PutBucketAcl`` granting the ``AllUsers`` or ``AuthenticatedUsers`` group, by
  grant or canned ACL, opens; a ``PutBucketAcl`` without such a grant closes.
- Block Public Access: ``DeletePublicAccessBlock``, or ``PutPublicAccessBlock`` with any
  of the four settings off, opens; ``PutPublicAccessBlock`` with all four on closes.
  Only the bucket-level calls count: the account-level ones (S3 Control) name no bucket.

``DeleteBucket`` closes every facet.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson

from pivotwatch.correlator.exposure.attack import PUBLIC_STORAGE
from pivotwatch.correlator.exposure.fields import (
    as_mapping,
    iter_items,
    request_parameters,
    text_values,
)
from pivotwatch.correlator.exposure.model import Direction, Facet, Transition
from pivotwatch.schemas.event import Event

__all__ = ["S3_ACTIONS", "bucket_transitions", "is_public_policy"]

logger = logging.getLogger(__name__)

S3_ACTIONS: Final = frozenset(
    {
        "PutBucketPolicy",
        "DeleteBucketPolicy",
        "PutBucketAcl",
        "PutPublicAccessBlock",
        "DeletePublicAccessBlock",
        "DeleteBucket",
    }
)

_PUBLIC_GROUPS: Final = {
    "http://acs.amazonaws.com/groups/global/AllUsers": "AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers": "AuthenticatedUsers",
}
_PUBLIC_CANNED_ACLS: Final = frozenset({"public-read", "public-read-write", "authenticated-read"})
_GRANT_HEADERS: Final = (
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
)
_BLOCK_SETTINGS: Final = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)

_RESTRICTING_CONDITION_KEYS: Final = frozenset(
    {
        "aws:sourceip",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:sourceowner",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:userid",
        "aws:username",
        "s3:dataaccesspointaccount",
        "s3:dataaccesspointarn",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    }
)
"""Condition keys that limit a statement to known callers or networks.

The Amazon S3 API reference (``PublicAccessBlockConfiguration``) lists the keys with
which S3 treats a ``Principal: "*"`` statement as not public when the value is fixed
(no wildcard). The principal account, organization and user name keys are added
because they limit callers to known accounts too. ``aws:SourceIp`` counts only for
ranges smaller than the whole Internet.
"""


def bucket_transitions(event: Event, account: str) -> list[Transition]:
    """Return the exposures that a successful bucket-level S3 call opens or closes."""
    parameters = request_parameters(event)
    bucket = parameters.get("bucketName")
    if not isinstance(bucket, str) or not bucket:
        logger.debug("event %s: %s names no bucket", event.event_id, event.action)
        return []
    resource = f"arn:aws:s3:::{bucket}"

    if event.action == "DeleteBucket":
        return [_close(event, account, resource, facet=None)]
    if event.action == "DeleteBucketPolicy":
        return [_close(event, account, resource, Facet.BUCKET_POLICY)]
    if event.action == "PutBucketPolicy":
        return _policy_transitions(event, account, resource, bucket, parameters)
    if event.action == "PutBucketAcl":
        return _acl_transitions(event, account, resource, bucket, parameters)
    return _block_transitions(event, account, resource, bucket, parameters)


def _policy_transitions(
    event: Event, account: str, resource: str, bucket: str, parameters: Mapping[str, Any]
) -> list[Transition]:
    policy = _read_policy(event, parameters.get("bucketPolicy"))
    if policy is None:
        return []

    public_actions = is_public_policy(policy)
    if not public_actions:
        return [_close(event, account, resource, Facet.BUCKET_POLICY)]
    actions = ", ".join(public_actions)
    return [
        _open(
            event,
            account,
            resource,
            Facet.BUCKET_POLICY,
            exposure=f"S3 bucket {bucket} policy allows {actions} to everyone (Principal *)",
            headline=f"S3 bucket {bucket} was public",
        )
    ]


def _read_policy(event: Event, value: Any) -> Mapping[str, Any] | None:
    """Return the bucket policy, which CloudTrail writes as an object or a JSON string."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, Mapping):
            return decoded
    logger.warning(
        "event %s: PutBucketPolicy carries no readable bucketPolicy (%s), so it is neither "
        "an exposure nor a revert",
        event.event_id,
        type(value).__name__,
    )
    return None


def is_public_policy(policy: Mapping[str, Any]) -> list[str]:
    """Return the actions that the policy allows to everyone, empty if it is not public."""
    actions: list[str] = []
    for statement in iter_items(policy.get("Statement")):
        if statement.get("Effect") != "Allow" or not _is_everyone(statement.get("Principal")):
            continue
        if _is_restricted(as_mapping(statement.get("Condition"))):
            continue
        for action in text_values(statement.get("Action")) or ["(any action)"]:
            if action not in actions:
                actions.append(action)
    return actions


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return "*" in text_values(as_mapping(principal).get("AWS"))


def _is_restricted(condition: Mapping[str, Any]) -> bool:
    for operator, clauses in condition.items():
        if "ifexists" in operator.lower():
            continue
        for key, value in as_mapping(clauses).items():
            if _restricts(key.lower(), text_values(value) or [str(value)]):
                return True
    return False


def _restricts(key: str, values: list[str]) -> bool:
    if key not in _RESTRICTING_CONDITION_KEYS or any("*" in value for value in values):
        return False
    if key != "aws:sourceip":
        return True
    for value in values:
        try:
            if ipaddress.ip_network(value, strict=False).prefixlen == 0:
                return False
        except ValueError:
            continue
    return True


def _acl_transitions(
    event: Event, account: str, resource: str, bucket: str, parameters: Mapping[str, Any]
) -> list[Transition]:
    grants = _public_grants(parameters)
    if not grants:
        return [_close(event, account, resource, Facet.BUCKET_ACL)]
    granted = ", ".join(grants)
    return [
        _open(
            event,
            account,
            resource,
            Facet.BUCKET_ACL,
            exposure=f"S3 bucket {bucket} ACL grants {granted}",
            headline=f"S3 bucket {bucket} was public through its ACL",
        )
    ]


def _public_grants(parameters: Mapping[str, Any]) -> list[str]:
    """Return the public grants of a PutBucketAcl, such as ``READ to AllUsers``."""
    grants: list[str] = []
    for canned in text_values(parameters.get("x-amz-acl")):
        if canned in _PUBLIC_CANNED_ACLS:
            grants.append(f"canned ACL {canned}")

    policy = as_mapping(parameters.get("AccessControlPolicy"))
    access_list = as_mapping(policy.get("AccessControlList"))
    for grant in iter_items(access_list.get("Grant")):
        grantee = as_mapping(grant.get("Grantee"))
        group = _PUBLIC_GROUPS.get(str(grantee.get("URI") or grantee.get("uri") or ""))
        if group is not None:
            grants.append(f"{grant.get('Permission', 'access')} to {group}")

    for header in _GRANT_HEADERS:
        for value in text_values(parameters.get(header)):
            for uri, group in _PUBLIC_GROUPS.items():
                if uri in value:
                    permission = header.removeprefix("x-amz-grant-").upper()
                    grants.append(f"{permission} to {group}")
    return grants


def _block_transitions(
    event: Event, account: str, resource: str, bucket: str, parameters: Mapping[str, Any]
) -> list[Transition]:
    if event.action == "DeletePublicAccessBlock":
        turned_off = list(_BLOCK_SETTINGS)
    else:
        configuration = as_mapping(parameters.get("PublicAccessBlockConfiguration"))
        if not configuration:
            logger.debug("event %s: PutPublicAccessBlock has no configuration", event.event_id)
            return []
        # S3 reads a setting left out of the request as false.
        turned_off = [name for name in _BLOCK_SETTINGS if not _is_true(configuration.get(name))]

    if not turned_off:
        return [_close(event, account, resource, Facet.PUBLIC_ACCESS_BLOCK)]
    settings = ", ".join(turned_off)
    return [
        _open(
            event,
            account,
            resource,
            Facet.PUBLIC_ACCESS_BLOCK,
            exposure=f"S3 bucket {bucket} Block Public Access turned off ({settings})",
            headline=f"S3 bucket {bucket} had Block Public Access turned off",
        )
    ]


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _open(
    event: Event, account: str, resource: str, facet: Facet, *, exposure: str, headline: str
) -> Transition:
    techniques, stages = PUBLIC_STORAGE
    return Transition(
        direction=Direction.OPEN,
        event=event,
        account=account,
        resource=resource,
        facet=facet,
        exposure=exposure,
        headline=headline,
        techniques=techniques,
        stages=stages,
    )


def _close(event: Event, account: str, resource: str, facet: Facet | None) -> Transition:
    return Transition(
        direction=Direction.CLOSE, event=event, account=account, resource=resource, facet=facet
    )
