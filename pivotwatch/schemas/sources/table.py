"""Mapping tables: rows of (normalized field, source paths, converter), and the walker.

A source module describes its mapping as a tuple of `Field` rows. `map_fields` walks
the rows over one record: for each row it tries the paths in order and keeps the first
value that is present and that the converter accepts. A converter returns None to mean
"not usable here, try the next path" (an address field that contains a service name), and
raises ValueError or TypeError for a value of the wrong type, which becomes a
`MappingError` naming the path and the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any, Final

from pivotwatch.errors import MappingError
from pivotwatch.schemas.timeparse import parse_event_time

__all__ = [
    "Converter",
    "Field",
    "JsonObject",
    "Path",
    "as_bool",
    "as_documented_utc_time",
    "as_ip",
    "as_text",
    "as_text_tuple",
    "as_utc_time",
    "first_text",
    "lookup",
    "map_fields",
    "show_path",
    "show_value",
]

JsonObject = dict[str, Any]
Path = tuple[str, ...]
"""Keys from the record's top level down; Falco's ``k8s.ns.name`` is one key, not three."""
Converter = Callable[[Any], Any]

_VALUE_PREVIEW_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class Field:
    """One row of a mapping table: a normalized field and the source paths that fill it."""

    target: str
    paths: tuple[Path, ...]
    convert: Converter
    required: bool = False


def lookup(record: Mapping[str, Any], path: Path) -> Any:
    """Return the value at ``path``, or None where a key or list index is missing.

    A step of digits indexes a list (``("NetworkInterfaces", "0", "OwnerId")``) and is an
    ordinary key in an object.
    """
    value: Any = record
    for key in path:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def map_fields(
    record: Mapping[str, Any],
    table: tuple[Field, ...],
    *,
    source: str,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Walk ``table`` over ``record`` and return the normalized fields that have a value.

    Raises:
        MappingError: a required field has no usable value, or a value has the wrong
            type. ``event_id`` is attached to the error.
    """
    mapped: dict[str, Any] = {}
    for field in table:
        value = _first_converted(record, field, source=source, event_id=event_id)
        if value is not None:
            mapped[field.target] = value
        elif field.required:
            raise MappingError(
                f"{source} record {_describe_id(event_id)}has no {field.target}: expected a "
                f"value at {' or '.join(show_path(path) for path in field.paths)}",
                event_id=event_id,
            )
    return mapped


def first_text(record: Mapping[str, Any], paths: tuple[Path, ...]) -> str | None:
    """Return the first non-empty string at ``paths``, passing over values of other types."""
    for path in paths:
        value = lookup(record, path)
        if isinstance(value, str) and value:
            return value
    return None


def _first_converted(
    record: Mapping[str, Any], field: Field, *, source: str, event_id: str | None
) -> Any:
    for path in field.paths:
        value = lookup(record, path)
        if _is_absent(value):
            continue
        try:
            converted = field.convert(value)
        except (TypeError, ValueError) as error:
            raise MappingError(
                f"{source} record {_describe_id(event_id)}has an invalid {show_path(path)} "
                f"{show_value(value)}: {error}",
                event_id=event_id,
            ) from None
        except MappingError as error:
            raise MappingError(
                f"{source} record {_describe_id(event_id)}has an invalid {show_path(path)}: "
                f"{error.reason}",
                event_id=event_id,
            ) from None
        if converted is not None:
            return converted
    return None


def _is_absent(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _describe_id(event_id: str | None) -> str:
    return f"{event_id!r} " if event_id else ""


def show_path(path: Path) -> str:
    """Render a path for messages: dotted, with keys that contain dots in brackets."""
    parts = [f"[{key!r}]" if "." in key else key for key in path]
    return ".".join(parts).replace(".[", "[")


def show_value(value: Any) -> str:
    """Render a value for messages, truncated to a readable length."""
    shown = repr(value)
    if len(shown) > _VALUE_PREVIEW_CHARS:
        shown = shown[:_VALUE_PREVIEW_CHARS] + "..."
    return shown


# -- converters ----------------------------------------------------------------------------


def as_text(value: Any) -> str:
    """Accept a string only: a number where the source documents a string is invalid."""
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def as_bool(value: Any) -> bool:
    """Accept a JSON boolean, or the strings ``true`` / ``false`` that some shippers write."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def as_ip(value: Any) -> str | None:
    """Accept an IPv4 or IPv6 address; return None for anything else.

    CloudTrail ``sourceIPAddress`` contains a service name (``ec2.amazonaws.com``,
    ``AWS Internal``) for calls that a service made, and GCP ``callerIp`` can be
    ``private`` or ``gce-internal-ip``. Those are not addresses, so the normalized
    ``source_ip`` stays empty and the original value stays in ``raw``.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected an IP address string, got {type(value).__name__}")
    try:
        return str(ip_address(value))
    except ValueError:
        return None


def as_text_tuple(value: Any) -> tuple[str, ...]:
    """Accept a list of strings; null items are dropped."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    if not all(isinstance(item, str) or item is None for item in value):
        raise TypeError("expected a list of strings, found an item of another type")
    return tuple(item for item in value if item is not None)


def as_utc_time(value: Any) -> datetime:
    """Parse an RFC 3339 timestamp or epoch value that carries its own offset."""
    return parse_event_time(value)


def as_documented_utc_time(value: Any) -> datetime:
    """Parse a timestamp of a field documented as UTC, so a missing offset means UTC."""
    return parse_event_time(value, naive_is_utc=True)
