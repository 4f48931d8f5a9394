"""Publishing alerts as OCSF Detection Findings, to a Kafka topic or a text stream.

`export_ocsf` reads alert revisions from an `AlertStream`, maps each with
`pivotwatch.schemas.ocsf.detection_finding`, writes them, and commits the alert topic
only after the writer has delivered them. On a topic each finding is keyed by chain id,
so a chain's revisions stay in order on one partition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from pivotwatch.connectors.producer import RecordProducer
from pivotwatch.outputs.alert_stream import AlertMessage, AlertStream
from pivotwatch.schemas.ocsf import detection_finding
from pivotwatch.settings import KafkaSettings

__all__ = ["FindingWriter", "OcsfExportSummary", "StreamWriter", "TopicWriter", "export_ocsf"]

logger = logging.getLogger(__name__)


class FindingWriter(Protocol):
    """Destination of OCSF findings; `write` returns only once they are delivered."""

    def write(self, findings: Sequence[tuple[str, dict[str, Any]]]) -> None: ...


class TopicWriter:
    """Writes findings to a Kafka topic, keyed by chain id, and waits for the acknowledgements."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self._producer = RecordProducer(kafka)

    def write(self, findings: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for key, finding in findings:
            self._producer.send(self.topic, key.encode(), orjson.dumps(finding))
        self._producer.flush()

    def close(self) -> None:
        self._producer.close()


class StreamWriter:
    """Writes findings as JSON lines to a binary stream, such as standard output."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, findings: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self._stream.write(b"".join(orjson.dumps(finding) + b"\n" for _, finding in findings))
        self._stream.flush()


@dataclass
class OcsfExportSummary:
    """Counts of one `export_ocsf` run."""

    findings: int = 0
    invalid_alerts: int = 0


def export_ocsf(
    stream: AlertStream,
    writer: FindingWriter,
    *,
    batch_size: int = 100,
    max_alerts: int | None = None,
    idle_seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> OcsfExportSummary:
    """Map and write alerts until ``max_alerts`` are written or the topic is idle ``idle_seconds``.

    ``progress`` is called with the number of findings written by each batch.
    """
    summary = OcsfExportSummary()
    for batch in stream.batches(batch_size, idle_seconds):
        if max_alerts is not None:
            batch = batch[: max_alerts - summary.findings]
        writer.write([_finding_of(message) for message in batch])
        stream.commit(batch)

        summary.findings += len(batch)
        if progress is not None:
            progress(len(batch))
        if max_alerts is not None and summary.findings >= max_alerts:
            break
    summary.invalid_alerts = stream.invalid
    logger.info(
        "exported %d OCSF findings, skipped %d invalid alerts",
        summary.findings,
        summary.invalid_alerts,
    )
    return summary


def _finding_of(message: AlertMessage) -> tuple[str, dict[str, Any]]:
    return message.alert.chain_id, detection_finding(message.alert)
