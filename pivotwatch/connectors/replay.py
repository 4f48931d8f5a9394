"""Replay of recorded source files onto the raw topics.

`replay` reads CloudTrail, GCP audit, Falco and inventory files (see
`pivotwatch.connectors.files` for the formats), sends each record as one message to its
source's raw topic, and waits until Kafka has acknowledged all of them. Inventory files
go first, because the correlator can link an alert to a host only after it has seen
the host.

Input that yields no message is counted and logged, never sent: CloudTrail digest files,
invalid JSON, and records of no known source. Such input never reaches a raw topic, so
it has no topic, partition or offset that a dead-letter message could carry. The log
line (file and line) and the summary counts take that role.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pivotwatch.connectors.files import (
    STDIN,
    Outcome,
    ReadItem,
    Rejected,
    SourceRecord,
    list_input_files,
    read_records,
)
from pivotwatch.connectors.producer import RecordProducer
from pivotwatch.schemas.event import Source
from pivotwatch.settings import Settings
from pivotwatch.streams.topics import ensure_topics

__all__ = ["UNKNOWN_SOURCE", "ReplaySummary", "replay", "summary_table"]

logger = logging.getLogger(__name__)

UNKNOWN_SOURCE = "unknown"
"""Summary label of input whose source is not known (invalid JSON, unknown records)."""

MAX_LOGGED_REJECTS_PER_FILE = 5
"""Rejected records logged one by one per file; the rest of the file's are counted in one line."""


@dataclass
class ReplaySummary:
    """Counts of one replay, by source label (a `Source` value or `UNKNOWN_SOURCE`) and outcome."""

    files: int = 0
    counts: Counter[tuple[str, Outcome]] = field(default_factory=Counter)

    def add(self, source: Source | None, outcome: Outcome) -> None:
        label = source.value if source is not None else UNKNOWN_SOURCE
        self.counts[(label, outcome)] += 1

    def count(self, source: str | None = None, outcome: Outcome | None = None) -> int:
        """Return the number of records of ``source`` with ``outcome``; ``None`` matches all."""
        return sum(
            number
            for (label, result), number in self.counts.items()
            if (source is None or label == source) and (outcome is None or result == outcome)
        )

    @property
    def sent(self) -> int:
        return self.count(outcome=Outcome.SENT)

    def source_labels(self) -> list[str]:
        """Return the source labels that have counts, in `Source` order, unknown last."""
        present = {label for label, _ in self.counts}
        ordered = [source.value for source in Source] + [UNKNOWN_SOURCE]
        return [label for label in ordered if label in present]


def replay(
    paths: Iterable[Path | str],
    settings: Settings,
    source: Source | None = None,
    progress: bool = True,
) -> ReplaySummary:
    """Send every record under ``paths`` to its raw topic and wait for Kafka to acknowledge it.

    ``paths`` are files, folders (read recursively, in sorted order) or ``-`` for
    standard input. With ``source`` given, every record is taken to be of that source;
    without it, each record's source is guessed from its fields. Files whose first record
    is inventory are sent first, and every other file after them in path order; such a
    file is therefore read twice, once to find its source and once to send it. Standard
    input is read once, after the inventory files. The progress bar is drawn only when
    ``progress`` is true and standard error is a terminal.

    Raises:
        ReplayError: a path is missing or unreadable; raised before anything is sent.
        BrokerError: the broker cannot be reached, or a record was not acknowledged. In
            the second case records sent before the failure may be in Kafka already.
    """
    # 1. Check every path before anything is sent.
    files = list_input_files(paths)
    summary = ReplaySummary(files=len(files))

    # 2. Create the raw topics with the configured partitions where they are missing.
    ensure_topics(settings)

    with (
        RecordProducer(settings.kafka) as producer,
        _progress_display(progress and sys.stderr.isatty(), len(files)) as display,
    ):
        sender = _FileSender(producer, settings, summary, display)

        # 3. Inventory first, so that hosts and workloads are known before alerts about them.
        deferred = []
        for file in files:
            if _starts_with_inventory(file, source):
                sender.send_file(file, source)
            else:
                deferred.append(file)

        # 4. Everything else, in path order.
        for file in deferred:
            sender.send_file(file, source)

        # 5. Wait for every acknowledgement; a failed record raises here.
        producer.flush()

    logger.info(
        "replayed %d files: %d records sent, %d skipped, %d invalid, %d unrecognized",
        summary.files,
        summary.sent,
        summary.count(outcome=Outcome.SKIPPED_DIGEST),
        summary.count(outcome=Outcome.INVALID),
        summary.count(outcome=Outcome.UNRECOGNIZED),
    )
    return summary


