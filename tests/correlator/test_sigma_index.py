"""The rule index: bucket look-up, indexed matchers, shared leaf tests and operand order."""

from __future__ import annotations

import itertools
from typing import Any

from sigma.conditions import ConditionAND, ConditionFieldEqualsValueExpression
from sigma.rule import SigmaRule
from sigma.types import SigmaExists, SigmaString

from pivotwatch.correlator.sigma import RuleSet, load_rule_text
from pivotwatch.correlator.sigma.compiler import estimate_cost, parse_condition
from pivotwatch.correlator.sigma.fields import RecordView, field_path
from pivotwatch.correlator.sigma.loader import FIELD_ROOTS
from pivotwatch.correlator.sigma.values import compile_field_value
from pivotwatch.schemas.event import Source

AWS_LOGSOURCE = "logsource:\n    product: aws\n    service: cloudtrail\n"

DETECTIONS = (
    # filed under one event name: the indexed matcher drops the eventName test
    "selection:\n        eventSource: iam.amazonaws.com\n        eventName: CreateUser\n"
    "    filter:\n        errorCode|exists: true\n    condition: selection and not filter",
    # filed under two event names: the indexed matcher keeps every test
    "selection:\n        eventName:\n            - CreateUser\n            - DeleteUser\n"
    "        userAgent|contains: aws-cli\n    condition: selection",
    # every OR branch names an event, so the rule is filed under both names
    "a:\n        eventName: CreateUser\n        errorCode: AccessDenied\n"
    "    b:\n        eventName: deleteuser\n    condition: a or b",
    # the event name is only excluded: the rule stays in the fallback list
    "selection:\n        eventSource: iam.amazonaws.com\n"
    "    filter:\n        eventName: CreateUser\n    condition: selection and not filter",
    # a case-sensitive name is not indexed by eventName, only by eventSource
    "selection:\n        eventSource: iam.amazonaws.com\n        eventName|cased: CreateUser\n"
    "    condition: selection",
    # a keyword rule: fallback, evaluated on every record
    "keywords:\n        - 'trufflehog'\n    condition: keywords",
)

