"""Every shared scenario through the real pipeline, scored as the project's scorer scores it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from pivotwatch.cli.scenario import run_with_broker
from pivotwatch.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.shared]

SCENARIOS = [
    "aws-eks-imds-node-role-exfil",
    "aws-eks-irsa-token-theft",
    "aws-late-duplicate-delivery",
    "aws-role-chain-escalation",
    "benign-node-and-ci",
    "gcp-gke-metadata-node-sa",
    "gcp-gke-workload-identity",
    "transient-exposure",
]


@pytest.fixture(scope="module")
def scorer(shared_dir: Path) -> ModuleType:
    """The shared scorer, loaded from its file."""
    path = shared_dir / "tools" / "score_scenarios.py"
    spec = importlib.util.spec_from_file_location("score_scenarios", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_scores(
    name: str, shared_dir: Path, isolated: Settings, scorer: ModuleType, tmp_path: Path
) -> None:
    folder = shared_dir / "scenarios" / name
    assert sorted(
        path.name for path in (shared_dir / "scenarios").iterdir() if path.is_dir()
    ) == sorted(SCENARIOS)

    result = run_with_broker(folder, isolated, embedded=False, timeout=120.0)
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"".join(value + b"\n" for value in result.alerts))
    wanted, found, false_chains = scorer.score(folder, alerts)

    assert found == wanted, f"{name}: found {found} of {wanted} expected chains"
    assert false_chains == 0, f"{name}: {false_chains} false pivot chains"
    assert result.records.sent > 0
