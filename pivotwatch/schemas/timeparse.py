"""Event-time parsing for every timestamp shape the sources deliver.

Accepted shapes:

- ISO 8601 / RFC 3339 text with 0 to 9 fractional digits and ``Z`` or an offset such as
  ``-07:00`` (CloudTrail ``eventTime``, GCP ``timestamp``, Falco ``time``, Kubernetes
  ``creationTimestamp``, EC2 ``LaunchTime``, GCE ``creationTimestamp``).
- Integer epoch values, as ints or numeric strings: nanoseconds (Falco ``evt.time``),
  microseconds, milliseconds or seconds, distinguished by magnitude (see `_EPOCH_UNITS`).
  A float or decimal string is read as epoch seconds.
- `datetime` objects, as boto3 and other SDKs return them.

``datetime`` stores microseconds, so 7 to 9 fractional digits are truncated (never
rounded) to microseconds: truncation keeps every event inside the second the source
wrote, and two records of one source keep their order unless they differ by less than a
microsecond.

A timestamp without an offset is rejected unless the caller passes ``naive_is_utc=True``,
which a mapping does only where the source documents the field as UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from pivotwatch.errors import MappingError

__all__ = ["parse_event_time"]

_ISO_PATTERN: Final = re.compile(
    r"""
    (?P<date>\d{4}-\d{2}-\d{2})
    [Tt\ ]
    (?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})
    (?:[.,](?P<fraction>\d{1,9}))?
    (?P<offset>[Zz]|[+-]\d{2}:?\d{2})?
    """,
    re.VERBOSE,
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# Epoch units by magnitude: (exclusive upper bound of the absolute value, microseconds
# per unit as multiplier and divisor). 1e11 seconds is the year 5138 and 1e11
# milliseconds is 1973-03-03, so the ranges do not overlap for any date after 1973.
_EPOCH_UNITS: Final[tuple[tuple[int, int, int], ...]] = (
    (10**11, 1_000_000, 1),  # seconds
    (10**14, 1_000, 1),  # milliseconds
    (10**17, 1, 1),  # microseconds
    (10**20, 1, 1_000),  # nanoseconds
)

_VALUE_PREVIEW_CHARS: Final = 80


def parse_event_time(value: Any, *, naive_is_utc: bool = False) -> datetime:
    """Parse a source timestamp into an aware UTC datetime.

    Raises:
        MappingError: the value is of no accepted shape, is out of range, or has no
            offset while ``naive_is_utc`` is false. The message quotes the value.
    """
    if isinstance(value, datetime):
        return _to_utc(value, value, naive_is_utc=naive_is_utc)
    if isinstance(value, bool):
        raise _invalid(value, "a timestamp, not a boolean")
    if isinstance(value, int):
        return _from_epoch_integer(value, value)
    if isinstance(value, float):
        return _from_epoch_seconds(value, value)
    if isinstance(value, str):
        return _parse_text(value, naive_is_utc=naive_is_utc)
    raise _invalid(value, "an RFC 3339 string or an integer epoch value")


def _parse_text(text: str, *, naive_is_utc: bool) -> datetime:
    stripped = text.strip()
    if _is_integer_text(stripped):
        return _from_epoch_integer(int(stripped), text)
    if _is_decimal_text(stripped):
        return _from_epoch_seconds(float(stripped), text)

    match = _ISO_PATTERN.fullmatch(stripped)
    if match is None:
        raise _invalid(text, "an RFC 3339 timestamp such as 2024-05-07T18:54:19.341081180Z")

    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    try:
        parsed = datetime.fromisoformat(
            f"{match['date']}T{match['hour']}:{match['minute']}:{match['second']}.{fraction}"
        )
    except ValueError as error:
        raise _invalid(text, f"a valid calendar date and time ({error})") from None

    offset = match["offset"]
    if offset is not None:
        try:
            parsed = parsed.replace(tzinfo=_parse_offset(offset))
        except ValueError:
            raise _invalid(text, "a UTC offset between -23:59 and +23:59") from None
    return _to_utc(parsed, text, naive_is_utc=naive_is_utc)


def _parse_offset(offset: str) -> timezone:
    if offset in ("Z", "z"):
        return UTC
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _to_utc(parsed: datetime, original: Any, *, naive_is_utc: bool) -> datetime:
    if parsed.tzinfo is None:
        if not naive_is_utc:
            raise _invalid(original, "a timestamp with Z or a UTC offset")
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _from_epoch_integer(number: int, original: Any) -> datetime:
    for bound, multiplier, divisor in _EPOCH_UNITS:
        if abs(number) < bound:
            # Integer arithmetic keeps nanoseconds exact down to the truncated microsecond.
            microseconds = number * multiplier // divisor
            return _add_to_epoch(timedelta(microseconds=microseconds), original)
    raise _invalid(original, "an epoch value of at most nanosecond precision")


def _from_epoch_seconds(seconds: float, original: Any) -> datetime:
    if not math.isfinite(seconds) or abs(seconds) >= _EPOCH_UNITS[0][0]:
        raise _invalid(original, "epoch seconds between 1970 and the year 5138")
    return _add_to_epoch(timedelta(seconds=seconds), original)


def _add_to_epoch(delta: timedelta, original: Any) -> datetime:
    try:
        return _EPOCH + delta
    except OverflowError:
        raise _invalid(original, "a time between the years 1 and 9999") from None


def _is_integer_text(text: str) -> bool:
    digits = text[1:] if text[:1] in ("-", "+") else text
    return digits.isascii() and digits.isdigit()


def _is_decimal_text(text: str) -> bool:
    whole, dot, fraction = text.partition(".")
    return bool(dot) and _is_integer_text(whole) and fraction.isascii() and fraction.isdigit()


def _invalid(value: Any, expected: str) -> MappingError:
    shown = repr(value)
    if len(shown) > _VALUE_PREVIEW_CHARS:
        shown = shown[:_VALUE_PREVIEW_CHARS] + "..."
    return MappingError(f"invalid event time {shown}: expected {expected}")
