"""Everything the correlator remembers about one correlation key."""

from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pivotwatch.correlator.detections import Detection
from pivotwatch.correlator.graph import IdentityGraph, Relation
from pivotwatch.correlator.links import Linker
from pivotwatch.correlator.nodes import address_node, workload_node
from pivotwatch.schemas.event import Event, Source

__all__ = ["Activity", "KeyState", "Signal", "is_ip_address"]

logger = logging.getLogger(__name__)

CREDENTIAL_ACCESS = "credential-access"


def is_ip_address(value: str | None) -> bool:
    """Return True for an IPv4 or IPv6 address (CloudTrail also has service names there)."""
    if not value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Signal:
    """A runtime alert on a workload that matched a rule or carries ATT&CK tags."""

    workload: str
    event: Event
    detection: Detection


@dataclass(frozen=True, slots=True)
class Activity:
    """A cloud call kept as possible chain evidence.

    Kept are calls that matched a rule, calls that created a link, and calls made from an
    address outside the actor's known hosts; routine calls from known hosts are not kept.
    """

    actor: str
    event: Event
    detection: Detection | None


@dataclass
class PublishedChain:
    """The last revision published for a chain."""

    revision: int
    score: int
    last_seen: datetime | None = None
    signature: frozenset[str] = frozenset()
    """Identities, techniques, stages and rules of the published revision."""


@dataclass
class KeyState:
    """Graph, signals and activities of one account or project."""

    key: str
    graph: IdentityGraph
    linker: Linker
    signals: dict[str, list[Signal]] = field(default_factory=lambda: defaultdict(list))
    activities: dict[str, list[Activity]] = field(default_factory=lambda: defaultdict(list))
    newest: datetime | None = None
    evicted_events: int = 0

    @classmethod
    def create(cls, key: str, max_nodes: int, max_edges: int) -> KeyState:
        graph = IdentityGraph(max_nodes, max_edges)
        return cls(key=key, graph=graph, linker=Linker(graph))

    def advance(self, time: datetime) -> None:
        if self.newest is None or time > self.newest:
            self.newest = time

    # Runtime signals.

    def add_signal(self, event: Event, detection: Detection) -> str:
        """Record a runtime signal and return its workload node."""
        workload = event.workload
        assert workload is not None
        node = workload_node(workload.namespace, workload.pod, workload.container_id, workload.host)
        self.signals[node].append(Signal(node, event, detection))
        return node

    # Cloud activity.

    def add_activity(self, actor: str, event: Event, detection: Detection | None) -> None:
        self.activities[actor].append(Activity(actor, event, detection))

    def host_addresses(self, host: str) -> set[str]:
        """Return the addresses a host owns or egresses through, as plain strings."""
        nodes = self.graph.targets(host, Relation.HAS_ADDRESS) + self.graph.targets(
            host, Relation.EGRESS
        )
        return {node.removeprefix("address:") for node in nodes}

    def hosts_of(self, actor: str) -> set[str]:
        """Return the hosts whose credentials ``actor`` legitimately is.

        An instance-profile session or a GCE service account is held by hosts directly; a
        Kubernetes service account, or an identity it holds, by the hosts of the pods that
        use it.
        """
        hosts: set[str] = set()
        holders = self.graph.sources(actor, Relation.HOLDS)
        if actor.startswith("ksa:"):
            holders.append(actor)
        for holder in holders:
            if holder.startswith("host:"):
                hosts.add(holder)
            elif holder.startswith("ksa:"):
                for workload in self.graph.sources(holder, Relation.USES_ACCOUNT):
                    hosts.update(self.graph.targets(workload, Relation.RUNS_ON))
        return hosts

    def known_addresses(self, actor: str) -> set[str]:
        addresses: set[str] = set()
        for host in self.hosts_of(actor):
            addresses |= self.host_addresses(host)
        return addresses

    def is_off_host(self, actor: str, event: Event, known: set[str] | None = None) -> bool:
        """Return True if a call came from an address none of the actor's hosts has.

        Unknown when the actor has no host with a known address, and never for calls
        that CloudTrail shows as made by an AWS service.
        """
        if not is_ip_address(event.source_ip):
            return False
        addresses = self.known_addresses(actor) if known is None else known
        return bool(addresses) and event.source_ip not in addresses

    def learn_egress(self, actor: str, event: Event) -> None:
        """Learn a NAT address: an IMDSv2 session of a host with no public address.

        Only while no workload on that host shows credential access, so an attacker's
        address is not learned as the host's own.
        """
        principal = event.principal
        if (
            principal is None
            or principal.credential_delivery != "2.0"
            or not is_ip_address(event.source_ip)
        ):
            return
        for host in self.graph.sources(actor, Relation.HOLDS):
            if not host.startswith("host:") or self._has_public_address(host):
                continue
            if self._host_shows_credential_access(host, event.time):
                continue
            self.graph.link(
                host,
                address_node(str(event.source_ip)),
                Relation.EGRESS,
                event.time,
                event.event_id,
            )

    def _has_public_address(self, host: str) -> bool:
        return any(ipaddress.ip_address(address).is_global for address in self.host_addresses(host))

    def _host_shows_credential_access(self, host: str, time: datetime) -> bool:
        for workload in self.graph.sources(host, Relation.RUNS_ON):
            for signal in self.signals.get(workload, ()):
                if CREDENTIAL_ACCESS in signal.detection.tactics and signal.event.time <= time:
                    return True
        return False

    # Bounds.

    def expire(self, window: timedelta) -> None:
        """Forget signals, activities and edges older than the window."""
        if self.newest is None:
            return
        horizon = self.newest - window
        for table in (self.signals, self.activities):
            for node in list(table):
                kept = [item for item in table[node] if item.event.time >= horizon]
                self.evicted_events += len(table[node]) - len(kept)
                if kept:
                    table[node] = kept  # type: ignore[assignment]
                else:
                    del table[node]
        self.graph.expire(horizon)

    def is_runtime(self, event: Event) -> bool:
        return event.source is Source.FALCO and event.workload is not None
