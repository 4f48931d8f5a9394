"""The bundled pack over the shared scenarios: expected techniques, quiet benign days."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pivotwatch.correlator.sigma import RuleMatch, RuleSet
from pivotwatch.schemas.event import Source

pytestmark = pytest.mark.shared

SCENARIOS = (
    "aws-eks-imds-node-role-exfil",
    "aws-eks-irsa-token-theft",
    "aws-late-duplicate-delivery",
    "aws-role-chain-escalation",
    "benign-node-and-ci",
    "gcp-gke-metadata-node-sa",
    "gcp-gke-workload-identity",
    "transient-exposure",
)
LOUD_LEVELS = {"high", "critical"}


def scenario_records(folder: Path) -> Iterator[tuple[Source, str, dict[str, Any]]]:
    """Yield (source, source event id, record) for every input record of a scenario."""
    for path in sorted(folder.glob("cloudtrail/*.json")):
        for record in json.loads(path.read_text())["Records"]:
            yield Source.CLOUDTRAIL, record["eventID"], record
    for name, source, id_field in (
        ("gcp-audit.jsonl", Source.GCP_AUDIT, "insertId"),
        ("falco.jsonl", Source.FALCO, "uuid"),
    ):
        path = folder / name
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    yield source, record[id_field], record


def matches_by_event(pack: RuleSet, folder: Path) -> dict[str, list[RuleMatch]]:
    found: dict[str, list[RuleMatch]] = defaultdict(list)
    for source, event_id, record in scenario_records(folder):
        found[event_id].extend(pack.match_record(source, record))
    return found


@pytest.fixture(scope="module")
def pack() -> RuleSet:
    return RuleSet.load()


def expected_chains(folder: Path) -> list[dict[str, Any]]:
    chains: list[dict[str, Any]] = json.loads((folder / "expected.json").read_text())["chains"]
    return chains


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_evidence_carries_expected_techniques(
    pack: RuleSet, shared_dir: Path, name: str
) -> None:
    folder = shared_dir / "scenarios" / name
    found = matches_by_event(pack, folder)

    for chain in expected_chains(folder):
        tagged = {
            technique
            for event_id in chain["evidence"]
            for match in found.get(event_id, [])
            for technique in match.techniques
        }
        for technique in chain["techniques"]:
            assert technique in tagged, f"{name}: no evidence record tagged {technique}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_attack_evidence_matches_a_rule(
    pack: RuleSet, shared_dir: Path, name: str
) -> None:
    folder = shared_dir / "scenarios" / name
    found = matches_by_event(pack, folder)
    for chain in expected_chains(folder):
        if chain["kind"] != "pivot_chain":
            continue
        unmatched = [event_id for event_id in chain["evidence"] if not found.get(event_id)]
        assert unmatched == [], f"{name}: evidence records no rule matched"


def test_benign_scenario_has_no_loud_matches(pack: RuleSet, shared_dir: Path) -> None:
    folder = shared_dir / "scenarios" / "benign-node-and-ci"
    loud = [
        (event_id, match.title)
        for event_id, found in matches_by_event(pack, folder).items()
        for match in found
        if match.level in LOUD_LEVELS
    ]
    assert loud == []


def test_transient_exposures_are_flagged(pack: RuleSet, shared_dir: Path) -> None:
    folder = shared_dir / "scenarios" / "transient-exposure"
    found = matches_by_event(pack, folder)
    for opening in (
        "4a213389-f21a-4f10-81fb-c10043c40e5b",
        "03239564-d7d5-43e1-ad07-e457b877526d",
        "jbfuc17asu5p",
    ):
        assert found.get(opening), f"exposure {opening} matched no rule"
    private_range = "6d2ea48e-7219-43a6-8f36-4deaedab65e5"
    assert found.get(private_range, []) == []
