"""Sigma value modifiers and condition forms, evaluated on small records."""

from __future__ import annotations

import base64
import re
import textwrap
from typing import Any

import pytest

from pivotwatch.correlator.sigma import RuleSet
from pivotwatch.schemas.event import Source

RULE_ID = "0b5b6c1e-7d0c-4a57-9a7a-3c0d2f3e8a01"


def compile_detection(detection: str, *, product: str = "falco") -> RuleSet:
    """Build a one-rule set for the given detection block (YAML under ``detection:``)."""
    logsource = {
        "falco": "    product: falco\n",
        "aws": "    product: aws\n    service: cloudtrail\n",
    }[product]
    text = (
        "title: test rule\n"
        f"id: {RULE_ID}\n"
        "status: test\n"
        "level: medium\n"
        f"logsource:\n{logsource}"
        "detection:\n" + textwrap.indent(textwrap.dedent(detection).strip(), "    ") + "\n"
    )
    return RuleSet.from_yaml(text)


def matches(rules: RuleSet, record: dict[str, Any], source: Source = Source.FALCO) -> bool:
    return [match.rule_id for match in rules.match_record(source, record)] == [RULE_ID]


# --- plain strings, wildcards and case ------------------------------------------------


def test_string_matches_case_insensitively() -> None:
    rules = compile_detection("sel:\n    rule: 'Terminal Shell In Container'\ncondition: sel")
    assert matches(rules, {"rule": "terminal shell in container"})
    assert not matches(rules, {"rule": "terminal shell in container (2)"})


def test_cased_modifier_is_case_sensitive() -> None:
    rules = compile_detection("sel:\n    rule|cased: 'Terminal'\ncondition: sel")
    assert matches(rules, {"rule": "Terminal"})
    assert not matches(rules, {"rule": "terminal"})


def test_wildcards_star_and_question_mark() -> None:
    rules = compile_detection("sel:\n    proc.name: 'py?hon*'\ncondition: sel")
    assert matches(rules, {"proc.name": "python3.12"})
    assert matches(rules, {"proc.name": "PYTHON"})
    assert not matches(rules, {"proc.name": "pyhon3"})


def test_escaped_wildcard_is_literal() -> None:
    rules = compile_detection("sel:\n    principal: '\\*'\ncondition: sel")
    assert matches(rules, {"principal": "*"})
    assert not matches(rules, {"principal": "arn:aws:iam::111122223333:root"})


def test_contains_startswith_endswith() -> None:
    rules = compile_detection(
        """
        sel:
            cmd|contains: 'security-credentials'
            path|startswith: '/var/run/'
            file|endswith: '.tfstate'
        condition: sel
        """
    )
    record = {
        "cmd": "curl http://x/Security-Credentials/role",
        "path": "/var/run/a",
        "file": "A.TFSTATE",
    }
    assert matches(rules, record)
    assert not matches(rules, {**record, "path": "/run/var/a"})
    assert not matches(rules, {**record, "file": "a.tfstate.bak"})


def test_contains_all_requires_every_value() -> None:
    rules = compile_detection("sel:\n    cmd|contains|all: ['curl', 'token']\ncondition: sel")
    assert matches(rules, {"cmd": "curl -s http://metadata/token"})
    assert not matches(rules, {"cmd": "curl -s http://metadata/identity"})


def test_field_list_is_or() -> None:
    rules = compile_detection("sel:\n    rule: ['a', 'b']\ncondition: sel")
    assert matches(rules, {"rule": "b"})
    assert not matches(rules, {"rule": "c"})


def test_map_is_and_and_list_of_maps_is_or() -> None:
    rules = compile_detection(
        """
        sel:
            - a: '1'
              b: '2'
            - c: '3'
        condition: sel
        """
    )
    assert matches(rules, {"a": "1", "b": "2"})
    assert matches(rules, {"c": "3"})
    assert not matches(rules, {"a": "1", "b": "9"})


def test_list_value_matches_any_element() -> None:
    rules = compile_detection("sel:\n    tags: 'mitre_execution'\ncondition: sel")
    assert matches(rules, {"tags": ["T1059", "mitre_execution"]})
    assert not matches(rules, {"tags": ["T1059"]})


# --- null, exists, numbers, booleans ---------------------------------------------------


def test_null_matches_absent_or_json_null() -> None:
    rules = compile_detection("sel:\n    errorCode: null\ncondition: sel", product="aws")
    assert matches(rules, {"eventName": "X"}, Source.CLOUDTRAIL)
    assert matches(rules, {"errorCode": None}, Source.CLOUDTRAIL)
    assert not matches(rules, {"errorCode": "AccessDenied"}, Source.CLOUDTRAIL)


