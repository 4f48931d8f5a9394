"""Load Sigma rule files with pySigma and compile each rule for one pivotwatch source.

Supported log sources:

| Sigma ``logsource``                      | records                   |
|------------------------------------------|---------------------------|
| ``product: aws``, ``service: cloudtrail`` | `Source.CLOUDTRAIL`       |
| ``product: gcp``, ``service: gcp.audit``  | `Source.GCP_AUDIT`        |
| ``product: falco`` (any service)          | `Source.FALCO`            |

A rule for another log source, a correlation or filter rule, a rule without ``id``, a
second rule with an ``id`` already loaded, and a rule that pySigma or the compiler cannot
handle is rejected: the load report lists it as a `RuleError` carrying the file, the rule
id and the reason.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaLogSource, SigmaRule

from pivotwatch.correlator.sigma.attack import parse_attack_tags
from pivotwatch.correlator.sigma.compiler import (
    ConditionNode,
    RequiredValues,
    compile_residual,
    compile_rule,
    parse_condition,
    required_values,
)
from pivotwatch.correlator.sigma.values import Matcher
from pivotwatch.errors import RuleError
from pivotwatch.schemas.event import Source

__all__ = [
    "FIELD_ROOTS",
    "INDEX_FIELDS",
    "RULE_FILE_SUFFIXES",
    "CompiledRule",
    "LoadReport",
    "bundled_rules_dir",
    "index_field",
    "load_rule_files",
    "load_rule_text",
    "resolve_logsource",
]

logger = logging.getLogger(__name__)

RULE_FILE_SUFFIXES = (".yml", ".yaml")

INDEX_FIELDS: dict[Source, tuple[str, ...]] = {
    Source.CLOUDTRAIL: ("eventName", "eventSource"),
    Source.GCP_AUDIT: ("protoPayload.methodName", "protoPayload.serviceName"),
    Source.FALCO: ("rule",),
}
"""Fields that the rule index uses per source, most selective first."""

FIELD_ROOTS: dict[Source, tuple[str, ...]] = {
    Source.FALCO: ("output_fields",),
}
"""Objects searched for a field that is absent at the top of a record."""

DEFAULT_LEVEL = "informational"
"""Level of a rule that sets none (the Sigma specification defines no default)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledRule:
    """One loaded rule, ready to evaluate against records of its source."""

    rule_id: str
    title: str
    level: str
    source: Source
    path: str | None
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    matcher: Matcher
    required: RequiredValues
    """Exact lower-cased values of the index fields that every match needs."""
    indexed_matcher: Matcher
    """`matcher` for records the rule index selected for this rule; see `compile_residual`."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """The rules that loaded and the rules that were rejected, in file order."""

    rules: tuple[CompiledRule, ...]
    rejected: tuple[RuleError, ...]

    def count_by_source(self) -> Counter[Source]:
        """Return how many rules loaded per source."""
        return Counter(rule.source for rule in self.rules)


def bundled_rules_dir() -> Path:
    """Return the folder of the rule pack shipped inside the package.

    NOTE: this assumes the package is installed as files (a wheel or a source checkout),
    not imported from a zip archive.
    """
    return Path(str(importlib.resources.files("pivotwatch").joinpath("rules")))


def load_rule_files(paths: Iterable[Path]) -> LoadReport:
    """Load every rule file named, searching folders recursively for ``.yml``/``.yaml``."""
    rules: list[CompiledRule] = []
    rejected: list[RuleError] = []
    seen_ids: dict[str, str | None] = {}

    for path in _expand_paths(paths, rejected):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            rejected.append(RuleError(f"cannot read the file: {error}", path=str(path)))
            continue
        report = load_rule_text(text, path=path)
        rejected.extend(report.rejected)
        rules.extend(_keep_unique(report.rules, seen_ids, rejected))

    for rejection in rejected:
        logger.warning("rejected Sigma rule: %s", rejection)
    return LoadReport(tuple(rules), tuple(rejected))


def load_rule_text(text: str, *, path: Path | None = None) -> LoadReport:
    """Load the rules of one YAML text (one or more documents)."""
    where = str(path) if path is not None else None
    location = SigmaRuleLocation(path) if path is not None else None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        return LoadReport((), (RuleError(f"invalid Sigma YAML: {error}", path=where),))
    for document in documents:
        if document is not None and not isinstance(document, dict):
            reason = (
                f"a YAML document is a {type(document).__name__}, not a mapping: every "
                "document of a Sigma rule file must be one rule (title, logsource, detection)"
            )
            return LoadReport((), (RuleError(reason, path=where),))
    try:
        collection = SigmaCollection.from_yaml(text, collect_errors=True, source=location)
    except (SigmaError, yaml.YAMLError) as error:
        return LoadReport((), (RuleError(f"invalid Sigma YAML: {error}", path=where),))

    rules: list[CompiledRule] = []
    rejected: list[RuleError] = []
    for item in collection.rules:
        rule_id = str(item.id) if item.id is not None else None
        try:
            rules.append(_compile(item, where))
        except RuleError as error:
            rejected.append(RuleError(error.reason, path=where, rule_id=rule_id))
    rejected.extend(
        RuleError(f"invalid Sigma document: {error}", path=where)
        for error in _collection_level_errors(collection)
    )
    return LoadReport(tuple(rules), tuple(rejected))


def _collection_level_errors(collection: SigmaCollection) -> list[SigmaError]:
    """Return the collection's errors that belong to no single rule.

    Each rule's own errors are reported with that rule.
    """
    per_rule = {id(error) for item in collection.rules for error in item.errors}
    return [error for error in collection.errors if id(error) not in per_rule]


def resolve_logsource(logsource: SigmaLogSource) -> Source:
    """Return the source whose records a rule's ``logsource`` describes.

    Raises `RuleError` for a log source pivotwatch has no records of.
    """
    product = (logsource.product or "").lower()
    service = (logsource.service or "").lower()
    if product == "aws" and service == "cloudtrail":
        return Source.CLOUDTRAIL
    if product == "gcp" and service == "gcp.audit":
        return Source.GCP_AUDIT
    if product == "falco":
        return Source.FALCO
    raise RuleError(
        f"log source (product {logsource.product!r}, service {logsource.service!r}, "
        f"category {logsource.category!r}) is not supported: expected product aws with "
        "service cloudtrail, product gcp with service gcp.audit, or product falco"
    )


def _compile(item: object, path: str | None) -> CompiledRule:
    if not isinstance(item, SigmaRule):
        raise RuleError(f"{type(item).__name__} is not supported: only detection rules are")
    if item.errors:
        reasons = "; ".join(str(error) for error in item.errors)
        raise RuleError(f"invalid Sigma rule: {reasons}")
    if item.id is None:
        raise RuleError(f"rule {item.title!r} has no id: every rule needs a unique id")

    source = resolve_logsource(item.logsource)
    tree = parse_condition(item)
    attack = parse_attack_tags(str(tag) for tag in item.tags)
    required = required_values(tree, frozenset(INDEX_FIELDS.get(source, ())))
    matcher = compile_rule(tree)
    return CompiledRule(
        rule_id=str(item.id),
        title=item.title,
        level=item.level.name.lower() if item.level is not None else DEFAULT_LEVEL,
        source=source,
        path=path,
        techniques=attack.techniques,
        tactics=attack.tactics,
        matcher=matcher,
        required=required,
        indexed_matcher=_compile_indexed(tree, source, required) or matcher,
    )


def index_field(source: Source, required: RequiredValues) -> str | None:
    """Return the index field a rule is filed under: the first of the source's with values."""
    for field in INDEX_FIELDS.get(source, ()):
        if required.get(field):
            return field
    return None


def _compile_indexed(
    tree: ConditionNode, source: Source, required: RequiredValues
) -> Matcher | None:
    """Compile the rule without the index test it passed, or return ``None`` if none is known."""
    field = index_field(source, required)
    if field is None or len(required[field]) != 1:
        return None
    (value,) = required[field]
    return compile_residual(tree, field, value)


def _expand_paths(paths: Iterable[Path], rejected: list[RuleError]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                found
                for found in path.rglob("*")
                if found.suffix in RULE_FILE_SUFFIXES and found.is_file()
            )
        elif path.is_file():
            yield path
        else:
            rejected.append(RuleError("no such file or folder", path=str(path)))


def _keep_unique(
    rules: Iterable[CompiledRule], seen_ids: dict[str, str | None], rejected: list[RuleError]
) -> Iterator[CompiledRule]:
    for rule in rules:
        if rule.rule_id in seen_ids:
            first = seen_ids[rule.rule_id] or "an earlier rule"
            rejected.append(
                RuleError(
                    f"duplicate rule id, already loaded from {first}",
                    path=rule.path,
                    rule_id=rule.rule_id,
                )
            )
            continue
        seen_ids[rule.rule_id] = rule.path
        yield rule
