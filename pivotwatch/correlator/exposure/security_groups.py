"""EC2 security group ingress rules opened to, and closed from, the whole Internet.

An ingress rule is an exposure when its source is a ``/0`` range (``0.0.0.0/0`` or
``::/0``). Rules from other ranges, security groups or prefix lists are ignored.
``AuthorizeSecurityGroupIngress`` opens one exposure per public range of each
permission. ``RevokeSecurityGroupIngress`` closes by the same protocol, ports and range,
or by security group rule id. ``DeleteSecurityGroup`` closes every rule of the group.
Both the ``ipPermissions`` form and the older flat form (``ipProtocol``, ``fromPort``,
``toPort`` and ``cidrIp`` beside ``groupId``) are read.

NOTE: ``ModifySecurityGroupRules``, which can change an existing rule's source to or from
``0.0.0.0/0``, is not read yet, so such an exposure or revert goes unseen here.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pivotwatch.correlator.exposure.attack import CLOUD_FIREWALL
from pivotwatch.correlator.exposure.fields import as_mapping, iter_items, request_parameters
from pivotwatch.correlator.exposure.model import Direction, Facet, Transition
from pivotwatch.schemas.event import Event

__all__ = ["security_group_transitions"]

logger = logging.getLogger(__name__)

_PROTOCOL_NAMES: Final = {"-1": "all", "1": "icmp", "6": "tcp", "17": "udp", "58": "icmpv6"}
"""IANA protocol numbers that EC2 also accepts by name."""


@dataclass(frozen=True, slots=True)
class _IngressRule:
    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str

    @property
    def ports(self) -> str:
        """Return the protocol and port range, such as ``tcp/22`` or ``all traffic``."""
        if self.protocol == "all":
            return "all traffic"
        if self.from_port is None or self.from_port == -1:
            return self.protocol
        if self.to_port is None or self.to_port == self.from_port:
            return f"{self.protocol}/{self.from_port}"
        return f"{self.protocol}/{self.from_port}-{self.to_port}"

    @property
    def key(self) -> str:
        return f"{self.ports} {self.cidr}"


def security_group_transitions(event: Event, account: str) -> list[Transition]:
    """Return the exposures that a successful security group call opens or closes."""
    parameters = request_parameters(event)
    group = parameters.get("groupId") or parameters.get("groupName")
    if not isinstance(group, str) or not group:
        logger.debug("event %s: %s names no security group", event.event_id, event.action)
        return []
    resource = _security_group_arn(event, account, group)

    if event.action == "DeleteSecurityGroup":
        deleted = Transition(
            direction=Direction.CLOSE, event=event, account=account, resource=resource, facet=None
        )
        return [deleted]
    if event.action == "AuthorizeSecurityGroupIngress":
        rule_ids = _response_rule_ids(event, "securityGroupRuleSet")
        return _rule_transitions(Direction.OPEN, event, account, resource, group, rule_ids)

    rule_ids = _response_rule_ids(event, "revokedSecurityGroupRuleSet")
    transitions = _rule_transitions(Direction.CLOSE, event, account, resource, group, rule_ids)
    requested_ids = _requested_rule_ids(parameters)
    if requested_ids:
        transitions.append(
            Transition(
                direction=Direction.CLOSE,
                event=event,
                account=account,
                resource=resource,
                facet=Facet.INGRESS,
                rule_ids=requested_ids,
            )
        )
    return transitions


def _rule_transitions(
    direction: Direction,
    event: Event,
    account: str,
    resource: str,
    group: str,
    rule_ids: Mapping[str, frozenset[str]],
) -> list[Transition]:
    techniques, stages = CLOUD_FIREWALL
    transitions = []
    for rule in _public_rules(request_parameters(event)):
        transitions.append(
            Transition(
                direction=direction,
                event=event,
                account=account,
                resource=resource,
                facet=Facet.INGRESS,
                rule=rule.key,
                rule_ids=rule_ids.get(rule.key, frozenset()),
                exposure=f"security group {group} ingress {rule.ports} from {rule.cidr}",
                headline=f"Security group {group} allowed {rule.ports} from {rule.cidr}",
                techniques=techniques,
                stages=stages,
            )
        )
    return transitions


def _public_rules(parameters: Mapping[str, Any]) -> Iterator[_IngressRule]:
    for permission in _permissions(parameters):
        protocol = _protocol_name(permission.get("ipProtocol"))
        from_port = _port(permission.get("fromPort"))
        to_port = _port(permission.get("toPort"))
        for cidr in _source_ranges(permission):
            public = _public_range(cidr)
            if public is not None:
                yield _IngressRule(protocol, from_port, to_port, public)


def _permissions(parameters: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from iter_items(parameters.get("ipPermissions"))
    if "cidrIp" in parameters or "cidrIpv6" in parameters:
        yield parameters


def _source_ranges(permission: Mapping[str, Any]) -> Iterator[str]:
    for name in ("cidrIp", "cidrIpv6"):
        value = permission.get(name)
        if isinstance(value, str):
            yield value
    for item in iter_items(permission.get("ipRanges")):
        value = item.get("cidrIp")
        if isinstance(value, str):
            yield value
    for item in iter_items(permission.get("ipv6Ranges")):
        value = item.get("cidrIpv6")
        if isinstance(value, str):
            yield value


def _public_range(cidr: str) -> str | None:
    """Return the normalized range if it covers every address of its family, else None."""
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        logger.debug("ignoring invalid CIDR %r in a security group rule", cidr)
        return None
    return str(network) if network.prefixlen == 0 else None


def _protocol_name(value: Any) -> str:
    text = str(value).strip().lower() if value is not None else "-1"
    return _PROTOCOL_NAMES.get(text, text)


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _response_rule_ids(event: Event, rule_set: str) -> dict[str, frozenset[str]]:
    """Map each public rule in the response's rule set to its ``sgr-`` id."""
    response = as_mapping(event.raw.get("responseElements"))
    ids: dict[str, set[str]] = {}
    for item in iter_items(response.get(rule_set)):
        rule_id = item.get("securityGroupRuleId")
        if item.get("isEgress") is True or not isinstance(rule_id, str):
            continue
        permission = {
            "ipProtocol": item.get("ipProtocol"),
            "fromPort": item.get("fromPort"),
            "toPort": item.get("toPort"),
            "cidrIp": item.get("cidrIpv4"),
            "cidrIpv6": item.get("cidrIpv6"),
        }
        for rule in _public_rules({"ipPermissions": [permission]}):
            ids.setdefault(rule.key, set()).add(rule_id)
    return {key: frozenset(values) for key, values in ids.items()}


def _requested_rule_ids(parameters: Mapping[str, Any]) -> frozenset[str]:
    """Read ``securityGroupRuleIds``, written as an item list or a list of strings."""
    value = parameters.get("securityGroupRuleIds")
    ids = {item for item in value if isinstance(item, str)} if isinstance(value, list) else set()
    for item in iter_items(value):
        rule_id = item.get("securityGroupRuleId")
        if isinstance(rule_id, str):
            ids.add(rule_id)
    return frozenset(ids)


def _security_group_arn(event: Event, account: str, group: str) -> str:
    region = event.region or event.raw.get("awsRegion") or ""
    return f"arn:aws:ec2:{region}:{account}:security-group/{group}"
