"""Compile one Sigma value (a pySigma `SigmaType`) into a test on a record field.

Matching follows the Sigma specification as pySigma models it:

- a plain string matches the whole value case-insensitively, ``*`` and ``?`` are
  wildcards (pySigma has already applied ``contains``, ``startswith``, ``endswith``,
  ``base64``, ``base64offset`` and ``windash``); ``|cased`` makes it case-sensitive;
- a number matches a JSON number or a numeric string of equal value; a boolean matches a
  JSON boolean or the string ``true``/``false``; numbers and booleans matched by a string
  value compare in their JSON spelling;
- ``null`` matches an absent field or JSON null; ``|exists`` tests for a non-null value;
- ``|re`` searches the text (unanchored, like ``re.search``), with the ``i``, ``m`` and
  ``s`` flags; ``|cidr`` tests IP addresses, and a network value matches when it lies
  inside the rule's network;
- ``|gt`` ``|gte`` ``|lt`` ``|lte`` compare numbers, and numeric strings as numbers;
- ``|fieldref`` compares with the values of another field of the same record,
  case-insensitively, with ``startswith``/``endswith``/``contains`` if given.

A field with several values (a JSON array) matches if any value matches. A value the
engine cannot evaluate raises `RuleError` when the rule is compiled, never at match time.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import operator
import re
from collections.abc import Callable
from typing import Any

import re2
from sigma.types import (
    CompareOperators,
    Placeholder,
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
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from pivotwatch.correlator.sigma.fields import RecordView, field_path
from pivotwatch.errors import RuleError

__all__ = ["Matcher", "TextTest", "compile_field_value", "compile_keyword", "plain_string"]

Matcher = Callable[[RecordView], bool]
"""A compiled test on one record."""

TextTest = Callable[[str], bool]
"""A compiled test on one text value (already lower-cased unless the test is cased)."""

_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}

_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def compile_field_value(field: str, value: SigmaType) -> Matcher:
    """Compile ``field: value`` into a record test; raise `RuleError` if it cannot be evaluated.

    Equal leaves of different rules (``errorCode|exists: true`` in hundreds of rules)
    compile to one shared test, which keeps a large rule set compact in memory.
    """
    if isinstance(value, SigmaExpansion):
        alternatives = tuple(compile_field_value(field, item) for item in value.values)
        return lambda view: any(test(view) for test in alternatives)
    if isinstance(value, SigmaString):
        return _compile_string_field(field, value)
    if isinstance(value, SigmaTimestampPart):
        raise RuleError(f"the timestamp modifier on field {field!r} is not supported")
    if isinstance(value, SigmaNumber):
        return _number_field_test(field, value.number)
    if isinstance(value, SigmaBool):
        return _bool_field_test(field, value.boolean)
    if isinstance(value, SigmaNull):
        return _null_field_test(field)
    if isinstance(value, SigmaExists):
        return _exists_field_test(field, value.exists)
    if isinstance(value, SigmaRegularExpression):
        return _compile_regex_field(field, value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_field_test(field, value.network)
    if isinstance(value, SigmaCompareExpression):
        return _compare_field_test(field, value.op, value.number.number)
    if isinstance(value, SigmaFieldReference):
        return _fieldref_test(field, value.field, value.starts_with, value.ends_with)
    raise RuleError(f"value {value!r} of field {field!r} has a type the engine cannot evaluate")


def compile_keyword(value: SigmaType) -> Matcher:
    """Compile a keyword (field-less) value: it is searched in every scalar of the record.

    A keyword without wildcards matches when it occurs inside any value, as full-text
    search does; one with wildcards must match a whole value.
    """
    if isinstance(value, SigmaExpansion):
        alternatives = tuple(compile_keyword(item) for item in value.values)
        return lambda view: any(test(view) for test in alternatives)
    if isinstance(value, SigmaNumber):
        value = SigmaString(str(value.number))
    if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString):
        raise RuleError(f"keyword value {value!r} is not supported: only plain strings are")

    if not value.contains_special():
        value = SigmaString("*") + value + SigmaString("*")
    test = compile_text_test(value, cased=False)
    return lambda view: any(test(text) for text in view.keyword_texts())


def plain_string(value: SigmaType) -> str | None:
    """Return the exact text a case-insensitive string value matches, or ``None``.

    ``None`` means the value is no plain string: it has wildcards, or it is a number,
    regex or other type. The rule index only uses plain strings.
    """
    if type(value) is not SigmaString or value.contains_special():
        return None
    if any(isinstance(part, Placeholder) for part in value.s):
        return None
    return "".join(str(part) for part in value.s)


def compile_text_test(value: SigmaString, *, cased: bool) -> TextTest:
    """Compile a Sigma string with wildcards into a test on text.

    Without ``cased`` the test expects lower-cased text. Common shapes (exact, prefix,
    suffix, substring) use string methods; other wildcard patterns compile to a regex.
    """
    return _compile_parts(_string_parts(value, cased=cased))


def _compile_parts(parts: list[str | SpecialChars]) -> TextTest:
    literal = [part for part in parts if isinstance(part, str)]
    multi = SpecialChars.WILDCARD_MULTI

    if not any(isinstance(part, SpecialChars) for part in parts):
        exact = "".join(literal)
        return lambda text: text == exact
    if all(part is multi for part in parts):
        return lambda text: True
    if len(parts) == 2 and parts[1] is multi and isinstance(parts[0], str):
        prefix = parts[0]
        return lambda text: text.startswith(prefix)
    if len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
        suffix = parts[1]
        return lambda text: text.endswith(suffix)
    if len(parts) == 3 and parts[0] is multi and parts[2] is multi and isinstance(parts[1], str):
        infix = parts[1]
        return lambda text: infix in text
    pattern = re.compile(_wildcard_regex(parts), re.DOTALL)
    return lambda text: pattern.fullmatch(text) is not None


def _string_parts(value: SigmaString, *, cased: bool) -> list[str | SpecialChars]:
    """Return the string's literal and wildcard parts, merging repeated ``*``."""
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise RuleError(
                f"placeholder %{part.name}% in {value.original!r} is not supported: "
                "the expand modifier needs a processing pipeline that fills it"
            )
        if isinstance(part, str):
            parts.append(part if cased else part.lower())
        elif not (part is SpecialChars.WILDCARD_MULTI and parts and parts[-1] is part):
            parts.append(part)
    return parts


