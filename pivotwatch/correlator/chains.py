"""Building a workload's pivot chain from the graph, its runtime signals and cloud activity.

A chain needs both halves: runtime signals on a workload, and cloud calls by an
identity that the graph links to that workload. Not every call by a linked identity
belongs to the attacker, because a node's role is also used by the node's own agents.
A call joins the chain when one of these holds:

1. it was made from an address that none of the identity's hosts has (off-host use);
2. its identity was derived (assumed, created, impersonated, given a key) by a call
   that itself joined the chain, so the identity is the attacker's;
3. it matched a rule of level high or critical, and the workload showed credential
   access before it.

Calls before the first runtime signal (minus a clock skew allowance) never join.
The chain is computed from the state alone, so the order in which records arrived
does not change it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pivotwatch.correlator.detections import LEVEL_RANK, TACTIC_ORDER
from pivotwatch.correlator.graph import Relation
from pivotwatch.correlator.state import CREDENTIAL_ACCESS, Activity, KeyState, Signal

__all__ = ["ChainView", "evaluate_chain"]

# Falco's clock and the cloud provider's are independent; allow this much disagreement.
CLOCK_SKEW = timedelta(minutes=5)
HIGH_RANK = LEVEL_RANK["high"]


@dataclass
class ChainView:
    """A workload's chain as computed now."""

    workload: str
    signals: list[Signal]
    activities: list[Activity] = field(default_factory=list)
    off_host: bool = False
    derived: bool = False

    @property
    def tactics(self) -> list[str]:
        """ATT&CK tactics in the order they first appear, ties in matrix order."""
        first: dict[str, datetime] = {}
        for time, tactics in self._timed_tactics():
            for tactic in tactics:
                if tactic not in first or time < first[tactic]:
                    first[tactic] = time
        rank = {name: index for index, name in enumerate(TACTIC_ORDER)}
        return sorted(first, key=lambda tactic: (first[tactic], rank.get(tactic, len(rank))))

    def _timed_tactics(self) -> list[tuple[datetime, tuple[str, ...]]]:
        timed = [(signal.event.time, signal.detection.tactics) for signal in self.signals]
        timed += [
            (activity.event.time, activity.detection.tactics)
            for activity in self.activities
            if activity.detection is not None
        ]
        return timed


@dataclass
class _Visit:
    """An identity reached from the workload.

    ``known`` is the addresses of the identity's hosts, or for an identity without
    hosts those of the identity it was derived from. It is computed on first use,
    because most visited identities have no activity to judge.
    """

    node: str
    tainted: bool
    parent: _Visit | None = None
    _known: set[str] | None = None

    def known(self, state: KeyState) -> set[str]:
        if self._known is None:
            own = state.known_addresses(self.node)
            self._known = own or (self.parent.known(state) if self.parent is not None else set())
        return self._known


def _is_off_host(state: KeyState, visit: _Visit, activity: Activity) -> bool:
    """Return `KeyState.is_off_host` against the visit's addresses, parsing only when needed."""
    known = visit.known(state)
    if not known or activity.event.source_ip in known:
        return False
    return state.is_off_host(visit.node, activity.event, known)


def evaluate_chain(state: KeyState, workload: str) -> tuple[ChainView | None, frozenset[str]]:
    """Return the workload's chain (or None) and the graph nodes it was computed from.

    The nodes (the workload, its hosts and service accounts, every identity reached)
    tell the caller which later changes can change this chain.
    """
    signals = sorted(state.signals.get(workload, ()), key=lambda signal: signal.event.time)
    if not signals:
        return None, frozenset((workload,))
    start = signals[0].event.time - CLOCK_SKEW
    credential_access_at = _first_credential_access(signals)
    chain = ChainView(workload=workload, signals=signals)
    visits = _reachable_identities(state, workload)
    footprint = frozenset(
        [workload, *state.graph.targets(workload, Relation.RUNS_ON)]
        + state.graph.targets(workload, Relation.USES_ACCOUNT)
        + [visit.node for visit in visits]
    )
    for visit in visits:
        for activity in state.activities.get(visit.node, ()):
            if activity.event.time < start:
                continue
            off_host = _is_off_host(state, visit, activity)
            if visit.tainted or off_host or _is_severe_after(activity, credential_access_at):
                chain.activities.append(activity)
                chain.off_host = chain.off_host or off_host
                chain.derived = chain.derived or visit.tainted
    if not chain.activities:
        return None, footprint
    chain.activities.sort(key=lambda activity: (activity.event.time, activity.event.event_id))
    return chain, footprint


def _first_credential_access(signals: list[Signal]) -> datetime | None:
    for signal in signals:
        if CREDENTIAL_ACCESS in signal.detection.tactics:
            return signal.event.time
    return None


def _is_severe_after(activity: Activity, credential_access_at: datetime | None) -> bool:
    if credential_access_at is None or activity.detection is None:
        return False
    return (
        activity.detection.rank >= HIGH_RANK
        and activity.event.time >= credential_access_at - CLOCK_SKEW
    )


def _roots(state: KeyState, workload: str) -> list[str]:
    """Return the identities a workload reaches without any derivation."""
    graph = state.graph
    roots: list[str] = list(graph.targets(workload, Relation.HOLDS))  # ECS task roles
    for host in graph.targets(workload, Relation.RUNS_ON):
        roots += graph.targets(host, Relation.HOLDS)
    for account in graph.targets(workload, Relation.USES_ACCOUNT):
        roots.append(account)
        roots += graph.targets(account, Relation.HOLDS)
    return list(dict.fromkeys(roots))


def _reachable_identities(state: KeyState, workload: str) -> list[_Visit]:
    """Walk from the workload's identities along derivations, marking attacker-made ones.

    A derived identity is tainted when the call that derived it joined the chain (it was
    made off-host, or by a tainted identity). An identity reached both ways keeps the
    tainted visit. Derived identities without hosts of their own are judged against the
    addresses of the identity they came from.
    """
    visits: dict[str, _Visit] = {}
    queue: deque[_Visit] = deque()
    for root in _roots(state, workload):
        visit = _Visit(root, tainted=False)
        visits[root] = visit
        queue.append(visit)
    while queue:
        visit = queue.popleft()
        deriving: dict[str, Activity] | None = None
        for derivation in state.graph.derivations(visit.node):
            if deriving is None:
                deriving = {
                    activity.event.event_id: activity
                    for activity in state.activities.get(visit.node, ())
                }
            activities = [
                deriving[event_id] for event_id in derivation.event_ids if event_id in deriving
            ]
            joined = bool(activities) and (
                visit.tainted
                or any(_is_off_host(state, visit, activity) for activity in activities)
            )
            tainted = visit.tainted or joined
            previous = visits.get(derivation.child)
            if previous is not None and (previous.tainted or not tainted):
                continue
            child = _Visit(derivation.child, tainted=tainted, parent=visit)
            visits[derivation.child] = child
            queue.append(child)
    return list(visits.values())
