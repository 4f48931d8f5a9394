"""The identity graph of one correlation key (one cloud account or project).

Nodes are workloads, hosts, addresses, Kubernetes service accounts, cloud identities
and access keys (see `pivotwatch.correlator.nodes`). Edges point from what has a
credential to the credential, and from an identity to the identities it created or
became. Every edge keeps its newest event time and the ids of the first events that
proved it (up to `MAX_EDGE_EVENTS`).

The graph is bounded: edges older than the window are removed by `expire`, and when
a cap on nodes or edges is reached the oldest edges go first. Both count evictions.
Inventory edges (pod on node, node addresses) carry the time they were last confirmed,
so a refreshed inventory keeps them alive.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import networkx as nx

__all__ = ["Derivation", "IdentityGraph", "Relation"]


class Relation(StrEnum):
    """The meaning of an edge."""

    RUNS_ON = "runs_on"
    """workload → host"""
    USES_ACCOUNT = "uses_account"
    """workload → Kubernetes service account"""
    HAS_ADDRESS = "has_address"
    """host → address it owns (private, public, NAT)"""
    EGRESS = "egress"
    """host → address its calls were seen leaving from"""
    HOLDS = "holds"
    """host or service account → identity its credentials belong to (instance profile
    session, GCE service account, Workload Identity, IRSA role session)"""
    DERIVES = "derives"
    """identity → identity it assumed, created, impersonated or minted a key for"""
    KEY_OF = "key_of"
    """access key → identity"""


DERIVING = frozenset({Relation.DERIVES})
# Relations that change which hosts, addresses or accounts a workload is judged by; a new
# edge of these can change any chain of the key.
STRUCTURAL = frozenset(
    {
        Relation.RUNS_ON,
        Relation.USES_ACCOUNT,
        Relation.HAS_ADDRESS,
        Relation.EGRESS,
        Relation.HOLDS,
    }
)
MAX_EDGE_EVENTS = 32


@dataclass(frozen=True, slots=True)
class Derivation:
    """An edge that created or unlocked an identity, with the event that did it."""

    parent: str
    child: str
    event_ids: tuple[str, ...]
    time: datetime


class IdentityGraph:
    """A directed graph with typed, timed edges and bounded size."""

    def __init__(self, max_nodes: int, max_edges: int) -> None:
        self.graph: nx.DiGraph = nx.DiGraph()
        self.max_nodes = max_nodes
        self.max_edges = max_edges
        self.evicted_edges = 0
        self.evicted_nodes = 0
        self.changed_nodes: set[str] = set()
        """Endpoints of edges added, or given new evidence, since `clear_changes`."""
        self.structure_changed = False
        """True when a structural edge was added since `clear_changes`."""
        self.structure_version = 0
        """Counts structural edges ever added, so caches of addresses can tell they are stale."""

    def clear_changes(self) -> None:
        self.changed_nodes.clear()
        self.structure_changed = False

    def __len__(self) -> int:
        return int(self.graph.number_of_nodes())

    @property
    def edge_count(self) -> int:
        return int(self.graph.number_of_edges())

    def link(
        self,
        source: str,
        target: str,
        relation: Relation,
        time: datetime,
        event_id: str | None = None,
    ) -> bool:
        """Add or refresh an edge; return True if it is new.

        A refreshed edge takes the newer time and remembers the event ids of up to
        ``MAX_EDGE_EVENTS`` pieces of evidence, first ones first.
        """
        data = self.graph.get_edge_data(source, target)
        if data is not None and data["relation"] == relation:
            if time > data["time"]:
                data["time"] = time
            event_ids = data["event_ids"]
            if (
                event_id is not None
                and event_id not in event_ids
                and len(event_ids) < MAX_EDGE_EVENTS
            ):
                event_ids.append(event_id)
                if relation in DERIVING:  # chains read the deriving events of these only
                    self.changed_nodes.update((source, target))
            return False
        event_ids = [] if event_id is None else [event_id]
        self.graph.add_edge(source, target, relation=relation, time=time, event_ids=event_ids)
        if relation is not Relation.KEY_OF:  # chains never walk key edges
            self.changed_nodes.update((source, target))
        if relation in STRUCTURAL:
            self.structure_changed = True
            self.structure_version += 1
        self._enforce_caps()
        return True

    def targets(self, source: str, relation: Relation) -> list[str]:
        """Return the nodes ``source`` points to through ``relation``."""
        if source not in self.graph:
            return []
        return [
            target
            for target, data in self.graph.succ[source].items()
            if data["relation"] == relation
        ]

    def sources(self, target: str, relation: Relation) -> list[str]:
        """Return the nodes that point to ``target`` through ``relation``."""
        if target not in self.graph:
            return []
        return [
            source
            for source, data in self.graph.pred[target].items()
            if data["relation"] == relation
        ]

    def derivations(self, parent: str) -> Iterator[Derivation]:
        """Yield the identities that ``parent`` derived, with the deriving event."""
        if parent not in self.graph:
            return
        for child, data in self.graph.succ[parent].items():
            if data["relation"] in DERIVING:
                yield Derivation(parent, child, tuple(data["event_ids"]), data["time"])

    def expire(self, horizon: datetime) -> int:
        """Remove edges older than ``horizon`` and the nodes left without edges."""
        old = [
            (source, target)
            for source, target, time in self.graph.edges(data="time")
            if time < horizon
        ]
        self.graph.remove_edges_from(old)
        self.evicted_edges += len(old)
        self._remove_isolated()
        return len(old)

    def _enforce_caps(self) -> None:
        if (
            self.graph.number_of_edges() <= self.max_edges
            and self.graph.number_of_nodes() <= self.max_nodes
        ):
            return
        # Drop the oldest tenth of the edges at once, so the sort is not paid per insert.
        edges = sorted(self.graph.edges(data="time"), key=lambda edge: edge[2])
        excess = max(
            self.graph.number_of_edges() - self.max_edges,
            len(edges) // 10,
            1,
        )
        self.graph.remove_edges_from((source, target) for source, target, _ in edges[:excess])
        self.evicted_edges += excess
        self._remove_isolated()

    def _remove_isolated(self) -> None:
        isolated = list(nx.isolates(self.graph))
        self.graph.remove_nodes_from(isolated)
        self.evicted_nodes += len(isolated)
