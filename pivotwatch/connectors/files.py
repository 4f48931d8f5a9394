"""Readers that turn replay files into raw source records, one Kafka message each.

A file contains either one JSON value per line (JSON Lines, the way Falco and ``gcloud
logging read --format=json`` pipelines deliver records) or one JSON document, compact or
pretty-printed. A record delivered on its own line keeps its bytes, minus the line
terminator. A document that contains several records is split into them, and each is
re-serialized with orjson with no other change:

- ``{"Records": [...]}``: a CloudTrail log file as delivered to S3;
- ``{"Reservations": [...]}``: ``aws ec2 describe-instances`` output, one message per
  reservation, because the reservation carries the owning account (``OwnerId``);
- ``{"kind": "List", "items": [...]}``: ``kubectl get ... -o json`` output;
- a JSON array: ``gcloud ... --format=json`` output, or any list of records.

The source of each record is decided by its content, not by the file or folder name,
unless the caller names the source. CloudTrail digest files are skipped. Invalid JSON
and records of no known source are reported as `Rejected` items so that the caller
can count and log them; they never stop the reading of other files.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import sys
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, cast

import orjson

from pivotwatch.errors import ReplayError
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import guess_source

__all__ = [
    "REPLAY_SUFFIXES",
    "STDIN",
    "Outcome",
    "Position",
    "ReadItem",
    "Rejected",
    "SourceRecord",
    "list_input_files",
    "message_key",
    "read_records",
]

logger = logging.getLogger(__name__)

STDIN = Path("-")
"""The path that means standard input."""

REPLAY_SUFFIXES = (".json", ".jsonl", ".ndjson", ".log")
"""File name endings read when walking a folder; each may be followed by ``.gz``."""

GZIP_MAGIC = b"\x1f\x8b"


class Outcome(StrEnum):
    """Result of one input record in a replay."""

    SENT = "sent"
    SKIPPED_DIGEST = "skipped_digest"
    """A CloudTrail digest file: integrity metadata, not a record of activity."""
    UNRECOGNIZED = "unrecognized"
    """Valid JSON that matches no known source."""
    INVALID = "invalid"
    """Not valid JSON, or not a JSON object where a record was expected."""


@dataclass(frozen=True, slots=True)
class Position:
    """Location of a record: file (``None`` for standard input), line and index.

    ``line`` is the 1-based line of a record delivered one per line, ``None`` for a
    multi-line document. ``index`` is the 0-based place of a record inside a document's
    record list, ``None`` when the record is the whole line or document.
    """

    path: Path | None
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        parts = ["standard input" if self.path is None else str(self.path)]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.index is not None:
            parts.append(f"record {self.index}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record, framed as the message for its raw topic."""

    source: Source
    key: bytes | None
    value: bytes
    position: Position


@dataclass(frozen=True, slots=True)
class Rejected:
    """Input that produces no message: a digest file, invalid JSON or an unknown record.

    ``raw`` contains the rejected line's bytes when the input was one line, else ``None``.
    """

    outcome: Outcome
    reason: str
    position: Position
    source: Source | None = None
    raw: bytes | None = None


ReadItem = SourceRecord | Rejected


# --- which files to read -------------------------------------------------------------


