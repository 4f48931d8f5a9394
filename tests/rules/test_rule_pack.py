"""Every rule of the bundled pack against a matching and a non-matching record of its source.

The cases live in ``cases/<source>.yml``, keyed by rule file name: each is a patch applied to
the source's base record in ``fixtures/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.rules.rule_records import CASES, RecordBuilder, base_record, merge_patch

from pivotwatch.correlator.sigma import RuleSet, bundled_rules_dir, load_rule_files
from pivotwatch.correlator.sigma.attack import TACTIC_ORDER
from pivotwatch.schemas.event import Source

CASE_FILES = {
    Source.CLOUDTRAIL: "cloudtrail.yml",
    Source.GCP_AUDIT: "gcp_audit.yml",
    Source.FALCO: "falco.yml",
}
LEVELS = {"informational", "low", "medium", "high", "critical"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def load_cases() -> dict[str, tuple[Source, dict[str, list[dict[str, Any]]]]]:
    cases: dict[str, tuple[Source, dict[str, list[dict[str, Any]]]]] = {}
    for source, name in CASE_FILES.items():
        for stem, case in yaml.safe_load((CASES / name).read_text()).items():
            cases[stem] = (source, case)
    return cases


CASES_BY_RULE = load_cases()
PACK = load_rule_files([bundled_rules_dir()])
RULES_BY_STEM = {Path(rule.path or "").stem: rule for rule in PACK.rules}


def case_params(kind: str) -> list[Any]:
    params = []
    for stem, (source, case) in sorted(CASES_BY_RULE.items()):
        for number, patch in enumerate(case.get(kind, [])):
            params.append(pytest.param(stem, source, patch, id=f"{stem}-{number}"))
    return params


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return RuleSet.load()


def matched_ids(pack: RuleSet, source: Source, record: dict[str, Any]) -> set[str]:
    return {match.rule_id for match in pack.match_record(source, record)}


def test_pack_loads_every_file() -> None:
    assert PACK.rejected == ()
    assert len(RULES_BY_STEM) == len(PACK.rules)


@pytest.mark.parametrize("stem", sorted(RULES_BY_STEM))
def test_pack_rule_has_cases(stem: str) -> None:
    source, case = CASES_BY_RULE[stem]
    assert source is RULES_BY_STEM[stem].source
    assert case.get("match"), "needs at least one matching record"
    assert case.get("no_match"), "needs at least one non-matching record"


def test_cases_name_existing_rules() -> None:
    assert set(CASES_BY_RULE) <= set(RULES_BY_STEM)


@pytest.mark.parametrize(("stem", "source", "patch"), case_params("match"))
def test_pack_rule_matches(
    pack: RuleSet, build_record: RecordBuilder, stem: str, source: Source, patch: dict[str, Any]
) -> None:
    assert RULES_BY_STEM[stem].rule_id in matched_ids(pack, source, build_record(source, patch))


@pytest.mark.parametrize(("stem", "source", "patch"), case_params("no_match"))
def test_pack_rule_ignores(
    pack: RuleSet, build_record: RecordBuilder, stem: str, source: Source, patch: dict[str, Any]
) -> None:
    assert RULES_BY_STEM[stem].rule_id not in matched_ids(pack, source, build_record(source, patch))


@pytest.mark.parametrize("source", list(CASE_FILES))
def test_base_records_match_nothing(pack: RuleSet, source: Source) -> None:
    assert pack.match_record(source, base_record(source)) == []


@pytest.mark.parametrize("stem", sorted(RULES_BY_STEM))
def test_pack_rule_metadata(stem: str) -> None:
    path = RULES_BY_STEM[stem].path
    assert path is not None
    document = yaml.safe_load(Path(path).read_text())
    assert document["author"] == "pivotwatch"
    assert UUID.match(document["id"])
    assert document["status"] in {"experimental", "test", "stable"}
    assert document["level"] in LEVELS
    assert RULES_BY_STEM[stem].techniques, "needs an ATT&CK technique tag"
    assert set(RULES_BY_STEM[stem].tactics) <= set(TACTIC_ORDER)
    assert RULES_BY_STEM[stem].tactics, "needs an ATT&CK tactic"


def test_merge_patch_merges_nested_objects() -> None:
    merged = merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 3}, "d": [2]})
    assert merged == {"a": {"b": 3, "c": 2}, "d": [2]}
