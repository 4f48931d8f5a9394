"""The normalize stage: raw messages in, batches of normalized events out.

This is the logic of the normalize agent without Kafka or faust, so it can be tested
and benchmarked alone. A message that cannot be decoded or mapped becomes a dead
letter; the other records of the same batch go on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import msgspec
import orjson

from pivotwatch.correlator.dedup import Deduplicator
from pivotwatch.errors import MappingError, RecordError
from pivotwatch.schemas.event import Event, EventKind, Source
from pivotwatch.schemas.framing import split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.settings import Settings
from pivotwatch.streams.records import DeadLetter, RawMessage, shorten_reason
from pivotwatch.streams.routing import SessionRouter

__all__ = ["NormalizeOutput", "Normalizer"]

logger = logging.getLogger(__name__)


@dataclass
class NormalizeOutput:
    """What one batch of raw messages produced."""

    batches: dict[str, list[Event]] = field(default_factory=dict)
    """Normalized events by correlation key, in input order."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    """Records by outcome: ``normalized``, ``duplicate``, ``skipped``, ``dead_letter``, and
    ``routed`` for extra copies sent to the key where a cross-account chain began."""

    def add(self, event: Event) -> None:
        self.batches.setdefault(event.key, []).append(event)


class Normalizer:
    """Turns raw-topic messages into normalized events, keeping dedup and host state."""

    def __init__(self, settings: Settings) -> None:
        correlation = settings.correlation
        self.sources: Mapping[str, Source] = {
            topic: Source(name) for name, topic in settings.topics.raw_topics().items()
        }
        self.context = NormalizeContext.from_settings(correlation)
        self.deduplicator = Deduplicator(correlation.allowed_lateness)
        self.router = SessionRouter(correlation.window)
        self.max_future = timedelta(seconds=correlation.max_future_seconds)
        self._latest_allowed = datetime.now(UTC) + self.max_future

    def process(self, messages: Sequence[RawMessage]) -> NormalizeOutput:
        output = NormalizeOutput()
        self._latest_allowed = datetime.now(UTC) + self.max_future
        for message in messages:
            self._process_message(message, output)
        return output

    def _process_message(self, message: RawMessage, output: NormalizeOutput) -> None:
        source = self.sources.get(message.topic)
        if source is None:
            self._reject(
                message, RecordError(f"topic {message.topic!r} is not a raw topic"), output
            )
            return
        try:
            framed = split_message(source, message.value)
        except RecordError as error:
            self._reject(message, error, output)
            return
        output.counts["skipped"] += len(framed.skipped)
        single = len(framed.records) == 1
        for record in framed.records:
            try:
                events = normalize_record(source, record, self.context)
                self._check_not_future(events)
            except RecordError as error:
                # Only the bad record of a batch goes to the dead-letter topic, as JSON.
                bad = message if single else replace(message, value=orjson.dumps(record))
                self._reject(bad, error, output)
                continue
            for event in events:
                self._accept(event, output)

    def _check_not_future(self, events: list[Event]) -> None:
        """Raise MappingError for an event stamped further ahead than ``max_future``.

        The clock is used only as a sanity bound: one record stamped far ahead would
        otherwise become its stream's watermark and make every later record late.
        """
        for event in events:
            if event.kind is not EventKind.ASSET and event.time > self._latest_allowed:
                raise self._future_error(event)

    def _future_error(self, event: Event) -> MappingError:
        hours = self.max_future.total_seconds() / 3600
        return MappingError(
            f"{event.source} record {event.event_id} has event time {event.time.isoformat()}, "
            f"more than {hours:g} h ahead of this worker's clock: fix the source's clock or "
            "timestamp, or raise PIVOTWATCH_CORRELATION__MAX_FUTURE_SECONDS",
            event_id=event.event_id,
        )

    def _accept(self, event: Event, output: NormalizeOutput) -> None:
        if event.kind is not EventKind.ASSET and self.deduplicator.is_duplicate(
            f"{event.source}:{event.event_id}", event.time
        ):
            output.counts["duplicate"] += 1
            return
        output.add(event)
        output.counts["normalized"] += 1
        for key in self.router.extra_keys(event):
            output.add(msgspec.structs.replace(event, key=key))
            output.counts["routed"] += 1

    def _reject(self, message: RawMessage, error: RecordError, output: NormalizeOutput) -> None:
        error.at(message.topic, message.partition, message.offset)
        logger.warning("dead letter: %s", shorten_reason(str(error)))
        output.dead_letters.append(DeadLetter(message, error.reason, type(error).__name__))
        output.counts["dead_letter"] += 1
