"""The ``rules check`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pivotwatch.cli.rules import rules

BAD_RULE = """\
title: windows rule
id: 1d7a0c52-3e0b-4f0e-9a55-2b8d1f3c4e5a
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\\\cmd.exe'
    condition: selection
"""


def test_rules_check_bundled_pack_passes() -> None:
    result = CliRunner().invoke(rules, ["check"])
    assert result.exit_code == 0, result.output
    assert "cloudtrail" in result.output
    assert "gcp_audit" in result.output
    assert "falco" in result.output
    assert "No rule rejected" in result.output


def test_rules_check_rejected_rule_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_RULE)
    result = CliRunner().invoke(rules, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "Rejected rules: 1" in result.output
    assert "1d7a0c52" in result.output


@pytest.mark.shared
def test_rules_check_reports_57_community_rules(shared_dir: Path) -> None:
    result = CliRunner().invoke(rules, ["check", str(shared_dir / "sigma" / "aws-cloudtrail")])
    assert result.exit_code == 0, result.output
    assert "57" in result.output


def test_rules_check_help_describes_command() -> None:
    result = CliRunner().invoke(rules, ["check", "--help"])
    assert "Exits with status 1" in result.output