def _wildcard_regex(parts: list[str | SpecialChars]) -> str:
    pieces = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            pieces.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            pieces.append(".")
        else:
            pieces.append(re.escape(str(part)))
    return "".join(pieces)


# The leaf builders below are cached on their hashable arguments so that equal leaves are
# shared. A test keeps no state, so sharing it between rules and rule sets is safe, and
# an entry dropped from a full cache only costs that sharing.
_LEAF_CACHE_SIZE = 16384


def _compile_string_field(field: str, value: SigmaString) -> Matcher:
    cased = isinstance(value, SigmaCasedString)
    exact = plain_string(value)
    if exact is not None:
        return _exact_field_test(field, exact.lower())
    return _text_field_test(field, tuple(_string_parts(value, cased=cased)), cased)


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _exact_field_test(field: str, target: str) -> Matcher:
    # The most common leaf (eventName: X): one list membership test, no closure per value.
    path = field_path(field)
    return lambda view: target in view.folded(path)


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _text_field_test(field: str, parts: tuple[str | SpecialChars, ...], cased: bool) -> Matcher:
    path = field_path(field)
    test = _compile_parts(list(parts))
    read = RecordView.texts if cased else RecordView.folded

    def match_text(view: RecordView) -> bool:
        for text in read(view, path):  # noqa: SIM110 (a loop is faster than any() here)
            if text is not None and test(text):
                return True
        return False

    return match_text


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _number_field_test(field: str, number: float) -> Matcher:
    path = field_path(field)

    def match_number(view: RecordView) -> bool:
        for item in view.values(path):  # noqa: SIM110
            if _as_number(item) == number:
                return True
        return False

    return match_number


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _bool_field_test(field: str, expected: bool) -> Matcher:
    path = field_path(field)
    spelled = "true" if expected else "false"

    def test(item: Any) -> bool:
        if isinstance(item, bool):
            return item is expected
        return isinstance(item, str) and item.lower() == spelled

    return lambda view: any(test(item) for item in view.values(path))


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _null_field_test(field: str) -> Matcher:
    path = field_path(field)

    def match_null(view: RecordView) -> bool:
        for item in view.values(path):  # noqa: SIM110
            if item is not None:
                return False
        return True

    return match_null


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _exists_field_test(field: str, expected: bool) -> Matcher:
    path = field_path(field)

    def match_exists(view: RecordView) -> bool:
        for item in view.values(path):
            if item is not None:
                return expected
        return not expected

    return match_exists


