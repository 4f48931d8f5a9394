"""The loaded rule set: single-record detection with an index over discriminating fields.

Each source has its index fields (CloudTrail ``eventName`` then ``eventSource``, GCP
``protoPayload.methodName`` then ``protoPayload.serviceName``, Falco ``rule``). A rule
whose condition requires one of a few exact values of such a field is filed under those
values of the first such field, and is evaluated only for records that hold one of them.
The other rules sit in a fallback list evaluated for every record of the source. The cost
per record therefore grows with the rules that share its ``eventName`` (or method or Falco
rule) and with the fallback list, not with the whole rule set.

CloudTrail rules are filed by ``eventName`` rather than the pair ``eventSource`` and
``eventName``: an event name belongs to one service in practice, so the pair selects the
same rules, and a rule's ``eventSource`` test still runs after the look-up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from pivotwatch.correlator.sigma.fields import FieldPath, RecordView
from pivotwatch.correlator.sigma.loader import (
    FIELD_ROOTS,
    INDEX_FIELDS,
    CompiledRule,
    LoadReport,
    bundled_rules_dir,
    load_rule_files,
    load_rule_text,
)
from pivotwatch.errors import RuleError
from pivotwatch.schemas.event import Event, Source

__all__ = ["RuleMatch", "RuleSet"]

logger = logging.getLogger(__name__)


class RuleMatch(msgspec.Struct, frozen=True, kw_only=True):
    """One rule that matched one record.

    ``tactics`` are ATT&CK tactic short names in ATT&CK matrix order, from the rule's
    tactic tags or, where it has none, from its techniques.
    """

    rule_id: str
    title: str
    level: str
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    path: str | None


class _SourceIndex:
    """The rules of one source, filed by the exact values their conditions require."""

    def __init__(self, source: Source) -> None:
        self.paths = tuple(FieldPath(name) for name in INDEX_FIELDS.get(source, ()))
        self.roots = FIELD_ROOTS.get(source, ())
        self.buckets: dict[str, dict[str, list[tuple[int, CompiledRule]]]] = {
            path.name: {} for path in self.paths
        }
        self.fallback: list[tuple[int, CompiledRule]] = []

    def add(self, ordinal: int, rule: CompiledRule) -> None:
        for path in self.paths:
            values = rule.required.get(path.name)
            if values:
                bucket = self.buckets[path.name]
                for value in values:
                    bucket.setdefault(value, []).append((ordinal, rule))
                return
        self.fallback.append((ordinal, rule))

    def candidates(self, view: RecordView) -> list[tuple[int, CompiledRule]]:
        """Return the rules that can match the record, in load order."""
        found = list(self.fallback)
        for path in self.paths:
            bucket = self.buckets[path.name]
            if not bucket:
                continue
            for value in set(view.folded(path)):
                if value is not None:
                    found.extend(bucket.get(value, ()))
        found.sort(key=_ordinal)
        return found


def _ordinal(entry: tuple[int, CompiledRule]) -> int:
    return entry[0]


class RuleSet:
    """Compiled Sigma rules for CloudTrail, GCP audit and Falco records.

    Evaluation is pure and thread-safe: matching keeps no state between records.
    """

    def __init__(self, rules: Iterable[CompiledRule], rejected: Iterable[RuleError] = ()) -> None:
        self._rules = tuple(rules)
        self.rejected = tuple(rejected)
        """Rules skipped by ``load(..., skip_invalid=True)``."""
        self._indexes: dict[Source, _SourceIndex] = {}
        for ordinal, rule in enumerate(self._rules):
            index = self._indexes.get(rule.source)
            if index is None:
                index = self._indexes[rule.source] = _SourceIndex(rule.source)
            index.add(ordinal, rule)

    @classmethod
    def load(
        cls, paths: Iterable[Path] = (), *, bundled: bool = True, skip_invalid: bool = False
    ) -> RuleSet:
        """Load the bundled rule pack (unless ``bundled`` is false) and the given files or folders.

        Raises `RuleError` for the first rejected rule, after logging every rejected one.
        With ``skip_invalid`` the rejected rules are logged, counted in one warning and
        kept in `rejected`, and the others are used.
        """
        sources = [bundled_rules_dir(), *paths] if bundled else list(paths)
        return cls._from_report(load_rule_files(sources), skip_invalid=skip_invalid)

    @classmethod
    def from_yaml(cls, text: str, *, skip_invalid: bool = False) -> RuleSet:
        """Load the rules of one YAML text; for tests and one-off rules."""
        return cls._from_report(load_rule_text(text), skip_invalid=skip_invalid)

    @classmethod
    def _from_report(cls, report: LoadReport, *, skip_invalid: bool) -> RuleSet:
        if report.rejected and not skip_invalid:
            first = report.rejected[0]
            if len(report.rejected) > 1:
                raise RuleError(
                    f"{first.reason} (and {len(report.rejected) - 1} more rejected rules)",
                    path=first.path,
                    rule_id=first.rule_id,
                )
            raise first
        if report.rejected:
            logger.warning(
                "skipped %d rejected Sigma rules, loaded %d",
                len(report.rejected),
                len(report.rules),
            )
        return cls(report.rules, report.rejected)

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def rules(self) -> tuple[CompiledRule, ...]:
        """The loaded rules in load order."""
        return self._rules

    def candidates(self, source: Source, record: Mapping[str, Any]) -> list[CompiledRule]:
        """Return the rules the index selects for a record: the ones `match_record` evaluates."""
        index = self._indexes.get(source)
        if index is None:
            return []
        return [rule for _, rule in index.candidates(RecordView(record, index.roots))]

    def match(self, event: Event) -> list[RuleMatch]:
        """Return the rules that match a normalized event, evaluated on its original record."""
        return self.match_record(event.source, event.raw)

    def match_record(self, source: Source, record: Mapping[str, Any]) -> list[RuleMatch]:
        """Return the rules that match one record of a source, in load order."""
        index = self._indexes.get(source)
        if index is None:
            return []
        view = RecordView(record, index.roots)
        return [_to_match(rule) for _, rule in index.candidates(view) if rule.matcher(view)]


def _to_match(rule: CompiledRule) -> RuleMatch:
    return RuleMatch(
        rule_id=rule.rule_id,
        title=rule.title,
        level=rule.level,
        techniques=rule.techniques,
        tactics=rule.tactics,
        path=rule.path,
    )
