"""Field look-up in source records: Sigma field names are dotted paths into the JSON.

Resolution order for a field name such as ``output_fields.k8s.ns.name``, at each JSON
object on the way down:

1. the rest of the name as one exact key (Falco's ``output_fields`` keys contain dots:
   ``k8s.ns.name``, ``proc.aname[2]``);
2. otherwise the shortest key prefix that exists, descending into its value
   (``requestParameters`` then ``bucketName``), then longer prefixes.

The first alternative that finds the field wins. A JSON array on the way is walked
element by element, and an array at the end contributes its elements, so a rule value
matches a list if it matches any element. For Falco records a name that is not found at
the top level is looked up again under ``output_fields``, so a rule may write
``k8s.ns.name`` or ``output_fields.k8s.ns.name``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["FieldPath", "RecordView", "field_path", "to_text"]


_ABSENT: list[Any] = []
_NEED_FULL_WALK: list[Any] = []


class FieldPath:
    """A dotted field name, split once when the rule is compiled."""

    __slots__ = ("_joined", "_single", "name", "parts")

    def __init__(self, name: str) -> None:
        self.name = name
        self.parts = tuple(name.split("."))
        self._single = len(self.parts) == 1
        count = len(self.parts)
        # _joined[start][end] is ".".join(parts[start:end]), precomputed for the look-ups.
        self._joined = [
            {end: ".".join(self.parts[start:end]) for end in range(start + 1, count + 1)}
            for start in range(count)
        ]

    def resolve(self, record: Mapping[str, Any], roots: tuple[str, ...] = ()) -> list[Any]:
        """Return the field's values in the record: empty when absent, ``[None]`` for JSON null.

        ``roots`` names top-level objects to search when the field is absent at the top.
        """
        if self._single:
            # Fast path for the most common name shape: one key at the top of the record.
            value = record.get(self.name, _ABSENT)
            if value is not _ABSENT:
                return _leaf_values(value)
        else:
            values = self._resolve_in(record)
            if values is not _ABSENT:
                return values
        for root in roots:
            nested = record.get(root)
            if isinstance(nested, dict):
                values = self._resolve_in(nested)
                if values is not _ABSENT:
                    return values
        return []

    def _resolve_in(self, node: Mapping[str, Any]) -> list[Any]:
        """Return the field's values under one object, or `_ABSENT`."""
        if self._single:
            value = node.get(self.name, _ABSENT)
            return _ABSENT if value is _ABSENT else _leaf_values(value)

        values = self._resolve_plain(node)
        if values is _NEED_FULL_WALK:
            values = []
            if not self._collect(node, 0, values):
                return _ABSENT
        return values

    def _resolve_plain(self, record: Mapping[str, Any]) -> list[Any]:
        """Follow the name through nested objects only, the common case.

        Applies the same order as `_collect` (the exact rest of the name first, then the
        next name part). Returns `_ABSENT` when the field is certainly missing, and
        `_NEED_FULL_WALK` when an array or a longer dotted key may still hold it.
        """
        node: Any = record
        count = len(self.parts)
        for start in range(count):
            if not isinstance(node, dict):
                return _NEED_FULL_WALK
            rest = self._joined[start][count]
            if rest in node:
                node = node[rest]
                break
            part = self.parts[start]
            if part not in node:
                # Only a longer key prefix could still match, and there is none for the last part.
                return _ABSENT if start == count - 1 else _NEED_FULL_WALK
            node = node[part]
        out: list[Any] = []
        _append_leaf(node, out)
        return out

    def _collect(self, node: Any, start: int, out: list[Any]) -> bool:
        if start == len(self.parts):
            _append_leaf(node, out)
            return True
        if isinstance(node, list):
            found = False
            for element in node:
                found = self._collect(element, start, out) or found
            return found
        if not isinstance(node, dict):
            return False

        joined = self._joined[start]
        rest = joined[len(self.parts)]
        if rest in node:
            _append_leaf(node[rest], out)
            return True
        for end in range(start + 1, len(self.parts)):
            key = joined[end]
            if key in node and self._collect(node[key], end, out):
                return True
        return False


@functools.lru_cache(maxsize=8192)
def field_path(name: str) -> FieldPath:
    """Return the shared `FieldPath` for a name.

    Rules that test the same field share one object, so a rule set of thousands of rules
    keeps few of them in memory and the per-record caches look up one key object.
    """
    return FieldPath(name)


def _leaf_values(value: Any) -> list[Any]:
    if isinstance(value, list):
        out: list[Any] = []
        _append_leaf(value, out)
        return out
    return [value]


def _append_leaf(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for element in value:
            _append_leaf(element, out)
    else:
        out.append(value)


def to_text(value: Any) -> str | None:
    """Return the string a Sigma string value is compared with, ``None`` for JSON null.

    Numbers and booleans compare in their JSON spelling (``443``, ``false``), and an
    object compares as its compact JSON text, so ``requestParameters|contains: Suspended``
    searches the whole object as the raw record would show it.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RecordView:
    """One record being matched, with per-field caches shared by every rule.

    Many rules test the same fields (``eventName``, ``errorCode``), so each field is
    resolved, converted to text and lower-cased once per record.
    """

    __slots__ = ("_folded", "_keyword_texts", "_texts", "_values", "record", "roots")

    def __init__(self, record: Mapping[str, Any], roots: tuple[str, ...] = ()) -> None:
        self.record = record
        self.roots = roots
        self._values: dict[str, list[Any]] = {}
        self._texts: dict[str, list[str | None]] = {}
        self._folded: dict[str, list[str | None]] = {}
        self._keyword_texts: list[str] | None = None

    def values(self, path: FieldPath) -> list[Any]:
        """Return the field's raw JSON values."""
        cached = self._values.get(path.name)
        if cached is None:
            cached = path.resolve(self.record, self.roots)
            self._values[path.name] = cached
        return cached

    def texts(self, path: FieldPath) -> list[str | None]:
        """Return the field's values as text (see `to_text`)."""
        cached = self._texts.get(path.name)
        if cached is None:
            cached = [to_text(value) for value in self.values(path)]
            self._texts[path.name] = cached
        return cached

    def folded(self, path: FieldPath) -> list[str | None]:
        """Return the field's values as lower-cased text, for case-insensitive matching."""
        cached = self._folded.get(path.name)
        if cached is None:
            cached = self._fold_values(path)
        return cached

    def _fold_values(self, path: FieldPath) -> list[str | None]:
        values = self._values.get(path.name)
        if values is None:
            values = self._values[path.name] = path.resolve(self.record, self.roots)
        if len(values) == 1:
            value = values[0]
            folded = [value.lower() if type(value) is str else _fold(value)]
        else:
            folded = [_fold(value) for value in values]
        self._folded[path.name] = folded
        return folded

    def keyword_texts(self) -> list[str]:
        """Return every scalar value in the record as lower-cased text, for keyword rules."""
        if self._keyword_texts is None:
            found: list[str] = []
            _collect_scalars(self.record, found)
            self._keyword_texts = found
        return self._keyword_texts


def _fold(value: Any) -> str | None:
    if isinstance(value, str):
        return value.lower()
    text = to_text(value)
    return None if text is None else text.lower()


def _collect_scalars(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for value in node.values():
            _collect_scalars(value, out)
    elif isinstance(node, list):
        for element in node:
            _collect_scalars(element, out)
    else:
        text = to_text(node)
        if text is not None:
            out.append(text.lower())
