from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pivotwatch.errors import MappingError
from pivotwatch.schemas.timeparse import parse_event_time

VALID_SHAPES: list[tuple[str, Any, datetime]] = [
    ("whole seconds Z", "2020-09-14T00:44:23Z", datetime(2020, 9, 14, 0, 44, 23, tzinfo=UTC)),
    (
        "3 digits Z (shipper @timestamp)",
        "2020-09-14T00:44:23.000Z",
        datetime(2020, 9, 14, 0, 44, 23, tzinfo=UTC),
    ),
    (
        "6 digits Z",
        "2025-03-04T19:30:00.123456Z",
        datetime(2025, 3, 4, 19, 30, 0, 123456, tzinfo=UTC),
    ),
    (
        "7 digits truncated",
        "2025-03-04T19:30:00.1234567Z",
        datetime(2025, 3, 4, 19, 30, 0, 123456, tzinfo=UTC),
    ),
    (
        "9 digits truncated, not rounded",
        "2024-05-07T18:54:19.341081980Z",
        datetime(2024, 5, 7, 18, 54, 19, 341081, tzinfo=UTC),
    ),
    (
        "9 digits of nines stay in the second",
        "2024-05-07T18:54:19.999999999Z",
        datetime(2024, 5, 7, 18, 54, 19, 999999, tzinfo=UTC),
    ),
    ("1 digit", "2025-03-04T19:30:00.5Z", datetime(2025, 3, 4, 19, 30, 0, 500000, tzinfo=UTC)),
    (
        "negative offset",
        "2026-10-21T06:14:52.318-07:00",
        datetime(2026, 10, 21, 13, 14, 52, 318000, tzinfo=UTC),
    ),
    (
        "+00:00 offset (EC2 LaunchTime)",
        "2026-10-29T06:41:17+00:00",
        datetime(2026, 10, 29, 6, 41, 17, tzinfo=UTC),
    ),
    ("offset without colon", "2025-03-04T12:00:00+0530", datetime(2025, 3, 4, 6, 30, tzinfo=UTC)),
    ("lowercase t and z", "2025-03-04t12:00:00z", datetime(2025, 3, 4, 12, 0, tzinfo=UTC)),
    ("space separator", "2025-03-04 12:00:00Z", datetime(2025, 3, 4, 12, 0, tzinfo=UTC)),
    (
        "Falco integer nanoseconds",
        1715108059341081180,
        datetime(2024, 5, 7, 18, 54, 19, 341081, tzinfo=UTC),
    ),
    (
        "nanoseconds as a string",
        "1715108059341081180",
        datetime(2024, 5, 7, 18, 54, 19, 341081, tzinfo=UTC),
    ),
    ("epoch seconds", 1715108059, datetime(2024, 5, 7, 18, 54, 19, tzinfo=UTC)),
    (
        "epoch milliseconds",
        1715108059341,
        datetime(2024, 5, 7, 18, 54, 19, 341000, tzinfo=UTC),
    ),
    (
        "epoch microseconds",
        1715108059341081,
        datetime(2024, 5, 7, 18, 54, 19, 341081, tzinfo=UTC),
    ),
    (
        "epoch seconds as float",
        1715108059.25,
        datetime(2024, 5, 7, 18, 54, 19, 250000, tzinfo=UTC),
    ),
    (
        "epoch seconds as decimal string",
        "1715108059.5",
        datetime(2024, 5, 7, 18, 54, 19, 500000, tzinfo=UTC),
    ),
    (
        "aware datetime in another zone",
        datetime(2025, 3, 4, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(value, expected) for _, value, expected in VALID_SHAPES],
    ids=[name for name, _, _ in VALID_SHAPES],
)
def test_parse_event_time_shapes(value: Any, expected: datetime) -> None:
    parsed = parse_event_time(value)

    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_event_time_naive_rejected_by_default() -> None:
    with pytest.raises(MappingError, match="2025-03-04T12:00:00"):
        parse_event_time("2025-03-04T12:00:00")


def test_parse_event_time_naive_as_documented_utc() -> None:
    parsed = parse_event_time("2025-03-04T12:00:00", naive_is_utc=True)

    assert parsed == datetime(2025, 3, 4, 12, 0, tzinfo=UTC)


def test_parse_event_time_naive_datetime_as_documented_utc() -> None:
    parsed = parse_event_time(datetime(2025, 3, 4, 12, 0), naive_is_utc=True)

    assert parsed.tzinfo is UTC


INVALID_VALUES: list[tuple[str, Any]] = [
    ("empty string", ""),
    ("words", "yesterday"),
    ("date only", "2025-03-04"),
    ("10 fractional digits", "2025-03-04T12:00:00.1234567890Z"),
    ("month 13", "2025-13-04T12:00:00Z"),
    ("hour 25", "2025-03-04T25:00:00Z"),
    ("offset out of range", "2025-03-04T12:00:00+25:00"),
    ("boolean", True),
    ("null", None),
    ("list", [2025, 3, 4]),
    ("object", {"seconds": 1}),
    ("too many digits", 10**21),
    ("infinite float", float("inf")),
    ("not a number float", float("nan")),
]


@pytest.mark.parametrize(
    "value", [value for _, value in INVALID_VALUES], ids=[name for name, _ in INVALID_VALUES]
)
def test_parse_event_time_invalid_names_value(value: Any) -> None:
    with pytest.raises(MappingError) as caught:
        parse_event_time(value)

    assert repr(value)[:40] in str(caught.value)
    assert "expected" in str(caught.value)
