"""The command line's log filter counts repeated messages instead of flooding the log."""

from __future__ import annotations

import logging

from pivotwatch.cli.logs import RepeatFilter


def make_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kafka.conn", logging.WARNING, __file__, 1, message, None, None)


def test_repeat_filter_passes_burst_then_suppresses() -> None:
    repeat = RepeatFilter(burst=3, period=60.0)

    passed = [repeat.filter(make_record("Unable connect to node %s")) for _ in range(100)]

    assert passed.count(True) == 3
    assert passed[:3] == [True, True, True]


def test_repeat_filter_reports_suppressed_count() -> None:
    repeat = RepeatFilter(burst=1, period=0.0)
    first = make_record("broker down")
    repeat.filter(first)
    repeat.period = 60.0
    for _ in range(4):
        repeat.filter(make_record("broker down"))
    repeat.period = 0.0

    later = make_record("broker down")

    assert repeat.filter(later)
    assert "4 similar messages suppressed" in str(later.msg)


def test_repeat_filter_keeps_distinct_messages() -> None:
    repeat = RepeatFilter(burst=1, period=60.0)

    assert repeat.filter(make_record("first"))
    assert repeat.filter(make_record("second"))