def test_exists_modifier() -> None:
    present = compile_detection("sel:\n    errorCode|exists: true\ncondition: sel")
    absent = compile_detection("sel:\n    errorCode|exists: false\ncondition: sel")
    assert matches(present, {"errorCode": "AccessDenied"})
    assert not matches(present, {"errorCode": None})
    assert matches(absent, {"eventName": "GetObject"})
    assert not matches(absent, {"errorCode": "AccessDenied"})


def test_number_matches_number_and_numeric_string() -> None:
    rules = compile_detection("sel:\n    fd.rport: 4444\ncondition: sel")
    assert matches(rules, {"fd.rport": 4444})
    assert matches(rules, {"fd.rport": "4444"})
    assert not matches(rules, {"fd.rport": 443})


def test_string_matches_number_in_json_spelling() -> None:
    rules = compile_detection("sel:\n    port: '44*'\ncondition: sel")
    assert matches(rules, {"port": 4444})
    assert not matches(rules, {"port": 8443})


def test_boolean_matches_json_boolean_and_string() -> None:
    rules = compile_detection("sel:\n    enable: false\ncondition: sel")
    assert matches(rules, {"enable": False})
    assert matches(rules, {"enable": "False"})
    assert not matches(rules, {"enable": True})
    assert not matches(rules, {"enable": 0})


def test_string_false_matches_json_boolean() -> None:
    rules = compile_detection("sel:\n    enable: 'false'\ncondition: sel")
    assert matches(rules, {"enable": False})


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [
        ("gt", 1000, True),
        ("gt", 1001, False),
        ("gte", 1001, True),
        ("lt", 1002, True),
        ("lt", 1001, False),
        ("lte", 1001, True),
    ],
)
def test_compare_modifiers(modifier: str, value: int, expected: bool) -> None:
    rules = compile_detection(f"sel:\n    user.uid|{modifier}: {value}\ncondition: sel")
    assert matches(rules, {"user.uid": 1001}) is expected


def test_compare_reads_numeric_strings_and_skips_text() -> None:
    rules = compile_detection("sel:\n    size|gte: 1000\ncondition: sel")
    assert matches(rules, {"size": "1800000"})
    assert not matches(rules, {"size": "large"})


# --- regex, cidr, base64, windash, fieldref -------------------------------------------


def test_regex_searches_and_is_case_sensitive() -> None:
    rules = compile_detection("sel:\n    type|re: '^(p|g)[0-9]'\ncondition: sel")
    assert matches(rules, {"type": "p3.2xlarge"})
    assert not matches(rules, {"type": "P3.2xlarge"})
    assert not matches(rules, {"type": "m6g.large"})


def test_regex_flags_i_m_s() -> None:
    ignore_case = compile_detection("sel:\n    a|re|i: 'ADMIN'\ncondition: sel")
    multiline = compile_detection("sel:\n    a|re|m: '^second$'\ncondition: sel")
    dotall = compile_detection("sel:\n    a|re|s: 'first.second'\ncondition: sel")
    assert matches(ignore_case, {"a": "ops-admin"})
    assert matches(multiline, {"a": "first\nsecond\nthird"})
    assert matches(dotall, {"a": "first\nsecond"})
    assert not matches(
        compile_detection("sel:\n    a|re: 'first.second'\ncondition: sel"), {"a": "first\nsecond"}
    )


def test_cidr_matches_addresses_and_inner_networks() -> None:
    rules = compile_detection("sel:\n    ip|cidr: '198.51.100.0/24'\ncondition: sel")
    assert matches(rules, {"ip": "198.51.100.23"})
    assert matches(rules, {"ip": "198.51.100.0/25"})
    assert not matches(rules, {"ip": "203.0.113.24"})
    assert not matches(rules, {"ip": "not an address"})


def test_cidr_ipv6() -> None:
    rules = compile_detection("sel:\n    ip|cidr: '2001:db8::/32'\ncondition: sel")
    assert matches(rules, {"ip": "2001:db8::1"})
    assert not matches(rules, {"ip": "198.51.100.23"})


def test_base64_modifier() -> None:
    rules = compile_detection("sel:\n    data|base64: 'curl'\ncondition: sel")
    assert matches(rules, {"data": base64.b64encode(b"curl").decode()})
    assert not matches(rules, {"data": "curl"})


def test_base64offset_contains_finds_any_alignment() -> None:
    rules = compile_detection(
        "sel:\n    data|base64offset|contains: '169.254.169.254'\ncondition: sel"
    )
    for prefix in (b"", b"a", b"ab"):
        encoded = base64.b64encode(prefix + b"curl http://169.254.169.254/latest").decode()
        assert matches(rules, {"data": encoded}), prefix
    assert not matches(rules, {"data": base64.b64encode(b"curl http://10.0.0.1/").decode()})


