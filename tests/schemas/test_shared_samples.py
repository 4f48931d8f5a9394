"""Every real sample and every scenario input normalizes without an error.

The expected counts were taken by reading the files: they pin framing, so a record that
framing drops or duplicates fails here.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pivotwatch.schemas.event import Event, EventKind, Source
from pivotwatch.schemas.framing import Framed, split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record

pytestmark = pytest.mark.shared

DATA_SOURCES = {
    "otrf-security-datasets": Source.CLOUDTRAIL,
    "invictus-aws-dataset/CloudTrail": Source.CLOUDTRAIL,
    "stratus-red-team": Source.CLOUDTRAIL,
    "elastic-integrations-cloudtrail": Source.CLOUDTRAIL,
    "elastic-integrations-falco": Source.FALCO,
    "elastic-integrations-gcp": Source.GCP_AUDIT,
    "gcp-mitre-attack-external": Source.GCP_AUDIT,
}

# folder: (files, records, skipped documents)
DATA_COUNTS = {
    "otrf-security-datasets": (1, 103, 0),
    "invictus-aws-dataset/CloudTrail": (55, 2900, 0),
    "stratus-red-team": (4, 68, 0),
    "elastic-integrations-cloudtrail": (1, 0, 1),
    "elastic-integrations-falco": (1, 17, 0),
    "elastic-integrations-gcp": (1, 1, 0),
    "gcp-mitre-attack-external": (8, 8, 0),
}

# scenario: records per input kind, counted from the files
SCENARIO_COUNTS = {
    "aws-eks-imds-node-role-exfil": {"cloudtrail": 68, "falco": 4, "inventory": 10},
    "aws-eks-irsa-token-theft": {"cloudtrail": 79, "falco": 2, "inventory": 15},
    "aws-late-duplicate-delivery": {"cloudtrail": 56, "falco": 7, "inventory": 9},
    "aws-role-chain-escalation": {"cloudtrail": 51, "falco": 2, "inventory": 9},
    "benign-node-and-ci": {"cloudtrail": 115, "falco": 3, "inventory": 20},
    "gcp-gke-metadata-node-sa": {"gcp_audit": 30, "falco": 2, "inventory": 7},
    "gcp-gke-workload-identity": {"gcp_audit": 36, "falco": 2, "inventory": 12},
    "transient-exposure": {"cloudtrail": 49, "gcp_audit": 7, "inventory": 2},
}


def frame_and_normalize(
    source: Source, path: Path, context: NormalizeContext
) -> tuple[Framed, list[Event]]:
    framed = split_message(source, path.read_bytes())
    events = [
        event for record in framed.records for event in normalize_record(source, record, context)
    ]
    return framed, events


@pytest.mark.parametrize("folder", sorted(DATA_COUNTS))
def test_shared_data_folder_normalizes(shared_dir: Path, folder: str) -> None:
    files = sorted(path for path in (shared_dir / "data" / folder).iterdir() if path.is_file())
    context = NormalizeContext()

    records = 0
    skipped = 0
    for path in files:
        framed, events = frame_and_normalize(DATA_SOURCES[folder], path, context)
        records += len(framed.records)
        skipped += len(framed.skipped)
        assert len(events) == len(framed.records), path.name

    assert (len(files), records, skipped) == DATA_COUNTS[folder]


def test_shared_data_covers_every_folder(shared_dir: Path) -> None:
    folders = {
        str(path.parent.relative_to(shared_dir / "data"))
        for path in (shared_dir / "data").rglob("*")
        if path.is_file() and path.suffix != ".md"
    }

    assert folders == set(DATA_COUNTS)


def test_shared_invictus_service_events(shared_dir: Path) -> None:
    context = NormalizeContext()
    kinds: Counter[EventKind] = Counter()
    untyped = 0
    for path in sorted((shared_dir / "data" / "invictus-aws-dataset" / "CloudTrail").iterdir()):
        framed, events = frame_and_normalize(Source.CLOUDTRAIL, path, context)
        kinds.update(event.kind for event in events)
        untyped += sum("type" not in record["userIdentity"] for record in framed.records)

    assert kinds[EventKind.SERVICE_EVENT] == 42
    assert untyped == 42


def scenario_inputs(folder: Path) -> list[tuple[Source, Path]]:
    """Return a scenario's inputs, inventory first so hosts are known before alerts."""
    inputs = [(Source.INVENTORY, path) for path in sorted((folder / "inventory").glob("*.json"))]
    inputs += [(Source.CLOUDTRAIL, path) for path in sorted((folder / "cloudtrail").glob("*.json"))]
    if (folder / "gcp-audit.jsonl").is_file():
        inputs.append((Source.GCP_AUDIT, folder / "gcp-audit.jsonl"))
    if (folder / "falco.jsonl").is_file():
        inputs.append((Source.FALCO, folder / "falco.jsonl"))
    return inputs


@pytest.mark.parametrize("scenario", sorted(SCENARIO_COUNTS))
def test_shared_scenario_inputs_normalize(shared_dir: Path, scenario: str) -> None:
    context = NormalizeContext()
    counts: Counter[str] = Counter()
    falco_keys: set[str] = set()

    for source, path in scenario_inputs(shared_dir / "scenarios" / scenario):
        framed, events = frame_and_normalize(source, path, context)
        counts[source.value] += len(framed.records)
        assert framed.skipped == [], path.name
        if source is Source.FALCO:
            falco_keys.update(event.key for event in events)

    assert dict(counts) == SCENARIO_COUNTS[scenario]
    assert "unknown" not in falco_keys


def test_shared_scenarios_all_listed(shared_dir: Path) -> None:
    folders = {path.name for path in (shared_dir / "scenarios").iterdir() if path.is_dir()}

    assert folders == set(SCENARIO_COUNTS)
