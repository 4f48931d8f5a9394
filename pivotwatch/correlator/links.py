"""Extraction of identity-graph links from normalized events.

Each function reads one kind of evidence and adds the links it proves, following the
linking table of the design: inventory (pods, nodes, instances, service accounts),
runtime alerts (pod on host), instance-profile sessions, web identity exchanges,
role assumption, new users and keys, and GCP impersonation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pivotwatch.correlator.graph import IdentityGraph, Relation
from pivotwatch.correlator.nodes import (
    address_node,
    host_node,
    identity_node,
    key_node,
    kubernetes_subject_account,
    service_account_node,
    workload_node,
)
from pivotwatch.schemas.event import Event, EventKind, Source

__all__ = ["Linker", "dig"]

logger = logging.getLogger(__name__)

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"
# Inventory is state, not an event in the window. Its edges get this time, far in the
# future, so window expiry never removes them and only the caps do.
PERSISTENT = datetime.max.replace(tzinfo=UTC)


def dig(record: Any, *path: str) -> Any:
    """Return the value at ``path`` in nested mappings, or None where a step is missing."""
    for step in path:
        if not isinstance(record, dict):
            return None
        record = record.get(step)
    return record


# Falco's container plugin exposes container labels either way, depending on version.
ECS_TASK_LABELS = (
    "container.label[com.amazonaws.ecs.task-arn]",
    "container.label.com.amazonaws.ecs.task-arn",
)


def ecs_task_id(alert: dict[str, Any]) -> str | None:
    """Return the ECS task id of a Falco alert's container, from its task ARN label."""
    fields = alert.get("output_fields")
    if not isinstance(fields, dict):
        return None
    for label in ECS_TASK_LABELS:
        arn = fields.get(label)
        if isinstance(arn, str) and ":task/" in arn:
            return arn.rsplit("/", 1)[-1] or None
    return None


def _strings(values: Iterable[Any]) -> list[str]:
    return [value for value in values if isinstance(value, str) and value]