def list_input_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand files and folders into the files to read, folders walked in sorted order.

    A file named directly is read whatever its name. Inside a folder only files ending in
    one of `REPLAY_SUFFIXES` (optionally followed by ``.gz``) are read, and hidden files
    and folders are skipped. `STDIN` is kept as it is.

    Raises:
        ReplayError: a path does not exist or cannot be read. Every path is checked
            before anything is returned, so a replay fails before it sends anything.
    """
    files: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path == STDIN:
            files.append(STDIN)
        elif path.is_dir():
            files.extend(_walk_folder(path))
        elif path.is_file():
            files.append(path)
        else:
            raise ReplayError(
                f"replay path {str(path)!r} does not exist; expected a file or folder"
            )
    for file in files:
        if file != STDIN and not os.access(file, os.R_OK):
            raise ReplayError(f"replay file {str(file)!r} is not readable; check its permissions")
    return files


def _walk_folder(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and _has_replay_suffix(name):
                found.append(Path(root) / name)
    return found


def _has_replay_suffix(name: str) -> bool:
    stem = name.removesuffix(".gz")
    return stem.endswith(REPLAY_SUFFIXES)


# --- reading one file ----------------------------------------------------------------


def read_records(path: Path, source: Source | None = None) -> Generator[ReadItem, None, None]:
    """Yield the records of one file, or of standard input when ``path`` is `STDIN`.

    With ``source`` given, every record is taken to be of that source. Without it, each
    record's source is guessed from its fields by `guess_source`. Gzip input is
    recognised by its magic bytes, whatever the file name. A file that fails to
    decompress part way yields the records read so far and one INVALID item.

    Raises:
        ReplayError: the file cannot be opened.
    """
    position = Position(None if path == STDIN else path)
    try:
        stream = _open_input(path)
    except OSError as error:
        raise ReplayError(f"cannot open replay file {str(path)!r}: {error}") from error
    try:
        with stream:
            yield from _read_stream(stream, position, source)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        yield Rejected(Outcome.INVALID, f"cannot decompress gzip input: {error}", position, source)


def _open_input(path: Path) -> IO[bytes]:
    # GzipFile and BufferedReader both implement IO[bytes]; typeshed types them apart.
    if path == STDIN:
        # Wrapped so that leaving the ``with`` block does not close the process's stdin.
        return io.BufferedReader(_UnclosedReader(sys.stdin.buffer))
    handle = path.open("rb")
    if handle.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=handle, mode="rb"))
    return handle


class _UnclosedReader(io.RawIOBase):
    """A raw reader over another binary stream that leaves it open on close."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_stream(
    stream: IO[bytes], position: Position, source: Source | None
) -> Iterator[ReadItem]:
    """Decide between one-value-per-line and one-document framing, then split.

    The first non-blank line decides: if it is a complete JSON value, the input is read
    line by line without holding it in memory. Otherwise the whole input is parsed as
    one document. If that fails too, an input whose first line is a lone ``{`` or ``[``
    is one invalid document, because that is how pretty-printers start a document. Any
    other input is read line by line, so a garbage first line costs only that line.
    """
    first_number, first_line = _first_nonblank_line(stream)
    if first_line is None:
        logger.debug("%s is empty", position)
        return
    try:
        first_value = orjson.loads(first_line)
    except orjson.JSONDecodeError:
        pass
    else:
        yield from _frame_line(first_value, first_line, first_number, position, source)
        yield from _read_lines(stream, first_number + 1, position, source)
        return

    # NOTE: from here on the whole input is held in memory, also when it turns out to be
    # JSON Lines with an invalid first line.
    rest = stream.read()
    whole = first_line + b"\n" + rest
    try:
        document = orjson.loads(whole)
    except orjson.JSONDecodeError as error:
        if first_line.strip() in (b"{", b"["):
            reason = (
                f"invalid JSON document at line {error.lineno}, column {error.colno}: {error.msg}"
            )
            yield Rejected(Outcome.INVALID, reason, position, source)
            return
        lines = io.BytesIO(whole)
        yield from _read_lines(lines, first_number, position, source)
        return
    yield from _frame_document(document, position, source)


def _first_nonblank_line(stream: IO[bytes]) -> tuple[int, bytes | None]:
    number = 0
    for line in stream:
        number += 1
        if line.strip():
            return number, line.rstrip(b"\r\n")
    return number, None


def _read_lines(
    stream: IO[bytes], first_number: int, position: Position, source: Source | None
) -> Iterator[ReadItem]:
    for number, line in enumerate(stream, start=first_number):
        if not line.strip():
            continue
        raw = line.rstrip(b"\r\n")
        line_position = Position(position.path, line=number)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            reason = f"invalid JSON at column {error.colno}: {error.msg}"
            yield Rejected(Outcome.INVALID, reason, line_position, source, raw)
            continue
        yield from _frame_line(value, raw, number, position, source)


