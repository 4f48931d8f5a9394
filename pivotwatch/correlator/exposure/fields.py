"""Readers for the loosely typed parts of raw CloudTrail and GCP audit records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pivotwatch.schemas.event import Event

__all__ = ["as_mapping", "iter_items", "principal_id", "request_parameters", "text_values"]


def as_mapping(value: Any) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, else an empty mapping."""
    return value if isinstance(value, Mapping) else {}


def iter_items(value: Any) -> Iterator[Mapping[str, Any]]:
    """Yield the objects of a list in any of the shapes CloudTrail writes.

    EC2 records wrap lists as ``{"items": [...]}``, S3 records use plain lists, and a
    list of one element is sometimes written as the element itself.
    """
    if isinstance(value, Mapping):
        if "items" in value:
            yield from iter_items(value["items"])
        else:
            yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield item


def text_values(value: Any) -> list[str]:
    """Return a string, or the strings of a list, as a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def request_parameters(event: Event) -> Mapping[str, Any]:
    """Return CloudTrail ``requestParameters``, which is null in many records."""
    return as_mapping(event.raw.get("requestParameters"))


def principal_id(event: Event) -> str | None:
    """Return the id of the identity that made the call, when the event names one."""
    return event.principal.id if event.principal is not None else None
