"""Messages as the stream stages see them, independent of the Kafka client."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEAD_LETTER_HEADERS", "DeadLetter", "RawMessage"]

DEAD_LETTER_HEADERS = (
    "pivotwatch.error.reason",
    "pivotwatch.error.class",
    "pivotwatch.source.topic",
    "pivotwatch.source.partition",
    "pivotwatch.source.offset",
)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One Kafka message read from a raw topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be used, with the reason.

    On the dead-letter topic the value is the original bytes, unchanged; the key is the
    source topic; the reason and position travel in headers named in
    ``DEAD_LETTER_HEADERS``.
    """

    message: RawMessage
    reason: str
    error_class: str

    def headers(self) -> list[tuple[str, bytes]]:
        values = (
            self.reason,
            self.error_class,
            self.message.topic,
            str(self.message.partition),
            str(self.message.offset),
        )
        return [
            (name, value.encode()) for name, value in zip(DEAD_LETTER_HEADERS, values, strict=True)
        ]
