"""Deduplication of source records by their own event id, within the allowed lateness."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

__all__ = ["Deduplicator"]


class Deduplicator:
    """Remembers event ids for as long as a late copy of the record may still arrive.

    An id is forgotten once its event time is older than the newest event time seen minus
    ``lateness``, or when more than ``max_entries`` ids are held (oldest first), so memory
    stays bounded however long the worker runs. A copy that arrives after its id was
    forgotten is not recognised; the correlator tolerates that, because evidence is keyed
    by event id there too.
    """

    def __init__(self, lateness: timedelta, max_entries: int = 1_000_000) -> None:
        self.lateness = lateness
        self.max_entries = max_entries
        self._seen: OrderedDict[str, datetime] = OrderedDict()
        self._newest: datetime | None = None
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def is_duplicate(self, event_id: str, time: datetime) -> bool:
        """Return True if ``event_id`` was seen before; otherwise remember it."""
        if event_id in self._seen:
            return True
        self._seen[event_id] = time
        if self._newest is None or time > self._newest:
            self._newest = time
        self._expire()
        return False

    def _expire(self) -> None:
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
            self.evicted += 1
        if self._newest is None:
            return
        horizon = self._newest - self.lateness
        # Ids are kept in arrival order, which is close to event-time order; expiring from
        # the front stops at the first id still inside the horizon.
        while self._seen:
            oldest_id, oldest_time = next(iter(self._seen.items()))
            if oldest_time >= horizon:
                break
            del self._seen[oldest_id]
