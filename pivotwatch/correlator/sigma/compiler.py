"""Compile a parsed Sigma rule into one record test, and find the values it requires.

pySigma parses the rule and resolves its condition (``1 of selection_*``, ``all of
them``, ``not filter``) into a tree of AND, OR and NOT nodes whose leaves are
``field: value`` and keyword expressions. This module turns that tree into nested
closures once, at load time, and reads from it the exact field values a record must
have to match, which the rule index uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from pivotwatch.correlator.sigma.fields import RecordView
from pivotwatch.correlator.sigma.values import (
    Matcher,
    compile_field_value,
    compile_keyword,
    plain_string,
)
from pivotwatch.errors import RuleError

__all__ = ["ConditionNode", "compile_rule", "parse_condition", "required_values"]

ConditionNode = ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression
"""A node of pySigma's resolved condition tree."""

RequiredValues = dict[str, frozenset[str]]
"""Field name to the lower-cased exact values of which the field must hold one."""


def parse_condition(rule: SigmaRule) -> ConditionNode:
    """Return the rule's resolved condition tree; several conditions are OR-ed.

    Raises `RuleError` when pySigma cannot resolve a condition or a condition is empty.
    """
    trees: list[ConditionNode] = []
    for condition in rule.detection.parsed_condition:
        try:
            tree = condition.parsed
        except SigmaError as error:
            raise RuleError(f"invalid condition {condition.condition!r}: {error}") from error
        if tree is None:
            raise RuleError(f"condition {condition.condition!r} selects no detection item")
        trees.append(tree)
    if len(trees) == 1:
        return trees[0]
    return ConditionOR(list(trees))


def compile_rule(tree: ConditionNode) -> Matcher:
    """Compile a condition tree into a test on one record."""
    if isinstance(tree, ConditionAND):
        return _compile_and(_compile_args(tree.args))
    if isinstance(tree, ConditionOR):
        return _compile_or(_compile_args(tree.args))
    if isinstance(tree, ConditionNOT):
        negated = compile_rule(_single_arg(tree))
        return lambda view: not negated(view)
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        return compile_field_value(tree.field, tree.value)
    if isinstance(tree, ConditionValueExpression):
        return compile_keyword(tree.value)
    raise RuleError(f"condition element {type(tree).__name__} is not supported")


def _compile_args(args: Sequence[ConditionNode | None]) -> tuple[Matcher, ...]:
    compiled = [compile_rule(arg) for arg in args if arg is not None]
    if not compiled:
        raise RuleError("an AND or OR in the condition has no operands")
    return tuple(compiled)


def _single_arg(tree: ConditionNOT) -> ConditionNode:
    operands = [arg for arg in tree.args if arg is not None]
    if len(operands) != 1:
        raise RuleError(f"NOT expects one operand, the condition has {len(operands)}")
    return operands[0]


# Plain loops instead of all()/any() over a generator: these run for every candidate rule
# of every record, and a loop avoids creating a generator per call.


def _compile_and(tests: tuple[Matcher, ...]) -> Matcher:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda view: first(view) and second(view)

    def match_all(view: RecordView) -> bool:
        for test in tests:  # noqa: SIM110
            if not test(view):
                return False
        return True

    return match_all


def _compile_or(tests: tuple[Matcher, ...]) -> Matcher:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda view: first(view) or second(view)

    def match_any(view: RecordView) -> bool:
        for test in tests:  # noqa: SIM110
            if test(view):
                return True
        return False

    return match_any


def required_values(tree: ConditionNode, fields: frozenset[str]) -> RequiredValues:
    """Return, for the given fields, the exact values a record must have to match.

    A field is in the result only if every match of the rule needs one of the listed
    case-insensitive values in it: an equality leaf, an AND with such a leaf, or an OR
    whose branches all constrain the field. NOT and pattern values constrain nothing.
    """
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        text = plain_string(tree.value)
        if tree.field in fields and text is not None:
            return {tree.field: frozenset({text.lower()})}
        return {}
    if isinstance(tree, ConditionAND):
        merged: RequiredValues = {}
        for arg in tree.args:
            if arg is None:
                continue
            for field, values in required_values(arg, fields).items():
                merged[field] = merged[field] & values if field in merged else values
        return merged
    if isinstance(tree, ConditionOR):
        branches = [required_values(arg, fields) for arg in tree.args if arg is not None]
        if not branches:
            return {}
        common = set(branches[0]).intersection(*branches[1:])
        return {field: frozenset().union(*(b[field] for b in branches)) for field in common}
    return {}
