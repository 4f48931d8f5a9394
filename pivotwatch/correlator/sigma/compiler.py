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
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
)

from pivotwatch.correlator.sigma.fields import RecordView
from pivotwatch.correlator.sigma.values import (
    Matcher,
    compile_field_value,
    compile_keyword,
    plain_string,
)
from pivotwatch.errors import RuleError

__all__ = [
    "ConditionNode",
    "compile_residual",
    "compile_rule",
    "estimate_cost",
    "parse_condition",
    "required_values",
]

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
    """Compile a condition tree into a test on one record.

    Nested ANDs and ORs are flattened, and the operands of an AND or OR are tested in
    order of estimated cost, cheapest first. The order changes no result because the
    tests are pure.
    """
    if isinstance(tree, ConditionAND):
        return _compile_and(_compile_args(_flatten(tree, ConditionAND)))
    if isinstance(tree, ConditionOR):
        return _compile_or(_compile_args(_flatten(tree, ConditionOR)))
    if isinstance(tree, ConditionNOT):
        negated = compile_rule(_single_arg(tree))
        return lambda view: not negated(view)
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        return compile_field_value(tree.field, tree.value)
    if isinstance(tree, ConditionValueExpression):
        return compile_keyword(tree.value)
    raise RuleError(f"condition element {type(tree).__name__} is not supported")


def compile_residual(tree: ConditionNode, field: str, value: str) -> Matcher:
    """Compile the tree without its top-level AND operands that test ``field: value`` exactly.

    The rule index evaluates a rule filed under the single value ``value`` of ``field``
    only for records whose ``field`` contains it, so such an operand is true for every record
    the result is called on. ``value`` is lower-cased, as in `required_values`. The result
    must not be used on records that the index did not select.
    """
    operands = _flatten(tree, ConditionAND) if isinstance(tree, ConditionAND) else [tree]
    kept = [operand for operand in operands if not _tests_exact(operand, field, value)]
    if not kept:
        return _match_every
    return _compile_and(_compile_args(kept))


def _tests_exact(node: ConditionNode, field: str, value: str) -> bool:
    if not isinstance(node, ConditionFieldEqualsValueExpression) or node.field != field:
        return False
    text = plain_string(node.value)
    return text is not None and text.lower() == value


def _match_every(view: RecordView) -> bool:
    return True


def _flatten(tree: ConditionAND | ConditionOR, kind: type[ConditionItem]) -> list[ConditionNode]:
    """Return the operands of an AND (or OR), with those of nested ANDs (or ORs) lifted up."""
    operands: list[ConditionNode] = []
    for arg in tree.args:
        if arg is None:
            continue
        if type(arg) is kind:
            operands.extend(_flatten(arg, kind))  # type: ignore[arg-type]
        else:
            operands.append(arg)
    return operands


def _compile_args(args: Sequence[ConditionNode]) -> tuple[Matcher, ...]:
    if not args:
        raise RuleError("an AND or OR in the condition has no operands")
    ordered = sorted(args, key=estimate_cost)
    return tuple(compile_rule(arg) for arg in ordered)


_LEAF_COSTS: dict[type[SigmaType], int] = {
    SigmaNull: 1,
    SigmaExists: 1,
    SigmaBool: 2,
    SigmaNumber: 2,
    SigmaString: 2,
    SigmaCasedString: 3,
    SigmaCompareExpression: 3,
    SigmaFieldReference: 4,
    SigmaCIDRExpression: 6,
    SigmaRegularExpression: 8,
}
"""Rough relative cost of testing one field value of each type, for ordering operands."""

_KEYWORD_COST = 50
"""A keyword is searched in every value of the record, far more than any field test."""


def estimate_cost(node: ConditionNode) -> int:
    """Return a rough relative cost of evaluating a condition node on one record.

    An exact string costs less than a wildcard one, and regular expressions, networks
    and keywords cost the most. The figures only order the operands of an AND or OR.
    """
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _value_cost(node.value)
    if isinstance(node, ConditionValueExpression):
        return _KEYWORD_COST
    if isinstance(node, ConditionAND | ConditionOR | ConditionNOT):
        return sum(estimate_cost(arg) for arg in node.args if arg is not None)
    return _KEYWORD_COST


def _value_cost(value: SigmaType) -> int:
    if isinstance(value, SigmaExpansion):
        return sum(_value_cost(item) for item in value.values)
    if type(value) is SigmaString and plain_string(value) is None:
        return _LEAF_COSTS[SigmaString] + 1
    return _LEAF_COSTS.get(type(value), _LEAF_COSTS[SigmaRegularExpression])


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
