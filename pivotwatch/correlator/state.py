"""Everything the correlator remembers about one correlation key."""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pivotwatch.correlator.detections import Detection
from pivotwatch.correlator.graph import IdentityGraph, Relation
from pivotwatch.correlator.links import Linker
from pivotwatch.correlator.nodes import address_node, workload_node
from pivotwatch.schemas.event import Event, Source

__all__ = ["Activity", "KeyState", "Signal", "is_ip_address"]

logger = logging.getLogger(__name__)

CREDENTIAL_ACCESS = "credential-access"
EXPIRY_STEP = timedelta(minutes=1)


def is_ip_address(value: str | None) -> bool:
    """Return True for an IPv4 or IPv6 address (CloudTrail also has service names there)."""
    if not value:
        return False
    return _parses_as_ip(value)


@functools.lru_cache(maxsize=65536)
def _parses_as_ip(value: str) -> bool:
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
    address outside the actor's known hosts. Routine calls from known hosts are not kept.
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
    new_signals: set[str] = field(default_factory=set)
    """Workloads with runtime signals added since the chains were last evaluated."""
    new_activity: set[str] = field(default_factory=set)
    """Actors with activity added since the chains were last evaluated."""
    footprints: dict[str, frozenset[str]] = field(default_factory=dict)
    """Graph nodes each workload's last chain evaluation depended on."""
    chains: dict[str, Any] = field(default_factory=dict)
    """The current chain of each workload that has one (`ChainView`)."""
    _known_cache: dict[str, set[str]] = field(default_factory=dict)
    _public_cache: dict[str, bool] = field(default_factory=dict)
    _cache_version: int = -1
    _expired_at: datetime | None = None

    def stale_workloads(self) -> list[str]:
        """Return the workloads whose chain may have changed since it was last evaluated.

        A structural change (a pod on a new node, a new host address) can change any
        chain, so it makes every workload stale. Any other change makes stale only the
        workloads whose last evaluation reached a changed node.
        """
        if self.graph.structure_changed:
            return list(self.signals)
        touched = self.graph.changed_nodes | self.new_activity
        stale = []
        for workload in self.signals:
            footprint = self.footprints.get(workload)
            if (
                workload in self.new_signals
                or footprint is None
                or not footprint.isdisjoint(touched)
            ):
                stale.append(workload)
        return stale

    def clear_changes(self) -> None:
        self.graph.clear_changes()
        self.new_signals.clear()
        self.new_activity.clear()

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
        self.new_signals.add(node)
        return node

    # Cloud activity.

    def add_activity(self, actor: str, event: Event, detection: Detection | None) -> None:
        self.activities[actor].append(Activity(actor, event, detection))
        self.new_activity.add(actor)

    def host_addresses(self, host: str) -> set[str]:
        """Return the addresses a host owns or egresses through, as plain strings."""
        nodes = self.graph.targets(host, Relation.HAS_ADDRESS) + self.graph.targets(
            host, Relation.EGRESS
        )
        return {node.removeprefix("address:") for node in nodes}

    def hosts_of(self, actor: str) -> set[str]:
        """Return the hosts whose credentials ``actor`` legitimately is.

        An instance-profile session or a GCE service account is held by hosts directly. An
        ECS task role's session is held by the task's workload, so by its host. A
        Kubernetes service account, or an identity it holds, is held by the hosts of the
        pods that use it.
        """
        hosts: set[str] = set()
        holders = self.graph.sources(actor, Relation.HOLDS)
        if actor.startswith("ksa:"):
            holders.append(actor)
        for holder in holders:
            if holder.startswith("host:"):
                hosts.add(holder)
            elif holder.startswith("workload:"):  # an ECS task role: its task's host
                hosts.update(self.graph.targets(holder, Relation.RUNS_ON))
            elif holder.startswith("ksa:"):
                for workload in self.graph.sources(holder, Relation.USES_ACCOUNT):
                    hosts.update(self.graph.targets(workload, Relation.RUNS_ON))
        return hosts

    def known_addresses(self, actor: str) -> set[str]:
        """Return the addresses of the actor's hosts; cached until the graph's structure changes."""
        cache = self._address_cache()
        addresses = cache.get(actor)
        if addresses is None:
            addresses = set()
            for host in self.hosts_of(actor):
                addresses |= self.host_addresses(host)
            cache[actor] = addresses
        return addresses

    def _address_cache(self) -> dict[str, set[str]]:
        if self._cache_version != self.graph.structure_version:
            self._known_cache.clear()
            self._public_cache.clear()
            self._cache_version = self.graph.structure_version
        return self._known_cache

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
        self._address_cache()
        public = self._public_cache.get(host)
        if public is None:
            public = any(
                ipaddress.ip_address(address).is_global for address in self.host_addresses(host)
            )
            self._public_cache[host] = public
        return public

    def _host_shows_credential_access(self, host: str, time: datetime) -> bool:
        for workload in self.graph.sources(host, Relation.RUNS_ON):
            for signal in self.signals.get(workload, ()):
                if CREDENTIAL_ACCESS in signal.detection.tactics and signal.event.time <= time:
                    return True
        return False

    # Bounds.

    def expire(self, window: timedelta) -> None:
        """Forget signals, activities and edges older than the window.

        The scan walks the whole state, so it runs at most once per `EXPIRY_STEP` of event
        time. State is therefore kept up to one step longer than the window.
        """
        if self.newest is None:
            return
        if self._expired_at is not None and self.newest - self._expired_at < EXPIRY_STEP:
            return
        self._expired_at = self.newest
        horizon = self.newest - window
        for table in (self.signals, self.activities):
            for node in list(table):
                kept = [item for item in table[node] if item.event.time >= horizon]
                self.evicted_events += len(table[node]) - len(kept)
                if kept:
                    table[node] = kept  # type: ignore[assignment]
                else:
                    del table[node]
        for workload in [name for name in self.chains if name not in self.signals]:
            del self.chains[workload]
        for workload in [name for name in self.footprints if name not in self.signals]:
            del self.footprints[workload]
        self.graph.expire(horizon)

    def is_runtime(self, event: Event) -> bool:
        return event.source is Source.FALCO and event.workload is not None