def summary_table(summary: ReplaySummary) -> Table:
    """Build a table of record counts: one row per source, one column per outcome."""
    noun = "file" if summary.files == 1 else "files"
    table = Table(title=f"Replay of {summary.files} {noun}")
    table.add_column("source")
    for outcome in Outcome:
        table.add_column(outcome.value.replace("_", " "), justify="right")
    for label in summary.source_labels():
        cells = [str(summary.count(label, outcome)) for outcome in Outcome]
        table.add_row(label, *cells)
    totals = [str(summary.count(outcome=outcome)) for outcome in Outcome]
    table.add_row("total", *totals, style="bold")
    return table


def _starts_with_inventory(file: Path, source: Source | None) -> bool:
    """Return whether the first record of ``file`` is an inventory record."""
    if source is not None:
        return source is Source.INVENTORY
    if file == STDIN:
        return False
    records: Generator[ReadItem, None, None] = read_records(file)
    try:
        for item in records:
            if isinstance(item, SourceRecord):
                return item.source is Source.INVENTORY
    finally:
        records.close()
    return False


class _ProgressDisplay:
    """Progress bar of files and records; every method does nothing when disabled."""

    def __init__(self, progress: Progress | None, file_task: TaskID, record_task: TaskID) -> None:
        self._progress = progress
        self._file_task = file_task
        self._record_task = record_task

    def advance_file(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._file_task)

    def advance_record(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._record_task)


@contextmanager
def _progress_display(enabled: bool, file_count: int) -> Iterator[_ProgressDisplay]:
    if not enabled:
        yield _ProgressDisplay(None, TaskID(0), TaskID(0))
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        file_task = progress.add_task("files", total=file_count)
        record_task = progress.add_task("records sent", total=None)
        yield _ProgressDisplay(progress, file_task, record_task)


class _FileSender:
    """Send the records of one file after another, counting and logging what is rejected."""

    def __init__(
        self,
        producer: RecordProducer,
        settings: Settings,
        summary: ReplaySummary,
        display: _ProgressDisplay,
    ) -> None:
        self._producer = producer
        self._topics = settings.topics.raw_topics()
        self._summary = summary
        self._display = display

    def send_file(self, file: Path, source: Source | None) -> None:
        logger.debug("replaying %s", file)
        rejected = 0
        for item in read_records(file, source):
            if isinstance(item, SourceRecord):
                self._send(item)
                continue
            self._summary.add(item.source, item.outcome)
            rejected += 1
            if rejected <= MAX_LOGGED_REJECTS_PER_FILE:
                _log_rejected(item)
        if rejected > MAX_LOGGED_REJECTS_PER_FILE:
            hidden = rejected - MAX_LOGGED_REJECTS_PER_FILE
            logger.warning("%s: %d more records rejected, not logged one by one", file, hidden)
        self._display.advance_file()

    def _send(self, record: SourceRecord) -> None:
        topic = self._topics[record.source.value]
        self._producer.send(topic, record.key, record.value)
        self._summary.add(record.source, Outcome.SENT)
        self._display.advance_record()


def _log_rejected(item: Rejected) -> None:
    if item.outcome is Outcome.SKIPPED_DIGEST:
        logger.info("skipped %s: %s", item.position, item.reason)
    else:
        logger.warning("rejected %s as %s: %s", item.position, item.outcome.value, item.reason)
