"""Logging set-up of the command line: one handler, with repeats counted instead of flooded."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["RepeatFilter", "configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RepeatFilter(logging.Filter):
    """Pass the first ``burst`` records of each message template per ``period`` seconds.

    A client library that cannot reach its broker logs the same line many times a
    second; without a limit a worker's log grew by hundreds of megabytes in minutes. The
    first record after a quiet period reports how many were suppressed.
    """

    def __init__(self, burst: int = 5, period: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.period = period
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        started, passed, suppressed = self._seen.get(key, (now, 0, 0))
        if now - started >= self.period:
            if suppressed:
                record.msg = f"{record.msg} [{suppressed} similar messages suppressed]"
            started, passed, suppressed = now, 0, 0
        if passed >= self.burst:
            self._seen[key] = (started, passed, suppressed + 1)
            return False
        self._seen[key] = (started, passed + 1, suppressed)
        if len(self._seen) > 10_000:
            self._seen.clear()
        return True


class KnownNoiseFilter(logging.Filter):
    """Drop warnings that faust-streaming 0.15 logs on every normal start.

    faust warns "Missing sensor state for rebalance" on each first rebalance of a worker
    because no sensor recorded the rebalance's start; nothing is wrong.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "Missing sensor state for rebalance" not in str(record.msg)


def configure_logging(level: str) -> None:
    """Log to standard error at ``level``, with repeated messages limited."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(KnownNoiseFilter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
