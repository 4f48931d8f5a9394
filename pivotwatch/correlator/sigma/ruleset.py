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
same rules, and a rule's ``eventSource`` test still runs after the look-up. A rule filed
under a single value skips its test of that value when evaluated from its bucket (see
`CompiledRule.indexed_matcher`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from pivotwatch.correlator.sigma.fields import RecordView, field_path
from pivotwatch.correlator.sigma.loader import (
    FIELD_ROOTS,
    INDEX_FIELDS,
    CompiledRule,
    LoadReport,
    bundled_rules_dir,
    index_field,
    load_rule_files,
    load_rule_text,
)
from pivotwatch.correlator.sigma.values import Matcher
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


class _Entry(NamedTuple):
    """One rule as the index returns it: position in load order, test and prepared match."""

    ordinal: int
    test: Matcher
    match: RuleMatch
    rule: CompiledRule


class _SourceIndex:
    """The rules of one source, filed by the exact values their conditions require.

    Each bucket list already contains the fallback rules merged in load order, so a record
    that hits one bucket, the common case, costs one dictionary look-up and no sort.
    Bucket entries carry the rule's `CompiledRule.indexed_matcher`, fallback entries its
    full matcher.
    """

    def __init__(self, source: Source, rules: Iterable[tuple[int, CompiledRule]]) -> None:
        self.paths = tuple(field_path(name) for name in INDEX_FIELDS.get(source, ()))
        self.roots = FIELD_ROOTS.get(source, ())
        buckets: dict[str, dict[str, list[_Entry]]] = {path.name: {} for path in self.paths}
        fallback: list[_Entry] = []
        for ordinal, rule in rules:
            field = index_field(source, rule.required)
            if field is None:
                fallback.append(_Entry(ordinal, rule.matcher, _to_match(rule), rule))
                continue
            entry = _Entry(ordinal, rule.indexed_matcher, _to_match(rule), rule)
            for value in rule.required[field]:
                buckets[field].setdefault(value, []).append(entry)

        self.fallback = tuple(fallback)
        self.buckets = {
            name: {value: _merge([entries, fallback]) for value, entries in bucket.items()}
            for name, bucket in buckets.items()
            if bucket
        }
        self.bucket_paths = tuple(path for path in self.paths if path.name in self.buckets)

    def candidates(self, view: RecordView) -> tuple[_Entry, ...]:
        """Return the rules that can match the record, in load order."""
        hits: list[tuple[_Entry, ...]] = []
        for path in self.bucket_paths:
            bucket = self.buckets[path.name]
            for value in view.folded(path):
                if value is None:
                    continue
                entries = bucket.get(value)
                if entries is not None:
                    hits.append(entries)

        if not hits:
            return self.fallback
        if len(hits) == 1:
            return hits[0]
        return _merge(hits)  # several values or index fields hit: drop repeats, restore order


def _merge(lists: Iterable[Iterable[_Entry]]) -> tuple[_Entry, ...]:
    """Return the entries of several lists once each, in load order."""
    unique = {entry.ordinal: entry for entries in lists for entry in entries}
    return tuple(unique[ordinal] for ordinal in sorted(unique))


class RuleSet:
    """Compiled Sigma rules for CloudTrail, GCP audit and Falco records.

    Evaluation is pure and thread-safe: matching keeps no state between records.
    """

    def __init__(self, rules: Iterable[CompiledRule], rejected: Iterable[RuleError] = ()) -> None:
        self._rules = tuple(rules)
        self.rejected = tuple(rejected)
        """Rules skipped by ``load(..., skip_invalid=True)``."""
        by_source: dict[Source, list[tuple[int, CompiledRule]]] = {}
        for ordinal, rule in enumerate(self._rules):
            by_source.setdefault(rule.source, []).append((ordinal, rule))
        self._indexes = {source: _SourceIndex(source, rules) for source, rules in by_source.items()}

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
        return [entry.rule for entry in index.candidates(RecordView(record, index.roots))]

    def match(self, event: Event) -> list[RuleMatch]:
        """Return the rules that match a normalized event, evaluated on its original record."""
        return self.match_record(event.source, event.raw)

    def match_record(self, source: Source, record: Mapping[str, Any]) -> list[RuleMatch]:
        """Return the rules that match one record of a source, in load order."""
        index = self._indexes.get(source)
        if index is None:
            return []
        view = RecordView(record, index.roots)
        return [entry.match for entry in index.candidates(view) if entry.test(view)]


def _to_match(rule: CompiledRule) -> RuleMatch:
    return RuleMatch(
        rule_id=rule.rule_id,
        title=rule.title,
        level=rule.level,
        techniques=rule.techniques,
        tactics=rule.tactics,
        path=rule.path,
    )
