"""Names of the nodes in the identity graph.

Every node id is a string ``<type>:<name>``, so ids from different sources cannot
collide and a node's type is visible in logs.
"""

from __future__ import annotations

import re

__all__ = [
    "address_node",
    "host_node",
    "identity_node",
    "key_node",
    "service_account_node",
    "workload_node",
]

# ``system:serviceaccount:<namespace>:<name>``, the subject of an IRSA web identity token.
_KUBERNETES_SUBJECT = re.compile(r"^system:serviceaccount:(?P<namespace>[^:]+):(?P<name>[^:]+)$")
# ``serviceAccount:<project>.svc.id.goog[<namespace>/<name>]``, a GKE Workload Identity subject.
_WORKLOAD_IDENTITY_SUBJECT = re.compile(
    r"^serviceAccount:[^\[\]]+\.svc\.id\.goog\[(?P<namespace>[^/\]]+)/(?P<name>[^\]]+)\]$"
)


def workload_node(
    namespace: str | None, pod: str | None, container_id: str | None, host: str | None
) -> str:
    """Return the node of a pod, else of a bare container, else of the host process."""
    if namespace and pod:
        return f"workload:{namespace}/{pod}"
    if container_id and container_id != "host":
        return f"workload:container/{container_id}"
    return f"workload:host/{host or 'unknown'}"


def host_node(name: str) -> str:
    return f"host:{name.lower()}"


def address_node(address: str) -> str:
    return f"address:{address}"


def identity_node(principal_id: str) -> str:
    return f"identity:{principal_id}"


def key_node(access_key_id: str) -> str:
    return f"key:{access_key_id}"


def service_account_node(namespace: str, name: str) -> str:
    """Return the node of a Kubernetes service account."""
    return f"ksa:{namespace}/{name}"


def kubernetes_subject_account(subject: str | None) -> tuple[str, str] | None:
    """Return (namespace, name) of the Kubernetes service account a token subject names."""
    if not subject:
        return None
    match = _KUBERNETES_SUBJECT.match(subject) or _WORKLOAD_IDENTITY_SUBJECT.match(subject)
    if match is None:
        return None
    return match["namespace"], match["name"]
