"""Encoding event batches into Kafka messages below the broker's size limit."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import msgspec

from pivotwatch.schemas.event import Event, EventBatch

__all__ = ["encode_batches"]

logger = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


def encode_batches(
    key: str, events: Sequence[Event], max_bytes: int, oversized: list[Event] | None = None
) -> Iterator[bytes]:
    """Yield encoded `EventBatch` messages of ``key`` that are each at most ``max_bytes``.

    The whole batch is encoded first; a message over the limit is split in halves until
    every part fits, keeping the events' order. A single event larger than the limit
    cannot be sent: it is appended to ``oversized`` (when given), logged with its id,
    and skipped.
    """
    if not events:
        return
    value = _encoder.encode(EventBatch(key=key, events=list(events)))
    if len(value) <= max_bytes:
        yield value
        return
    if len(events) == 1:
        event = events[0]
        logger.error(
            "normalized %s event %s of key %s is %d bytes, over the %d-byte message limit; "
            "not sent (raise PIVOTWATCH_WORKER__MAX_MESSAGE_BYTES and the broker's "
            "message.max.bytes to pass such records)",
            event.source,
            event.event_id,
            key,
            len(value),
            max_bytes,
        )
        if oversized is not None:
            oversized.append(event)
        return
    middle = len(events) // 2
    yield from encode_batches(key, events[:middle], max_bytes, oversized)
    yield from encode_batches(key, events[middle:], max_bytes, oversized)
