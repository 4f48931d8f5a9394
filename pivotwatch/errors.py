"""Exceptions raised by pivotwatch.

Every exception derives from one root, so a caller can catch the whole family::

    PivotwatchError
    ├── ConfigurationError        invalid settings or command-line values
    ├── RecordError               one input record cannot be used (goes to the dead-letter topic)
    │   ├── DecodeError           the bytes are not JSON, or not the expected JSON shape
    │   └── MappingError          valid JSON that the source's mapping table cannot map
    ├── RuleError                 a detection rule cannot be loaded or evaluated
    ├── ReplayError               an input file or folder cannot be replayed
    └── BrokerError               the Kafka broker cannot be reached or started

Record errors keep the position of the bad record (topic, partition, offset) when it is
known, so the dead-letter message and the log line can name it.
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigurationError",
    "DecodeError",
    "MappingError",
    "PivotwatchError",
    "RecordError",
    "ReplayError",
    "RuleError",
]


class PivotwatchError(Exception):
    """Root of every exception that pivotwatch raises on purpose."""


class ConfigurationError(PivotwatchError):
    """A setting or command-line value is invalid."""


class RecordError(PivotwatchError):
    """One input record cannot be decoded or mapped.

    Attributes:
        reason: the message, without the position.
        topic, partition, offset: where the record was read, when known.
        event_id: the source's own id of the record, when it could be read.
    """

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.event_id = event_id

    def at(self, topic: str, partition: int, offset: int) -> RecordError:
        """Return the same error with the record's Kafka position filled in."""
        self.topic, self.partition, self.offset = topic, partition, offset
        return self

    def __str__(self) -> str:
        if self.topic is None:
            return self.reason
        return (
            f"{self.reason} (topic {self.topic}, partition {self.partition}, offset {self.offset})"
        )


class DecodeError(RecordError):
    """The record's bytes are not JSON, or not a JSON object or array of objects."""


class MappingError(RecordError):
    """The record is JSON but lacks a field the source's mapping needs."""


class RuleError(PivotwatchError):
    """A detection rule cannot be loaded or evaluated.

    Attributes:
        path: the rule file, when the rule came from a file.
        rule_id: the rule's ``id``, when it could be read.
    """

    def __init__(self, reason: str, *, path: str | None = None, rule_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.rule_id = rule_id

    def __str__(self) -> str:
        where = ", ".join(
            part for part in (self.path, self.rule_id and f"rule {self.rule_id}") if part
        )
        return f"{where}: {self.reason}" if where else self.reason


class ReplayError(PivotwatchError):
    """An input file or folder cannot be read for replay."""


class BrokerError(PivotwatchError):
    """The Kafka broker cannot be reached, or the embedded broker cannot be started."""
