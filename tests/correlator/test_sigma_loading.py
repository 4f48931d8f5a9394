"""Loading: rejected rules, ATT&CK tags, the rule index and the event entry point."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pivotwatch.correlator.sigma import RuleSet, load_rule_files, load_rule_text
from pivotwatch.correlator.sigma.attack import parse_attack_tags
from pivotwatch.errors import RuleError
from pivotwatch.schemas.event import Event, EventKind, Source

AWS_RULE = """\
title: stop logging
id: 6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c
status: test
level: high
tags:
    - attack.defense-impairment
    - attack.t1562.008
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: cloudtrail.amazonaws.com
        eventName: StopLogging
    condition: selection
"""


def rule_text(*, rule_id: str, logsource: str, detection: str, tags: str = "") -> str:
    return (
        f"title: t\nid: {rule_id}\nstatus: test\nlevel: low\n{tags}"
        f"logsource:\n{logsource}detection:\n{detection}"
    )


FALCO_LOGSOURCE = "    product: falco\n"
SIMPLE_DETECTION = "    sel:\n        rule: x\n    condition: sel\n"


def test_load_rule_text_reads_metadata() -> None:
    report = load_rule_text(AWS_RULE)
    rule = report.rules[0]
    assert rule.rule_id == "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
    assert rule.level == "high"
    assert rule.source is Source.CLOUDTRAIL
    assert rule.techniques == ("T1562.008",)
    assert rule.tactics == ("defense-impairment",)


def test_load_rejects_other_logsource() -> None:
    text = rule_text(
        rule_id="1d7a0c52-3e0b-4f0e-9a55-2b8d1f3c4e5a",
        logsource="    product: windows\n    category: process_creation\n",
        detection="    sel:\n        Image: x\n    condition: sel\n",
    )
    report = load_rule_text(text)
    assert report.rules == ()
    assert report.rejected[0].rule_id == "1d7a0c52-3e0b-4f0e-9a55-2b8d1f3c4e5a"
    assert "product 'windows'" in report.rejected[0].reason


def test_load_rejects_unknown_detection_name_in_condition() -> None:
    text = rule_text(
        rule_id="2e8b1d63-4f1c-4a1f-8b66-3c9e2a4d5f6b",
        logsource=FALCO_LOGSOURCE,
        detection="    sel:\n        rule: x\n    condition: sel and missing\n",
    )
    report = load_rule_text(text)
    assert report.rules == ()
    assert "missing" in report.rejected[0].reason


def test_load_rejects_timestamp_modifier() -> None:
    text = rule_text(
        rule_id="3f9c2e74-5a2d-4b2a-9c77-4d0f3b5e6a7c",
        logsource=FALCO_LOGSOURCE,
        detection="    sel:\n        time|hour: 3\n    condition: sel\n",
    )
    report = load_rule_text(text)
    assert report.rules == ()
    assert "timestamp" in report.rejected[0].reason


def test_load_rejects_expand_placeholder() -> None:
    text = rule_text(
        rule_id="4a0d3f85-6b3e-4c3b-8d88-5e1a4c6f7b8d",
        logsource=FALCO_LOGSOURCE,
        detection="    sel:\n        user|expand: '%admins%'\n    condition: sel\n",
    )
    report = load_rule_text(text)
    assert report.rules == ()
    assert "placeholder" in report.rejected[0].reason


def test_load_rejects_rule_without_id() -> None:
    text = f"title: t\nlevel: low\nlogsource:\n{FALCO_LOGSOURCE}detection:\n{SIMPLE_DETECTION}"
    report = load_rule_text(text)
    assert report.rules == ()
    assert "no id" in report.rejected[0].reason


def test_load_rejects_invalid_yaml() -> None:
    report = load_rule_text("title: [unclosed\n")
    assert report.rules == ()
    assert "invalid Sigma YAML" in report.rejected[0].reason


def test_load_rejects_duplicate_id_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(AWS_RULE)
    (tmp_path / "b.yml").write_text(AWS_RULE)
    report = load_rule_files([tmp_path])
    assert len(report.rules) == 1
    assert "duplicate rule id" in report.rejected[0].reason
    assert report.rejected[0].path == str(tmp_path / "b.yml")


def test_load_reports_missing_path(tmp_path: Path) -> None:
    report = load_rule_files([tmp_path / "absent"])
    assert "no such file" in report.rejected[0].reason


def test_ruleset_load_raises_with_file_and_id(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        rule_text(
            rule_id="5b1e4a96-7c4f-4d4c-9e99-6f2b5d7a8c9e",
            logsource="    product: okta\n",
            detection=SIMPLE_DETECTION,
        )
    )
    with pytest.raises(RuleError) as raised:
        RuleSet.load([bad], bundled=False)
    assert raised.value.path == str(bad)
    assert raised.value.rule_id == "5b1e4a96-7c4f-4d4c-9e99-6f2b5d7a8c9e"


def test_ruleset_load_skip_invalid_keeps_good_rules(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(AWS_RULE)
    (tmp_path / "bad.yml").write_text("title: [unclosed\n")
    rules = RuleSet.load([tmp_path], bundled=False, skip_invalid=True)
    assert len(rules) == 1
    assert len(rules.rejected) == 1


def test_bundled_pack_loads_without_rejections() -> None:
    rules = RuleSet.load()
    assert len(rules) > 40
    assert rules.rejected == ()


def test_parse_attack_tags_orders_tactics() -> None:
    tags = parse_attack_tags(["attack.impact", "attack.t1496", "attack.credential_access", "cve.x"])
    assert tags.techniques == ("T1496",)
    assert tags.tactics == ("credential-access", "impact")


def test_parse_attack_tags_derives_tactics_from_techniques() -> None:
    tags = parse_attack_tags(["attack.t1552.005", "attack.t1098.001", "attack.g0139"])
    assert tags.techniques == ("T1552.005", "T1098.001")
    assert tags.tactics == ("persistence", "privilege-escalation", "credential-access")


def test_parse_attack_tags_unknown_subtechnique_uses_parent() -> None:
    assert parse_attack_tags(["attack.t1552.999"]).tactics == ("credential-access",)


def test_index_skips_rules_for_other_event_names() -> None:
    rules = RuleSet.from_yaml(AWS_RULE)
    record = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}
    assert len(rules.match_record(Source.CLOUDTRAIL, record)) == 1
    assert rules.match_record(Source.CLOUDTRAIL, {**record, "eventName": "StartLogging"}) == []


def test_index_files_rule_under_required_event_name() -> None:
    rule = load_rule_text(AWS_RULE).rules[0]
    assert rule.required["eventName"] == frozenset({"stoplogging"})


def test_index_leaves_pattern_rules_in_fallback() -> None:
    text = AWS_RULE.replace("eventName: StopLogging", "eventName|startswith: Stop")
    rule = load_rule_text(text).rules[0]
    assert "eventName" not in rule.required
    assert rule.required["eventSource"] == frozenset({"cloudtrail.amazonaws.com"})


def test_match_record_other_source_is_empty() -> None:
    rules = RuleSet.from_yaml(AWS_RULE)
    record = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}
    assert rules.match_record(Source.GCP_AUDIT, record) == []


def test_match_event_uses_raw_record() -> None:
    rules = RuleSet.from_yaml(AWS_RULE)
    event = Event(
        source=Source.CLOUDTRAIL,
        kind=EventKind.API_CALL,
        event_id="0daede30-d428-44cb-ab96-a442179a1d8b",
        time=datetime(2026, 11, 3, 9, 30, 12, tzinfo=UTC),
        key="111122223333",
        action="StopLogging",
        raw={"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"},
    )
    matched = rules.match(event)
    assert [match.techniques for match in matched] == [("T1562.008",)]
    assert matched[0].level == "high"


def test_candidates_lists_indexed_and_fallback_rules() -> None:
    pattern_rule = AWS_RULE.replace("eventName: StopLogging", "eventName|startswith: Stop").replace(
        "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9f0a1b2c", "7a2d3b4c-1e5f-4a6b-9c7d-8e9f0a1b2c3d"
    )
    rules = RuleSet.from_yaml(AWS_RULE + "---\n" + pattern_rule)
    record = {"eventSource": "s3.amazonaws.com", "eventName": "GetObject"}
    assert rules.candidates(Source.CLOUDTRAIL, record) == []
    record = {"eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging"}
    assert len(rules.candidates(Source.CLOUDTRAIL, record)) == 2