def _compile_regex_field(field: str, value: SigmaRegularExpression) -> Matcher:
    flags = 0
    for flag in value.flags:
        flags |= _REGEX_FLAGS[flag]
    if value.regexp.contains_placeholder():
        raise RuleError(f"placeholder in regular expression {str(value.regexp)!r} is not supported")
    return _regex_field_test(field, str(value.regexp), flags)


logger = logging.getLogger(__name__)

_INLINE_FLAGS = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s"}


def compile_regex(regexp: str, flags: int) -> Any:
    """Compile a rule's regular expression with RE2, which runs in linear time.

    Python's `re` backtracks, so a pattern such as ``^(a+)+$`` on a crafted field
    could stall the worker for minutes. A pattern that RE2 cannot run (backreferences,
    lookaround) falls back to `re`, with a warning naming it.
    """
    inline = "".join(letter for flag, letter in _INLINE_FLAGS.items() if flags & flag)
    try:
        return re2.compile(f"(?{inline}){regexp}" if inline else regexp)
    except re2.error as error:
        logger.warning(
            "regular expression %r needs Python's backtracking engine (%s); a crafted "
            "field value can make it slow",
            regexp,
            error,
        )
        return re.compile(regexp, flags)


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _regex_field_test(field: str, regexp: str, flags: int) -> Matcher:
    path = field_path(field)
    pattern = compile_regex(regexp, flags)

    def match_regex(view: RecordView) -> bool:
        for text in view.texts(path):
            if text is not None and pattern.search(text) is not None:
                return True
        return False

    return match_regex


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _cidr_field_test(field: str, network: IpNetwork) -> Matcher:
    path = field_path(field)

    def match_cidr(view: RecordView) -> bool:
        for item in view.values(path):  # noqa: SIM110
            if _in_network(item, network):
                return True
        return False

    return match_cidr


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _compare_field_test(field: str, op: CompareOperators, bound: float) -> Matcher:
    path = field_path(field)
    compare = _COMPARE[op]

    def test(item: Any) -> bool:
        number = _as_number(item)
        return number is not None and compare(number, bound)

    return lambda view: any(test(item) for item in view.values(path))


@functools.lru_cache(maxsize=_LEAF_CACHE_SIZE)
def _fieldref_test(field: str, other_field: str, starts: bool, ends: bool) -> Matcher:
    path = field_path(field)
    other = field_path(other_field)

    def related(text: str, reference: str) -> bool:
        if starts and ends:
            return reference in text
        if starts:
            return text.startswith(reference)
        if ends:
            return text.endswith(reference)
        return text == reference

    def test(view: RecordView) -> bool:
        references = [ref for ref in view.folded(other) if ref is not None]
        return any(
            related(text, reference)
            for text in view.folded(path)
            if text is not None
            for reference in references
        )

    return test


def _as_number(item: Any) -> float | None:
    """Return a JSON number, or a string holding one, as a number; else ``None``."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int | float):
        return item
    if isinstance(item, str):
        try:
            return float(item)
        except ValueError:
            return None
    return None


def _in_network(item: Any, network: IpNetwork) -> bool:
    if not isinstance(item, str):
        return False
    parsed = _parse_ip(item)
    if parsed is None:
        return False
    if isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return parsed in network
    return parsed.version == network.version and parsed.subnet_of(network)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | IpNetwork | None:
    """Parse an address or network once: the same addresses recur across records and rules."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
