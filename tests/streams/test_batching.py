"""Event batches are split below the message size limit, in order, and nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from pivotwatch.schemas.event import Event, EventBatch, EventKind, Source
from pivotwatch.streams.batching import encode_batches


def make_event(number: int, padding: int = 1000) -> Event:
    return Event(
        source=Source.CLOUDTRAIL,
        kind=EventKind.API_CALL,
        event_id=f"event-{number}",
        time=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
        key="210987654321",
        action="GetObject",
        raw={"padding": "x" * padding},
    )


def decode_ids(values: list[bytes]) -> list[str]:
    return [
        event.event_id
        for value in values
        for event in msgspec.json.decode(value, type=EventBatch).events
    ]


def test_small_batch_is_one_message() -> None:
    events = [make_event(number) for number in range(5)]

    values = list(encode_batches("210987654321", events, max_bytes=100_000))

    assert len(values) == 1
    assert decode_ids(values) == [event.event_id for event in events]


def test_large_batch_is_split_in_order() -> None:
    events = [make_event(number) for number in range(300)]

    values = list(encode_batches("210987654321", events, max_bytes=20_000))

    assert len(values) > 1
    assert all(len(value) <= 20_000 for value in values)
    assert decode_ids(values) == [event.event_id for event in events]


def test_oversized_event_is_reported_not_sent() -> None:
    events = [make_event(0), make_event(1, padding=50_000), make_event(2)]
    oversized: list[Event] = []

    values = list(encode_batches("210987654321", events, max_bytes=20_000, oversized=oversized))

    assert decode_ids(values) == ["event-0", "event-2"]
    assert [event.event_id for event in oversized] == ["event-1"]


def test_dead_letter_fits_size_limit() -> None:
    from pivotwatch.streams.records import TRUNCATED_HEADER, DeadLetter, RawMessage

    huge = b'{"eventID": "' + b"x" * 900_000 + b'"'
    dead = DeadLetter(
        RawMessage("pivotwatch.raw.cloudtrail", 0, 7, None, huge),
        "bad " + "x" * 900_000,
        "DecodeError",
    )

    value, headers = dead.value(100_000)

    assert len(value) == 100_000
    assert value == huge[:100_000]
    named = dict(headers)
    assert named[TRUNCATED_HEADER] == str(len(huge)).encode()
    assert len(named["pivotwatch.error.reason"]) < 2_000
    assert named["pivotwatch.source.offset"] == b"7"
