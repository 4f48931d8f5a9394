"""Falco alert mapping: the ``json_output`` alert as Falco and falcosidekick send it.

``output_fields`` keys are Falco field names such as ``k8s.ns.name`` and contain dots,
so they are single keys in the paths below. Their values can be null, or ``<NA>`` in
older Falco versions, and both mean unknown.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from pivotwatch.schemas.event import Event, EventKind, Source, Workload
from pivotwatch.schemas.sources.context import UNKNOWN_KEY, NormalizeContext
from pivotwatch.schemas.sources.table import (
    Field,
    JsonObject,
    as_text,
    as_text_tuple,
    as_utc_time,
    map_fields,
)

__all__ = ["EVENT_FIELDS", "HASH_ID_PREFIX", "WORKLOAD_FIELDS", "alert_id", "normalize"]

_SOURCE: Final = Source.FALCO.value
_OUT: Final = "output_fields"

HASH_ID_PREFIX: Final = "falco-"
"""Prefix of the event id built from the alert's content when it has no ``uuid``."""

_UNKNOWN_VALUES: Final = frozenset({"<NA>", "N/A"})
_HOST_CONTAINER_ID: Final = "host"
"""``container.id`` of a process that runs on the host, outside any container."""


def _known_text(value: Any) -> str | None:
    text = as_text(value)
    return None if text in _UNKNOWN_VALUES else text


def _container_id(value: Any) -> str | None:
    text = _known_text(value)
    return None if text == _HOST_CONTAINER_ID else text


EVENT_FIELDS: Final[tuple[Field, ...]] = (
    Field("action", (("rule",),), as_text, required=True),
    # ``time`` is RFC 3339 with 9 fractional digits; ``evt.time`` is integer nanoseconds.
    Field("time", (("time",), (_OUT, "evt.time")), as_utc_time, required=True),
    Field("service", (("source",),), as_text),
    Field("priority", (("priority",),), as_text),
    Field("tags", (("tags",),), as_text_tuple),
)

WORKLOAD_FIELDS: Final[tuple[Field, ...]] = (
    Field("cluster", ((_OUT, "k8s.cluster.name"),), _known_text),
    Field("namespace", ((_OUT, "k8s.ns.name"),), _known_text),
    Field("pod", ((_OUT, "k8s.pod.name"),), _known_text),
    Field("container_id", ((_OUT, "container.id"),), _container_id),
    Field("container_name", ((_OUT, "container.name"),), _known_text),
    Field("host", (("hostname",),), _known_text),
)

_IMAGE_REPOSITORY_KEY: Final = "container.image.repository"
_IMAGE_TAG_KEY: Final = "container.image.tag"
_IMAGE_KEY: Final = "container.image"


def normalize(record: JsonObject, context: NormalizeContext) -> list[Event]:
    """Map one Falco alert to one runtime-alert event.

    The key is the account of the cluster (``cluster_accounts``), else of the host
    (``cluster_accounts``, then the inventory's ``host_accounts``), else
    ``default_account``, else ``unknown`` with no account. The attacker's address
    (``fd.rip``, ``fd.sip``) stays in ``raw``: ``source_ip`` is not set.

    Raises:
        MappingError: ``rule`` or the time is missing, or a mapped field has the wrong type.
    """
    event_id = alert_id(record)
    fields = map_fields(record, EVENT_FIELDS, source=_SOURCE, event_id=event_id)
    workload = _read_workload(record, event_id)
    account = _resolve_account(workload, context)

    return [
        Event(
            source=Source.FALCO,
            kind=EventKind.RUNTIME_ALERT,
            event_id=event_id,
            key=account or UNKNOWN_KEY,
            account=account,
            workload=workload,
            raw=record,
            **fields,
        )
    ]


def alert_id(record: JsonObject) -> str:
    """Return the alert's ``uuid``, else ``falco-`` and the SHA-256 of its canonical JSON.

    The canonical form is the record with sorted keys, so the same alert delivered twice
    gets the same id however its keys were ordered.
    """
    uuid = record.get("uuid")
    if isinstance(uuid, str) and uuid:
        return uuid
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return HASH_ID_PREFIX + hashlib.sha256(canonical).hexdigest()


def _read_workload(record: JsonObject, event_id: str) -> Workload | None:
    fields = map_fields(record, WORKLOAD_FIELDS, source=_SOURCE, event_id=event_id)
    image = _read_image(record)
    if image is not None:
        fields["image"] = image
    return Workload(**fields) if fields else None


def _read_image(record: JsonObject) -> str | None:
    """Return ``repository:tag``, the repository alone, or ``container.image`` as given."""
    output_fields = record.get(_OUT)
    if not isinstance(output_fields, dict):
        return None
    repository = _text_or_none(output_fields.get(_IMAGE_REPOSITORY_KEY))
    tag = _text_or_none(output_fields.get(_IMAGE_TAG_KEY))
    if repository is not None:
        return f"{repository}:{tag}" if tag is not None else repository
    return _text_or_none(output_fields.get(_IMAGE_KEY))


def _text_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or not value or value in _UNKNOWN_VALUES:
        return None
    return value


def _resolve_account(workload: Workload | None, context: NormalizeContext) -> str | None:
    cluster = workload.cluster if workload is not None else None
    host = workload.host if workload is not None else None
    if cluster is not None and cluster in context.cluster_accounts:
        return context.cluster_accounts[cluster]
    return context.account_for_host(host) or context.default_account