def _frame_line(
    value: Any, raw: bytes, number: int, position: Position, source: Source | None
) -> Iterator[ReadItem]:
    line_position = Position(position.path, line=number)
    if _record_list(value) is None and isinstance(value, dict) and not _is_digest(value):
        yield _frame_record(value, raw, line_position, source, raw)
        return
    yield from _frame_document(value, line_position, source, raw)


def _frame_document(
    document: Any, position: Position, source: Source | None, raw: bytes | None = None
) -> Iterator[ReadItem]:
    """Split a parsed document into records; the document may itself be one record."""
    if isinstance(document, dict) and _is_digest(document):
        reason = "CloudTrail digest file, not a log file"
        yield Rejected(Outcome.SKIPPED_DIGEST, reason, position, Source.CLOUDTRAIL)
        return
    records = _record_list(document)
    if records is None:
        if not isinstance(document, dict):
            reason = f"a JSON {type(document).__name__} is not a record; expected an object"
            yield Rejected(Outcome.INVALID, reason, position, source, raw)
            return
        yield _frame_record(document, orjson.dumps(document), position, source, raw)
        return
    for index, record in enumerate(records):
        record_position = Position(position.path, position.line, index)
        if not isinstance(record, dict):
            reason = f"a JSON {type(record).__name__} is not a record; expected an object"
            yield Rejected(Outcome.INVALID, reason, record_position, source)
            continue
        yield _frame_record(record, orjson.dumps(record), record_position, source, None)


def _frame_record(
    record: dict[str, Any],
    value: bytes,
    position: Position,
    source: Source | None,
    raw: bytes | None,
) -> ReadItem:
    record_source = source if source is not None else guess_source(record)
    if record_source is None:
        reason = "the record matches no known source (CloudTrail, GCP audit, Falco, inventory)"
        return Rejected(Outcome.UNRECOGNIZED, reason, position, None, raw)
    return SourceRecord(record_source, message_key(record_source, record), value, position)


def _record_list(document: Any) -> list[Any] | None:
    """Return the records a document contains, or ``None`` when it is a single record."""
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        return None
    for field in ("Records", "Reservations"):
        if isinstance(document.get(field), list):
            return list(document[field])
    kind = document.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
        return list(document["items"])
    return None


def _is_digest(document: dict[str, Any]) -> bool:
    if "Records" in document:
        return False
    return "digestS3Object" in document or (
        "digestStartTime" in document and "digestEndTime" in document
    )


# --- source and key of one record ----------------------------------------------------


def message_key(source: Source, record: dict[str, Any]) -> bytes | None:
    """Return the Kafka key of a raw record, UTF-8 encoded, or ``None`` when it has none.

    CloudTrail: the account id (``recipientAccountId``, else ``userIdentity.accountId``).
    GCP audit: the project id (``resource.labels.project_id``, else the ``projects/<id>``
    part of ``logName``). Falco: ``output_fields["k8s.cluster.name"]``, else
    ``hostname``. Inventory: an EC2 reservation's ``OwnerId`` or the project in a GCE
    instance's ``selfLink`` or ``zone``; Kubernetes objects carry neither, so have no key.
    """
    key: Any = None
    if source is Source.CLOUDTRAIL:
        key = record.get("recipientAccountId") or _nested(record, "userIdentity", "accountId")
    elif source is Source.GCP_AUDIT:
        key = _nested(record, "resource", "labels", "project_id") or _project_in(
            record.get("logName")
        )
    elif source is Source.FALCO:
        key = _nested(record, "output_fields", "k8s.cluster.name") or record.get("hostname")
    elif source is Source.INVENTORY:
        key = record.get("OwnerId") or _project_in(record.get("selfLink"))
        key = key or _project_in(record.get("zone"))
    return key.encode() if isinstance(key, str) and key else None


def _nested(record: dict[str, Any], *fields: str) -> Any:
    value: Any = record
    for field in fields:
        if not isinstance(value, dict):
            return None
        value = value.get(field)
    return value


def _project_in(name: Any) -> str | None:
    """Return ``<id>`` from a resource name or URL containing ``projects/<id>/``."""
    if not isinstance(name, str):
        return None
    parts = name.split("/")
    for place, part in enumerate(parts[:-1]):
        if part == "projects" and parts[place + 1]:
            return parts[place + 1]
    return None
