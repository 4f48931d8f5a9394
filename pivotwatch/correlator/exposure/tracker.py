"""Pairing of exposure changes with their reverts, in event time.

Contract:

- Input is at-least-once and unordered. A change and its revert pair whichever arrives
  second, as long as both are within the allowed lateness of the newest event time seen
  for their account. Older events are counted in ``dropped_late`` and ignored.
- A change and a revert of the same rule pair when neither has paired yet and the revert
  is at most ``window`` later. The revert must be the first known close of the rule after
  the change, and the change the last known open of the rule before the revert. A change
  that is never reverted, or reverted later than ``window``, produces nothing here.
- Each change pairs at most once, and so does each revert, except that a revert of a
  whole resource or facet (``DeleteSecurityGroup``, ``DeleteBucketPolicy``) pairs once
  for every rule it closes.
- State per account is kept for ``window + lateness`` behind the account's newest event
  time and is capped at ``max_open`` entries; the oldest entries are evicted first and
  counted in ``evicted``. An account that stops sending events keeps its last entries.

NOTE: when one exposure is opened twice before it is closed (two public
``PutBucketPolicy`` calls, then ``DeleteBucketPolicy``), exactly one finding is
reported, but its change is the later open if both opens arrived before the close, and
the earlier open otherwise.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pivotwatch.correlator.exposure.extract import extract_transitions
from pivotwatch.correlator.exposure.fields import principal_id
from pivotwatch.correlator.exposure.model import Direction, Facet, TransientExposure, Transition
from pivotwatch.errors import ConfigurationError
from pivotwatch.schemas.event import Event
from pivotwatch.settings import CorrelationSettings

__all__ = ["ExposureTracker"]

logger = logging.getLogger(__name__)

_RuleLine = tuple[Facet | None, str | None]
"""The facet and rule of an open: the line of opens and closes one exposure lives on."""


@dataclass(slots=True)
class _Entry:
    transition: Transition
    sequence: int
    paired_lines: set[_RuleLine] = field(default_factory=set)
    """Rule lines this entry has paired on. An open or a rule-specific close pairs once."""

    @property
    def time(self) -> datetime:
        return self.transition.event.time

    @property
    def line(self) -> _RuleLine:
        return self.transition.facet, self.transition.rule

    @property
    def is_blanket_close(self) -> bool:
        """Tell whether this close closes every rule of its facet, not one named rule."""
        transition = self.transition
        return transition.rule is None and not transition.rule_ids

    def is_paired_on(self, line: _RuleLine) -> bool:
        if self.transition.direction is Direction.CLOSE and self.is_blanket_close:
            return line in self.paired_lines
        return bool(self.paired_lines)

    def same_record(self, transition: Transition) -> bool:
        mine = self.transition
        return (
            mine.event.event_id == transition.event.event_id
            and mine.direction is transition.direction
            and mine.facet == transition.facet
            and mine.rule == transition.rule
            and mine.rule_ids == transition.rule_ids
        )


@dataclass(slots=True)
class _ResourceState:
    opens: list[_Entry] = field(default_factory=list)
    closes: list[_Entry] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.opens) + len(self.closes)

    def remove(self, sequence: int) -> bool:
        for entries in (self.opens, self.closes):
            for index, entry in enumerate(entries):
                if entry.sequence == sequence:
                    del entries[index]
                    return True
        return False


@dataclass(slots=True)
class _AccountState:
    newest: datetime | None = None
    resources: dict[str, _ResourceState] = field(default_factory=dict)
    by_age: list[tuple[datetime, int, str]] = field(default_factory=list)
    """Heap of (event time, sequence, resource), one item per stored entry."""


class ExposureTracker:
    """Find risky configuration changes that are reverted within ``window``.

    Feed every normalized event to `observe`; events that open or close no exposure
    are ignored cheaply.
    """

    def __init__(self, window: timedelta, lateness: timedelta, max_open: int = 10_000) -> None:
        if window <= timedelta(0):
            raise ConfigurationError(f"transient window {window} must be positive")
        if lateness < timedelta(0):
            raise ConfigurationError(f"allowed lateness {lateness} must not be negative")
        if max_open < 1:
            raise ConfigurationError(f"max_open {max_open} must be at least 1")
        self.window = window
        self.lateness = lateness
        self.max_open = max_open
        self.evicted = 0
        """Entries dropped because an account reached ``max_open``."""
        self.dropped_late = 0
        """Exposure events older than the allowed lateness when they arrived."""
        self._accounts: dict[str, _AccountState] = {}
        self._sequence = itertools.count()

    @classmethod
    def from_settings(cls, correlation: CorrelationSettings) -> ExposureTracker:
        """Build a tracker with the configured transient window and allowed lateness."""
        return cls(correlation.transient_window, correlation.allowed_lateness)

    def __len__(self) -> int:
        """Return the number of stored changes and reverts, over all accounts."""
        return sum(len(state.by_age) for state in self._accounts.values())

    def observe(self, event: Event) -> list[TransientExposure]:
        """Record the event and return the transient exposures it completes."""
        transitions = extract_transitions(event)
        if not transitions:
            self._advance_known_account(event)
            return []
        account = self._accounts.setdefault(transitions[0].account, _AccountState())
        if account.newest is not None and event.time < account.newest - self.lateness:
            self.dropped_late += 1
            logger.info(
                "event %s: %s at %s is later than the allowed lateness, so it is ignored",
                event.event_id,
                event.action,
                event.time.isoformat(),
            )
            return []

        findings: list[TransientExposure] = []
        for transition in transitions:
            findings.extend(self._add(account, transition))

        if account.newest is None or event.time > account.newest:
            account.newest = event.time
        self._expire(account)
        return findings

    def _advance_known_account(self, event: Event) -> None:
        """Move the account's newest event time, so its old entries expire on time."""
        account = self._accounts.get(event.account) if event.account else None
        if account is None or (account.newest is not None and event.time <= account.newest):
            return
        account.newest = event.time
        self._expire(account)

    def _add(self, account: _AccountState, transition: Transition) -> list[TransientExposure]:
        resource = account.resources.setdefault(transition.resource, _ResourceState())
        if any(entry.same_record(transition) for entry in resource.opens + resource.closes):
            return []

        entry = _Entry(transition, next(self._sequence))
        if transition.direction is Direction.OPEN:
            findings = self._pair_open(resource, entry)
            resource.opens.append(entry)
        else:
            findings = self._pair_close(resource, entry)
            resource.closes.append(entry)
        heapq.heappush(account.by_age, (entry.time, entry.sequence, transition.resource))
        self._enforce_cap(account)
        return findings

    def _pair_open(self, resource: _ResourceState, opened: _Entry) -> list[TransientExposure]:
        closes = [
            entry
            for entry in resource.closes
            if self._in_window(opened, entry) and entry.transition.closes(opened.transition)
        ]
        if not closes:
            return []
        first_close = min(closes, key=_order)
        if first_close.is_paired_on(opened.line):
            return []
        if self._later_open_before(resource, opened, first_close) is not None:
            return []
        return [self._pair(opened, first_close)]

    def _pair_close(self, resource: _ResourceState, closed: _Entry) -> list[TransientExposure]:
        last_opens: dict[_RuleLine, _Entry] = {}
        for entry in resource.opens:
            if not self._in_window(entry, closed) or not closed.transition.closes(entry.transition):
                continue
            kept = last_opens.get(entry.line)
            if kept is None or _order(entry) > _order(kept):
                last_opens[entry.line] = entry

        findings = []
        for opened in sorted(last_opens.values(), key=_order):
            if opened.paired_lines or closed.is_paired_on(opened.line):
                continue
            if self._earlier_close_after(resource, opened, closed) is not None:
                continue
            findings.append(self._pair(opened, closed))
        return findings

    def _later_open_before(
        self, resource: _ResourceState, opened: _Entry, closed: _Entry
    ) -> _Entry | None:
        """Return an open of the same rule between ``opened`` and ``closed``, if any."""
        for entry in resource.opens:
            if entry.line == opened.line and _order(opened) < _order(entry) <= _order(closed):
                return entry
        return None

    def _earlier_close_after(
        self, resource: _ResourceState, opened: _Entry, closed: _Entry
    ) -> _Entry | None:
        """Return another close of ``opened`` between it and ``closed``, if any."""
        for entry in resource.closes:
            if _order(opened) <= _order(entry) < _order(closed) and entry.transition.closes(
                opened.transition
            ):
                return entry
        return None

    def _in_window(self, opened: _Entry, closed: _Entry) -> bool:
        if opened.transition.event.event_id == closed.transition.event.event_id:
            return False
        return timedelta(0) <= closed.time - opened.time <= self.window

    def _pair(self, opened: _Entry, closed: _Entry) -> TransientExposure:
        opened.paired_lines.add(opened.line)
        closed.paired_lines.add(opened.line)
        change = opened.transition
        revert = closed.transition.event
        finding = TransientExposure(
            account=change.account,
            resource=change.resource,
            exposure=change.exposure,
            change=change.event,
            revert=revert,
            changed_by=principal_id(change.event),
            reverted_by=principal_id(revert),
            duration=revert.time - change.event.time,
            techniques=change.techniques,
            stages=change.stages,
            headline=change.headline,
        )
        logger.info(
            "transient exposure in %s: %s opened by event %s, closed by event %s after %s",
            finding.account,
            finding.exposure,
            change.event.event_id,
            revert.event_id,
            finding.duration,
        )
        return finding

    def _expire(self, account: _AccountState) -> None:
        if account.newest is None:
            return
        horizon = account.newest - self.window - self.lateness
        while account.by_age and account.by_age[0][0] < horizon:
            self._remove_oldest(account)

    def _enforce_cap(self, account: _AccountState) -> None:
        while len(account.by_age) > self.max_open:
            self._remove_oldest(account)
            self.evicted += 1
            logger.debug("exposure state of an account is full: evicted the oldest entry")

    def _remove_oldest(self, account: _AccountState) -> None:
        _, sequence, resource_name = heapq.heappop(account.by_age)
        resource = account.resources.get(resource_name)
        if resource is None:
            return
        resource.remove(sequence)
        if not len(resource):
            del account.resources[resource_name]


def _order(entry: _Entry) -> tuple[datetime, str]:
    """Sort key: event time, then event id, so equal times order the same on every run."""
    return entry.time, entry.transition.event.event_id