class Linker:
    """Adds the links an event proves to one key's graph.

    ``instance_hosts`` maps EC2 instance ids to host nodes, learned from inventory, so an
    instance-profile session (whose session name is the instance id) links to its host.
    """

    def __init__(self, graph: IdentityGraph) -> None:
        self.graph = graph
        self.instance_hosts: dict[str, str] = {}
        self.task_workloads: dict[str, str] = {}
        """ECS task id -> workload node, learned from Falco alerts' container labels."""
        self._handlers: dict[str, Callable[[Event, str], None]] = {
            "AssumeRole": self._link_assumed_role,
            "AssumeRoleWithWebIdentity": self._link_assumed_role,
            "AssumeRoleWithSAML": self._link_assumed_role,
            "AssumeRoleForPodIdentity": self._link_assumed_role,
            "CreateUser": self._link_created_user,
            "CreateLoginProfile": self._link_created_user,
            "UpdateLoginProfile": self._link_created_user,
            "CreateAccessKey": self._link_created_key,
            "google.iam.admin.v1.CreateServiceAccountKey": self._link_gcp_service_account,
            "GenerateAccessToken": self._link_gcp_service_account,
            "SignBlob": self._link_gcp_service_account,
            "SignJwt": self._link_gcp_service_account,
            "GenerateIdToken": self._link_gcp_service_account,
        }
        self.deriving_actions = frozenset(self._handlers)
        """Names of the calls that can derive a new identity."""

    def link(self, event: Event) -> None:
        """Add every link that ``event`` proves."""
        if event.kind is EventKind.ASSET:
            self._link_asset(event)
        elif event.source is Source.FALCO:
            self._link_runtime(event)
        elif event.principal is not None:
            self._link_cloud_call(event)

    # Inventory.

    def _link_asset(self, event: Event) -> None:
        handlers = {
            "aws.ec2.instance": self._link_ec2_instance,
            "gcp.compute.instance": self._link_gce_instance,
            "k8s.pod": self._link_pod,
            "k8s.serviceaccount": self._link_service_account,
        }
        handler = handlers.get(event.action)
        if handler is not None:
            handler(event.raw)

    def _link_ec2_instance(self, instance: dict[str, Any]) -> None:
        if "Instances" in instance:  # a whole reservation
            for item in instance.get("Instances") or []:
                if isinstance(item, dict):
                    self._link_ec2_instance(item)
            return
        name = instance.get("PrivateDnsName") or instance.get("InstanceId")
        if not isinstance(name, str) or not name:
            return
        host = host_node(name)
        instance_id = instance.get("InstanceId")
        if isinstance(instance_id, str):
            self.instance_hosts[instance_id] = host
        addresses = [instance.get("PrivateIpAddress"), instance.get("PublicIpAddress")]
        for interface in instance.get("NetworkInterfaces") or []:
            for private in dig(interface, "PrivateIpAddresses") or []:
                addresses.append(dig(private, "PrivateIpAddress"))
                addresses.append(dig(private, "Association", "PublicIp"))
        for address in _strings(addresses):
            self.graph.link(host, address_node(address), Relation.HAS_ADDRESS, PERSISTENT)

    def _link_gce_instance(self, instance: dict[str, Any]) -> None:
        name = instance.get("name")
        if not isinstance(name, str) or not name:
            return
        host = host_node(name)
        for interface in instance.get("networkInterfaces") or []:
            addresses = [dig(interface, "networkIP")]
            addresses += [dig(config, "natIP") for config in dig(interface, "accessConfigs") or []]
            for address in _strings(addresses):
                self.graph.link(host, address_node(address), Relation.HAS_ADDRESS, PERSISTENT)
        for account in instance.get("serviceAccounts") or []:
            email = dig(account, "email")
            if isinstance(email, str) and email:
                self.graph.link(host, identity_node(email), Relation.HOLDS, PERSISTENT)

    def _link_pod(self, pod: dict[str, Any]) -> None:
        namespace = dig(pod, "metadata", "namespace")
        name = dig(pod, "metadata", "name")
        if not isinstance(namespace, str) or not isinstance(name, str):
            return
        workload = workload_node(namespace, name, None, None)
        node_name = dig(pod, "spec", "nodeName")
        if isinstance(node_name, str) and node_name:
            self.graph.link(workload, host_node(node_name), Relation.RUNS_ON, PERSISTENT)
        account = dig(pod, "spec", "serviceAccountName") or "default"
        self.graph.link(
            workload, service_account_node(namespace, account), Relation.USES_ACCOUNT, PERSISTENT
        )

    def _link_service_account(self, account: dict[str, Any]) -> None:
        namespace = dig(account, "metadata", "namespace")
        name = dig(account, "metadata", "name")
        if not isinstance(namespace, str) or not isinstance(name, str):
            return
        node = service_account_node(namespace, name)
        annotations = dig(account, "metadata", "annotations") or {}
        email = annotations.get(WORKLOAD_IDENTITY_ANNOTATION)
        if isinstance(email, str) and email:
            self.graph.link(node, identity_node(email), Relation.HOLDS, PERSISTENT)
        role = annotations.get(IRSA_ANNOTATION)
        if isinstance(role, str) and role:
            self.graph.graph.add_node(node)
            self.graph.graph.nodes[node]["irsa_role"] = role

    # Runtime.

    def _link_runtime(self, event: Event) -> None:
        workload = event.workload
        if workload is None or not workload.host:
            return
        node = workload_node(workload.namespace, workload.pod, workload.container_id, workload.host)
        self.graph.link(
            node, host_node(workload.host), Relation.RUNS_ON, event.time, event.event_id
        )
        task = ecs_task_id(event.raw)
        if task is not None:
            self.task_workloads[task] = node

    # Cloud calls.

    def _link_cloud_call(self, event: Event) -> None:
        principal = event.principal
        assert principal is not None
        actor = self.actor_node(event)
        self._link_instance_session(event, actor)
        self._link_workload_identity(event, actor)
        if principal.access_key_id:
            self.graph.link(
                key_node(principal.access_key_id),
                actor,
                Relation.KEY_OF,
                event.time,
                event.event_id,
            )
        for delegate in principal.delegation:
            # The caller acted through the delegate's credentials (GCP impersonation).
            self.graph.link(
                identity_node(delegate), actor, Relation.DERIVES, event.time, event.event_id
            )
        if event.error_code:
            return
        handler = self._handlers.get(event.action)
        if handler is not None:
            handler(event, actor)

    def actor_node(self, event: Event) -> str:
        """Return the graph node of the principal that made a cloud call."""
        principal = event.principal
        assert principal is not None
        account = kubernetes_subject_account(principal.subject)
        if principal.type == "WebIdentityUser" and account is not None:
            return service_account_node(*account)
        return identity_node(principal.id)

    def _link_instance_session(self, event: Event, actor: str) -> None:
        principal = event.principal
        assert principal is not None
        session = principal.session_name or ""
        host = self.instance_hosts.get(session)
        if host is not None:
            self.graph.link(host, actor, Relation.HOLDS, event.time, event.event_id)
        # An ECS task role's session is named after the task id, like an instance's.
        task_workload = self.task_workloads.get(session)
        if task_workload is not None:
            self.graph.link(task_workload, actor, Relation.HOLDS, event.time, event.event_id)

    def _link_workload_identity(self, event: Event, actor: str) -> None:
        principal = event.principal
        assert principal is not None
        account = kubernetes_subject_account(principal.subject)
        if account is not None and actor.startswith("identity:"):
            self.graph.link(
                service_account_node(*account), actor, Relation.HOLDS, event.time, event.event_id
            )

    def _link_assumed_role(self, event: Event, actor: str) -> None:
        response = event.raw.get("responseElements")
        session = dig(response, "assumedRoleUser", "arn")
        if not isinstance(session, str):
            return
        child = identity_node(session)
        # EKS Pod Identity: the EKS Auth service makes the call, and the pod's service
        # account is the response's subject, so the session belongs to that account.
        namespace = dig(response, "subject", "namespace")
        account = dig(response, "subject", "serviceAccount")
        if isinstance(namespace, str) and isinstance(account, str):
            actor = service_account_node(namespace, account)
        self.graph.link(actor, child, Relation.DERIVES, event.time, event.event_id)
        access_key = dig(response, "credentials", "accessKeyId")
        if isinstance(access_key, str):
            self.graph.link(
                key_node(access_key), child, Relation.KEY_OF, event.time, event.event_id
            )

    def _link_created_user(self, event: Event, actor: str) -> None:
        arn = dig(event.raw, "responseElements", "user", "arn") or self._user_arn(event)
        if arn:
            self.graph.link(actor, identity_node(arn), Relation.DERIVES, event.time, event.event_id)

    def _link_created_key(self, event: Event, actor: str) -> None:
        user = self._user_arn(event) or (event.principal.id if event.principal else None)
        if not user:
            return
        child = identity_node(user)
        self.graph.link(actor, child, Relation.DERIVES, event.time, event.event_id)
        access_key = dig(event.raw, "responseElements", "accessKey", "accessKeyId")
        if isinstance(access_key, str):
            self.graph.link(
                key_node(access_key), child, Relation.KEY_OF, event.time, event.event_id
            )

    def _link_gcp_service_account(self, event: Event, actor: str) -> None:
        name = dig(event.raw, "protoPayload", "resourceName") or dig(
            event.raw, "protoPayload", "request", "name"
        )
        if not isinstance(name, str) or "/serviceAccounts/" not in name:
            return
        target = name.rsplit("/serviceAccounts/", 1)[1].split("/", 1)[0]
        # Only an email names the account; a numeric unique id cannot be joined to later calls.
        if "@" in target:
            self.graph.link(
                actor, identity_node(target), Relation.DERIVES, event.time, event.event_id
            )

    @staticmethod
    def _user_arn(event: Event) -> str | None:
        name = dig(event.raw, "requestParameters", "userName")
        if not isinstance(name, str) or not name or not event.account:
            return None
        return f"arn:aws:iam::{event.account}:user/{name}"
