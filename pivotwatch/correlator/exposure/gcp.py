"""GCP IAM bindings that grant a role to every Internet user, and their removal.

A binding is public when its member is ``allUsers`` or ``allAuthenticatedUsers``.
``SetIamPolicy`` calls (``storage.setIamPermissions`` on buckets) are read in two
shapes:

- binding deltas (``serviceData.policyDelta``, ``metadata.policyDelta`` or BigQuery's
  ``metadata.datasetChange``): ``ADD`` of a public binding opens, ``REMOVE`` closes;
- the full new policy in ``request.policy``, used only when there are no deltas: each
  public binding in it opens, and every other public binding opened before is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Final

from pivotwatch.correlator.exposure.attack import PUBLIC_IAM_BINDING, PUBLIC_STORAGE
from pivotwatch.correlator.exposure.fields import as_mapping, iter_items, text_values
from pivotwatch.correlator.exposure.model import Direction, Facet, Transition
from pivotwatch.schemas.event import Event

__all__ = ["gcp_account", "iam_policy_transitions", "is_set_iam_policy"]

logger = logging.getLogger(__name__)

_PUBLIC_MEMBERS: Final = frozenset({"allUsers", "allAuthenticatedUsers"})
_DATA_SERVICES: Final = frozenset({"storage.googleapis.com", "bigquery.googleapis.com"})
_BUCKET_PREFIX: Final = "projects/_/buckets/"


def is_set_iam_policy(method: str) -> bool:
    """Tell whether a GCP ``methodName`` replaces or edits a resource's IAM policy."""
    lowered = method.lower()
    return lowered.endswith(("setiampolicy", "setiampermissions"))


def gcp_account(event: Event) -> str | None:
    """Return the project id of a GCP audit event."""
    if event.account:
        return event.account
    labels = as_mapping(as_mapping(event.raw.get("resource")).get("labels"))
    project = labels.get("project_id")
    return project if isinstance(project, str) and project else None


def iam_policy_transitions(event: Event, account: str) -> list[Transition]:
    """Return the public bindings that a successful SetIamPolicy call adds or removes."""
    payload = as_mapping(event.raw.get("protoPayload"))
    resource = payload.get("resourceName")
    if not isinstance(resource, str) or not resource:
        logger.debug("event %s: %s has no resourceName", event.event_id, event.action)
        return []

    deltas = list(_binding_deltas(payload))
    if deltas:
        return [
            _transition(event, account, resource, direction, role, member)
            for direction, role, member in deltas
        ]
    policy = as_mapping(as_mapping(payload.get("request")).get("policy"))
    if not policy:
        return []
    return _full_policy_transitions(event, account, resource, policy)


def _binding_deltas(payload: Mapping[str, Any]) -> Iterator[tuple[Direction, str, str]]:
    metadata = as_mapping(payload.get("metadata"))
    sources = (
        as_mapping(as_mapping(payload.get("serviceData")).get("policyDelta")),
        as_mapping(metadata.get("policyDelta")),
        as_mapping(metadata.get("datasetChange")),
    )
    for source in sources:
        for delta in iter_items(source.get("bindingDeltas")):
            member = delta.get("member")
            role = delta.get("role")
            action = str(delta.get("action", "")).upper()
            if member not in _PUBLIC_MEMBERS or not isinstance(role, str):
                continue
            if action == "ADD":
                yield Direction.OPEN, role, str(member)
            elif action == "REMOVE":
                yield Direction.CLOSE, role, str(member)


def _full_policy_transitions(
    event: Event, account: str, resource: str, policy: Mapping[str, Any]
) -> list[Transition]:
    granted: list[tuple[str, str]] = []
    for binding in iter_items(policy.get("bindings")):
        role = binding.get("role")
        if not isinstance(role, str):
            continue
        for member in text_values(binding.get("members")):
            if member in _PUBLIC_MEMBERS:
                granted.append((role, member))

    transitions = [
        _transition(event, account, resource, Direction.OPEN, role, member)
        for role, member in granted
    ]
    transitions.append(
        Transition(
            direction=Direction.CLOSE,
            event=event,
            account=account,
            resource=resource,
            facet=Facet.IAM,
            kept_rules=frozenset(_rule(role, member) for role, member in granted),
        )
    )
    return transitions


def _transition(
    event: Event, account: str, resource: str, direction: Direction, role: str, member: str
) -> Transition:
    service = event.service or as_mapping(event.raw.get("protoPayload")).get("serviceName")
    techniques, stages = PUBLIC_STORAGE if service in _DATA_SERVICES else PUBLIC_IAM_BINDING
    name = _display_name(resource)
    return Transition(
        direction=direction,
        event=event,
        account=account,
        resource=resource,
        facet=Facet.IAM,
        rule=_rule(role, member),
        exposure=f"{name} grants {role} to {member}",
        headline=f"{name} granted {role} to {member}",
        techniques=techniques,
        stages=stages,
    )


def _rule(role: str, member: str) -> str:
    return f"{role} {member}"


def _display_name(resource: str) -> str:
    if resource.startswith(_BUCKET_PREFIX):
        return f"GCS bucket {resource.removeprefix(_BUCKET_PREFIX)}"
    return resource
