"""Split one raw-topic message value into the source records it carries.

A message value contains one of:

- one record, a JSON object (one CloudTrail record, one GCP LogEntry, one Falco alert as
  falcosidekick sends it, one inventory asset);
- a batch, a JSON array of objects, or JSON Lines (one object per line);
- a container document that the source itself writes around its records (the
  `_CONTAINERS` table): CloudTrail's ``{"Records": [...]}`` file, an EventBridge
  event whose ``detail`` is a CloudTrail record, a Cloud Logging ``entries.list``
  response, ``aws ec2 describe-instances`` output (``Reservations``), a Kubernetes
  ``List`` or ``PodList``, and GCE instance lists (plain and aggregated).

Documents that the sources deliver beside their records but that are not records
(CloudTrail digest files, CloudTrail SNS delivery notifications, an empty ``Records``
list) are recognised and returned in `Framed.skipped` with the reason; they never
raise. CloudTrail Insights events are records and are returned in `Framed.records`.

Anything else raises `DecodeError`: bytes that are not JSON, and JSON that is not an
object or an array of objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from pivotwatch.errors import DecodeError
from pivotwatch.schemas.event import Source

__all__ = ["Framed", "guess_source", "split_message"]

logger = logging.getLogger(__name__)

_PREVIEW_BYTES: Final = 60
_UTF8_BOM: Final = b"\xef\xbb\xbf"

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Framed:
    """The records found in one message value, in message order."""

    records: list[JsonObject]
    skipped: list[str]
    """Reasons for each recognised document that is not a record (a CloudTrail digest file)."""


def split_message(source: Source, value: bytes) -> Framed:
    """Decode a raw-topic message value and split it into source records.

    Records are returned unchanged, as orjson decodes them. Container documents are
    opened one level deep, in the top-level object or in each element of a top-level
    array, according to the containers listed for ``source``.

    Raises:
        DecodeError: the value is empty or not JSON, or it is JSON but not an object,
            an array of objects, or JSON Lines of objects. The message names what was
            found and shows the first bytes of the value.
    """
    documents = _decode_documents(source, value)

    records: list[JsonObject] = []
    skipped: list[str] = []
    for position, document in documents:
        _expand_document(source, document, position, records, skipped)

    if skipped:
        logger.debug("%s message: %d records, skipped %s", source, len(records), skipped)
    return Framed(records=records, skipped=skipped)


def guess_source(record: JsonObject) -> Source | None:
    """Tell which source wrote a record or container document, by its fields.

    Returns None when no source's fields are present. The checks look only at
    top-level keys and ``kind`` values, so a record with the wrong content type for
    its source still maps to a source here and fails later in normalization.
    """
    for source, recognises in _SOURCE_SIGNATURES:
        if recognises(record):
            return source
    return None


# -- decoding ------------------------------------------------------------------------------


def _decode_documents(source: Source, value: bytes) -> list[tuple[str, JsonObject]]:
    """Decode the value into top-level objects, each with a position used in messages."""
    data = value.removeprefix(_UTF8_BOM)
    if not data.strip():
        raise DecodeError(
            f"{source} message is empty; expected a JSON object or an array of objects"
        )

    try:
        decoded = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        lines = _json_lines(data)
        if lines is None:
            raise DecodeError(
                f"{source} message is not valid JSON ({error}); expected a JSON object or an "
                f"array of objects, got {_preview(data)}"
            ) from None
        return _decode_json_lines(source, lines)

    if isinstance(decoded, dict):
        return [("the message", decoded)]
    if isinstance(decoded, list):
        return [
            (f"array element {index}", _require_object(source, item, f"array element {index}"))
            for index, item in enumerate(decoded)
        ]
    raise DecodeError(
        f"{source} message is a JSON {_json_type(decoded)} ({_preview(data)}); "
        "expected a JSON object or an array of objects"
    )


def _json_lines(data: bytes) -> list[tuple[int, bytes]] | None:
    """Return the numbered non-blank lines when the value looks like JSON Lines."""
    lines = [
        (number, line) for number, line in enumerate(data.splitlines(), start=1) if line.strip()
    ]
    if len(lines) < 2:
        return None
    try:
        orjson.loads(lines[0][1])
    except orjson.JSONDecodeError:
        return None
    return lines


def _decode_json_lines(
    source: Source, lines: list[tuple[int, bytes]]
) -> list[tuple[str, JsonObject]]:
    documents: list[tuple[str, JsonObject]] = []
    for number, line in lines:
        where = f"line {number}"
        try:
            decoded = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise DecodeError(
                f"{source} message {where} is not valid JSON ({error}); expected one JSON "
                f"object per line, got {_preview(line)}"
            ) from None
        documents.append((where, _require_object(source, decoded, where)))
    return documents


def _require_object(source: Source, item: Any, where: str) -> JsonObject:
    if isinstance(item, dict):
        return item
    raise DecodeError(
        f"{source} message {where} is a JSON {_json_type(item)} ({_preview_value(item)}); "
        "expected a JSON object"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _preview(data: bytes) -> str:
    shown = data[:_PREVIEW_BYTES]
    suffix = "..." if len(data) > _PREVIEW_BYTES else ""
    return f"{shown!r}{suffix}"


def _preview_value(value: Any) -> str:
    return _preview(orjson.dumps(value))


# -- container documents -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Container:
    """One kind of document that wraps records or is delivered beside them.

    ``matches`` recognises the document. ``records`` returns the records inside it, as
    (path, item) pairs so a bad item can be named, or None when the document is
    recognised but contains no records; ``skip_reason`` then says why.
    """

    name: str
    matches: Callable[[JsonObject], bool]
    records: Callable[[JsonObject], Iterable[tuple[str, Any]]] | None = None
    skip_reason: Callable[[JsonObject], str] | None = None


def _list_items(key: str) -> Callable[[JsonObject], Iterable[tuple[str, Any]]]:
    def items(document: JsonObject) -> Iterable[tuple[str, Any]]:
        return ((f"{key}[{index}]", item) for index, item in enumerate(document[key]))

    return items


def _has_list(document: JsonObject, key: str) -> bool:
    return isinstance(document.get(key), list)


def _is_cloudtrail_file(document: JsonObject) -> bool:
    return _has_list(document, "Records") and bool(document["Records"])


def _is_empty_cloudtrail_file(document: JsonObject) -> bool:
    return _has_list(document, "Records") and not document["Records"]


def _is_cloudtrail_digest(document: JsonObject) -> bool:
    return "Records" not in document and (
        "digestS3Object" in document or ("digestStartTime" in document and "logFiles" in document)
    )


def _describe_digest(document: JsonObject) -> str:
    return (
        "CloudTrail digest file, not an event record "
        f"(digestStartTime {document.get('digestStartTime')!r}, "
        f"digestEndTime {document.get('digestEndTime')!r})"
    )


def _is_cloudtrail_notification(document: JsonObject) -> bool:
    return "s3Bucket" in document and "s3ObjectKey" in document and "eventID" not in document


def _describe_notification(document: JsonObject) -> str:
    return (
        "CloudTrail delivery notification, not an event record "
        f"(s3Bucket {document.get('s3Bucket')!r})"
    )


def _is_eventbridge_cloudtrail_event(document: JsonObject) -> bool:
    detail_type = document.get("detail-type")
    return (
        isinstance(detail_type, str)
        and detail_type.endswith("via CloudTrail")
        and isinstance(document.get("detail"), dict)
    )


def _eventbridge_detail(document: JsonObject) -> Iterable[tuple[str, Any]]:
    return [("detail", document["detail"])]


def _is_logging_entries(document: JsonObject) -> bool:
    return _has_list(document, "entries") and "protoPayload" not in document


def _is_kubernetes_list(document: JsonObject) -> bool:
    kind = document.get("kind")
    return (
        isinstance(kind, str)
        and kind.endswith("List")
        and "apiVersion" in document
        and _has_list(document, "items")
    )


def _is_gce_instance_list(document: JsonObject) -> bool:
    return document.get("kind") == "compute#instanceList" and _has_list(document, "items")


def _is_gce_aggregated_list(document: JsonObject) -> bool:
    return document.get("kind") == "compute#instanceAggregatedList" and isinstance(
        document.get("items"), dict
    )


def _gce_aggregated_instances(document: JsonObject) -> Iterable[tuple[str, Any]]:
    for scope, scoped in document["items"].items():
        instances = scoped.get("instances", []) if isinstance(scoped, dict) else []
        for index, instance in enumerate(instances):
            yield f"items[{scope!r}].instances[{index}]", instance


def _is_empty_inventory_list(document: JsonObject) -> bool:
    return (_is_kubernetes_list(document) or _is_gce_instance_list(document)) and not document[
        "items"
    ]


def _describe_empty_list(document: JsonObject) -> str:
    return f"{document.get('kind')} with no items"


_CONTAINERS: Final[dict[Source, tuple[_Container, ...]]] = {
    Source.CLOUDTRAIL: (
        _Container("CloudTrail log file", _is_cloudtrail_file, records=_list_items("Records")),
        _Container(
            "empty CloudTrail log file",
            _is_empty_cloudtrail_file,
            skip_reason=lambda _: "CloudTrail log file with an empty Records list",
        ),
        _Container("CloudTrail digest file", _is_cloudtrail_digest, skip_reason=_describe_digest),
        _Container(
            "CloudTrail SNS notification",
            _is_cloudtrail_notification,
            skip_reason=_describe_notification,
        ),
        _Container(
            "EventBridge CloudTrail event",
            _is_eventbridge_cloudtrail_event,
            records=_eventbridge_detail,
        ),
    ),
    Source.GCP_AUDIT: (
        _Container(
            "Cloud Logging entries.list response",
            _is_logging_entries,
            records=_list_items("entries"),
        ),
    ),
    Source.FALCO: (),
    Source.INVENTORY: (
        _Container(
            "empty inventory list", _is_empty_inventory_list, skip_reason=_describe_empty_list
        ),
        _Container(
            "EC2 DescribeInstances response",
            lambda document: _has_list(document, "Reservations"),
            records=_list_items("Reservations"),
        ),
        _Container("Kubernetes list", _is_kubernetes_list, records=_list_items("items")),
        _Container("GCE instance list", _is_gce_instance_list, records=_list_items("items")),
        _Container(
            "GCE aggregated instance list",
            _is_gce_aggregated_list,
            records=_gce_aggregated_instances,
        ),
    ),
}


def _expand_document(
    source: Source,
    document: JsonObject,
    position: str,
    records: list[JsonObject],
    skipped: list[str],
) -> None:
    container = _find_container(source, document)
    if container is None:
        records.append(document)
        return

    if container.records is None:
        assert container.skip_reason is not None
        skipped.append(f"{position}: {container.skip_reason(document)}")
        return

    for path, item in container.records(document):
        records.append(_require_object(source, item, f"{position} {container.name} {path}"))


def _find_container(source: Source, document: JsonObject) -> _Container | None:
    for container in _CONTAINERS[source]:
        if container.matches(document):
            return container
    return None


# -- source signatures ---------------------------------------------------------------------

_INVENTORY_KINDS: Final = frozenset(
    {
        "Pod",
        "ServiceAccount",
        "compute#instance",
        "compute#instanceList",
        "compute#instanceAggregatedList",
    }
)


def _looks_like_cloudtrail(document: JsonObject) -> bool:
    if "Records" in document or _is_cloudtrail_digest(document):
        return True
    if document.get("eventType") == "AwsCloudTrailInsight":
        return True
    if _is_eventbridge_cloudtrail_event(document) or _is_cloudtrail_notification(document):
        return True
    has_event = "eventName" in document or "eventSource" in document
    return has_event and any(key in document for key in ("eventVersion", "userIdentity", "eventID"))


def _looks_like_gcp_audit(document: JsonObject) -> bool:
    if isinstance(document.get("protoPayload"), dict):
        return True
    return ("insertId" in document and "logName" in document) or _is_logging_entries(document)


def _looks_like_falco(document: JsonObject) -> bool:
    return (
        "rule" in document
        and "priority" in document
        and ("output" in document or "output_fields" in document)
    )


def _looks_like_inventory(document: JsonObject) -> bool:
    if _has_list(document, "Reservations") or _has_list(document, "Instances"):
        return True
    if "InstanceId" in document and ("ImageId" in document or "LaunchTime" in document):
        return True
    kind = document.get("kind")
    return kind in _INVENTORY_KINDS or _is_kubernetes_list(document)


_SOURCE_SIGNATURES: Final[tuple[tuple[Source, Callable[[JsonObject], bool]], ...]] = (
    (Source.CLOUDTRAIL, _looks_like_cloudtrail),
    (Source.GCP_AUDIT, _looks_like_gcp_audit),
    (Source.FALCO, _looks_like_falco),
    (Source.INVENTORY, _looks_like_inventory),
)