RECORDS: tuple[dict[str, Any], ...] = (
    {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "userAgent": "aws-cli/2"},
    {"eventSource": "iam.amazonaws.com", "eventName": "createuser"},
    {"eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "errorCode": "AccessDenied"},
    {"eventSource": "iam.amazonaws.com", "eventName": "DeleteUser", "userAgent": "TruffleHog"},
    {"eventSource": "iam.amazonaws.com", "eventName": ["CreateUser", "DeleteUser", "CreateUser"]},
    {"eventSource": "IAM.amazonaws.com", "eventName": "GetUser", "userAgent": "aws-cli"},
    {"eventSource": "s3.amazonaws.com"},
    {"eventName": None, "userAgent": "aws-cli"},
)


def rule_set() -> RuleSet:
    documents = [
        f"title: r{number}\nid: 00000000-0000-4000-8000-{number:012d}\nstatus: test\n"
        f"level: low\n{AWS_LOGSOURCE}detection:\n    {detection}\n"
        for number, detection in enumerate(DETECTIONS)
    ]
    return RuleSet.from_yaml("---\n".join(documents))


def evaluate_every_rule(rules: RuleSet, record: dict[str, Any]) -> list[str]:
    """Return the ids of the rules whose full matcher accepts the record, without the index."""
    view = RecordView(record, FIELD_ROOTS.get(Source.CLOUDTRAIL, ()))
    return [rule.rule_id for rule in rules.rules if rule.matcher(view)]


def test_index_matches_same_rules_as_full_evaluation() -> None:
    rules = rule_set()
    for record in RECORDS:
        found = [match.rule_id for match in rules.match_record(Source.CLOUDTRAIL, record)]
        assert found == evaluate_every_rule(rules, record), record


def test_index_candidates_are_unique_and_in_load_order() -> None:
    rules = rule_set()
    record = RECORDS[4]
    ids = [rule.rule_id for rule in rules.candidates(Source.CLOUDTRAIL, record)]
    assert ids == sorted(set(ids))


def test_index_record_with_two_names_gets_both_buckets() -> None:
    rules = rule_set()
    ids = [rule.title for rule in rules.candidates(Source.CLOUDTRAIL, RECORDS[4])]
    assert ids == ["r0", "r1", "r2", "r3", "r4", "r5"]


def test_index_unknown_name_gets_source_bucket() -> None:
    rules = rule_set()
    ids = [rule.title for rule in rules.candidates(Source.CLOUDTRAIL, RECORDS[5])]
    assert ids == ["r3", "r4", "r5"]


def test_index_unknown_source_gets_fallback_only() -> None:
    rules = rule_set()
    ids = [rule.title for rule in rules.candidates(Source.CLOUDTRAIL, RECORDS[6])]
    assert ids == ["r5"]


def test_index_match_reuses_prepared_result() -> None:
    rules = rule_set()
    first = rules.match_record(Source.CLOUDTRAIL, RECORDS[0])
    second = rules.match_record(Source.CLOUDTRAIL, RECORDS[0])
    assert [match.rule_id for match in first] == [match.rule_id for match in second]
    assert all(a is b for a, b in zip(first, second, strict=True))


def test_indexed_matcher_skips_single_index_value() -> None:
    rule = rule_set().rules[0]
    record = {"eventSource": "iam.amazonaws.com", "eventName": "OtherName"}
    assert rule.indexed_matcher(RecordView(record))
    assert not rule.matcher(RecordView(record))


def test_indexed_matcher_keeps_tests_for_two_values() -> None:
    rule = rule_set().rules[1]
    assert rule.indexed_matcher is rule.matcher


def test_indexed_matcher_is_full_matcher_for_fallback() -> None:
    rule = rule_set().rules[5]
    assert rule.indexed_matcher is rule.matcher


def test_indexed_matcher_skips_event_source() -> None:
    rule = rule_set().rules[3]
    record = {"eventSource": "s3.amazonaws.com", "eventName": "GetUser"}
    assert rule.indexed_matcher(RecordView(record))
    assert not rule.matcher(RecordView(record))


def test_indexed_matcher_only_index_test_matches_all() -> None:
    text = (
        "title: t\nid: 00000000-0000-4000-8000-000000000099\nstatus: test\nlevel: low\n"
        f"{AWS_LOGSOURCE}detection:\n    selection:\n        eventName: StopLogging\n"
        "    condition: selection\n"
    )
    rule = load_rule_text(text).rules[0]
    assert rule.indexed_matcher(RecordView({}))
    assert not rule.matcher(RecordView({}))


def test_leaf_tests_shared_between_equal_leaves() -> None:
    first = compile_field_value("errorCode", SigmaExists(True))
    second = compile_field_value("errorCode", SigmaExists(True))
    assert first is second


def test_leaf_tests_differ_for_different_values() -> None:
    exists = compile_field_value("errorCode", SigmaExists(True))
    missing = compile_field_value("errorCode", SigmaExists(False))
    assert exists is not missing


def test_leaf_tests_shared_for_same_wildcard_string() -> None:
    first = compile_field_value("userAgent", SigmaString("*aws-cli*"))
    second = compile_field_value("userAgent", SigmaString("*AWS-CLI*"))
    assert first is second


def test_field_path_shared_per_name() -> None:
    assert field_path("userIdentity.arn") is field_path("userIdentity.arn")


def test_operand_order_cheap_tests_first() -> None:
    text = (
        "title: t\nid: 00000000-0000-4000-8000-000000000098\nstatus: test\nlevel: low\n"
        f"{AWS_LOGSOURCE}detection:\n    selection:\n"
        "        userIdentity.arn|re: 'assumed-role/.+'\n        eventName: GetObject\n"
        "    condition: selection\n"
    )
    tree = parse_condition(SigmaRule.from_yaml(text))
    assert isinstance(tree, ConditionAND)
    regex_leaf, exact_leaf = tree.args
    assert isinstance(regex_leaf, ConditionFieldEqualsValueExpression)
    assert isinstance(exact_leaf, ConditionFieldEqualsValueExpression)
    assert estimate_cost(exact_leaf) < estimate_cost(regex_leaf)


def test_operand_order_keeps_result() -> None:
    leaves = ("userIdentity.arn|re: 'assumed-role/.+'", "eventName: GetObject", "readOnly: true")
    record = {
        "eventName": "GetObject",
        "readOnly": True,
        "userIdentity": {"arn": "arn:aws:sts::1:assumed-role/r/s"},
    }
    for order in itertools.permutations(leaves):
        body = "".join(f"        {leaf}\n" for leaf in order)
        text = (
            "title: t\nid: 00000000-0000-4000-8000-000000000097\nstatus: test\nlevel: low\n"
            f"{AWS_LOGSOURCE}detection:\n    selection:\n{body}    condition: selection\n"
        )
        rules = RuleSet.from_yaml(text)
        assert len(rules.match_record(Source.CLOUDTRAIL, record)) == 1, order
        assert rules.match_record(Source.CLOUDTRAIL, {**record, "readOnly": False}) == [], order