def test_windash_expands_dash_and_slash() -> None:
    rules = compile_detection("sel:\n    cmd|windash|contains: ' -enc '\ncondition: sel")
    assert matches(rules, {"cmd": "powershell /enc AAA"})
    assert matches(rules, {"cmd": "powershell -enc AAA"})
    assert not matches(rules, {"cmd": "powershell enc AAA"})


def test_fieldref_compares_two_fields() -> None:
    rules = compile_detection("sel:\n    a|fieldref: b\ncondition: sel")
    assert matches(rules, {"a": "Alice", "b": "alice"})
    assert not matches(rules, {"a": "alice", "b": "bob"})
    assert not matches(rules, {"a": "alice"})


def test_fieldref_with_contains() -> None:
    rules = compile_detection("sel:\n    arn|fieldref|contains: user\ncondition: sel")
    assert matches(rules, {"arn": "arn:aws:iam::1:user/bob", "user": "bob"})
    assert not matches(rules, {"arn": "arn:aws:iam::1:user/alice", "user": "bob"})


def test_keyword_detection_searches_all_values() -> None:
    rules = compile_detection("keywords:\n    - 'TruffleHog'\ncondition: keywords", product="aws")
    record = {"userAgent": "TruffleHog/3.0", "requestParameters": {"x": 1}}
    assert matches(rules, record, Source.CLOUDTRAIL)
    assert not matches(rules, {"userAgent": "aws-cli/2.22"}, Source.CLOUDTRAIL)


def test_object_value_matches_as_json_text() -> None:
    rules = compile_detection("sel:\n    requestParameters|contains: 'Suspended'\ncondition: sel")
    assert matches(
        rules, {"requestParameters": {"VersioningConfiguration": {"Status": "Suspended"}}}
    )
    assert not matches(
        rules, {"requestParameters": {"VersioningConfiguration": {"Status": "Enabled"}}}
    )


# --- conditions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "record", "expected"),
    [
        ("a and b", {"x": "1", "y": "2"}, True),
        ("a and b", {"x": "1"}, False),
        ("a or b", {"y": "2"}, True),
        ("a or b", {"z": "3"}, False),
        ("a and not b", {"x": "1"}, True),
        ("a and not b", {"x": "1", "y": "2"}, False),
        ("not (a or b)", {"z": "3"}, True),
        ("not (a or b)", {"x": "1"}, False),
        ("(a or b) and c_1", {"y": "2", "z": "3"}, True),
        ("(a or b) and c_1", {"y": "2"}, False),
        ("1 of c_*", {"z": "3"}, True),
        ("1 of c_*", {"x": "1"}, False),
        ("all of c_*", {"z": "3", "w": "4"}, True),
        ("all of c_*", {"z": "3"}, False),
        ("1 of them", {"w": "4"}, True),
        ("1 of them", {"v": "5"}, False),
        ("all of them", {"x": "1", "y": "2", "z": "3", "w": "4"}, True),
        ("all of them", {"x": "1", "y": "2", "z": "3"}, False),
    ],
)
def test_condition_forms(condition: str, record: dict[str, str], expected: bool) -> None:
    rules = compile_detection(
        f"""
        a:
            x: '1'
        b:
            y: '2'
        c_1:
            z: '3'
        c_2:
            w: '4'
        condition: {condition}
        """
    )
    assert matches(rules, record) is expected


def test_condition_list_is_or() -> None:
    rules = compile_detection("a:\n    x: '1'\nb:\n    y: '2'\ncondition:\n    - a\n    - b")
    assert matches(rules, {"y": "2"})
    assert not matches(rules, {"z": "2"})


def test_regex_runs_in_linear_time_on_backtracking_pattern() -> None:
    from pivotwatch.correlator.sigma.values import compile_regex

    pattern = compile_regex("^(a+)+$", 0)

    # Python's backtracking engine takes minutes on this input, and RE2 returns at once.
    assert pattern.search("a" * 40 + "!") is None
    assert pattern.search("aaaa") is not None


def test_regex_flags_carry_over_to_re2() -> None:
    from pivotwatch.correlator.sigma.values import compile_regex

    assert compile_regex("^abc$", re.IGNORECASE).search("ABC") is not None
    assert compile_regex("a.b", re.DOTALL).search("a\nb") is not None
    assert compile_regex("^b", re.MULTILINE).search("a\nb") is not None
    assert compile_regex("^b", 0).search("a\nb") is None
