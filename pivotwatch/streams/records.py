"""Messages as the stream stages see them, independent of the Kafka client."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEAD_LETTER_HEADERS", "TRUNCATED_HEADER", "DeadLetter", "RawMessage"]

TRUNCATED_HEADER = "pivotwatch.error.truncated"

# Maximum length of a dead letter's reason, in characters: a reason quoting a huge value
# is cut, so the dead-letter message stays within the broker's size limit.
MAX_REASON_CHARS = 1000


def shorten_reason(reason: str) -> str:
    """Return ``reason`` cut to `MAX_REASON_CHARS`, noting its full length when cut."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return f"{reason[:MAX_REASON_CHARS]}... ({len(reason)} characters in all)"


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

    On the dead-letter topic the value is the original bytes, unchanged, and the key is
    the source topic. The reason and position travel in headers named in
    ``DEAD_LETTER_HEADERS``.
    """

    message: RawMessage
    reason: str
    error_class: str

    def value(self, max_bytes: int) -> tuple[bytes, list[tuple[str, bytes]]]:
        """Return the original bytes and the headers, cut to ``max_bytes`` if longer.

        A cut value gets the header ``pivotwatch.error.truncated`` with the original
        length, so the dead-letter message still fits the broker's size limit.
        """
        headers = self.headers()
        value = self.message.value
        if len(value) <= max_bytes:
            return value, headers
        headers.append((TRUNCATED_HEADER, str(len(value)).encode()))
        return value[:max_bytes], headers

    def headers(self) -> list[tuple[str, bytes]]:
        values = (
            shorten_reason(self.reason),
            self.error_class,
            self.message.topic,
            str(self.message.partition),
            str(self.message.offset),
        )
        return [
            (name, value.encode()) for name, value in zip(DEAD_LETTER_HEADERS, values, strict=True)
        ]
