"""The ``connect`` commands: their options and the errors of incomplete settings."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pivotwatch.cli.connect import connect_group

SUBCOMMANDS = ("cloudtrail-sqs", "eventbridge-sqs", "gcp-pubsub", "falco-http", "inventory")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PIVOTWATCH_ setting from the caller's environment reaches these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("PIVOTWATCH_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_connect_help_lists_subcommand(name: str) -> None:
    result = CliRunner().invoke(connect_group, ["--help"])
    assert name in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["cloudtrail-sqs"], "needs a queue URL"),
        (["eventbridge-sqs"], "needs a queue URL"),
        (["gcp-pubsub"], "needs a subscription"),
        (["falco-http", "--port", "0"], "allow_unauthenticated"),
        (["inventory"], "no inventory source is configured"),
        (["inventory", "--kubernetes-api-url", "https://127.0.0.1:1"], "kubernetes_token_file"),
    ],
)
def test_connect_incomplete_settings_exit_2(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(connect_group, [*arguments, "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert message in result.output


def test_connect_invalid_option_value_exit_2() -> None:
    result = CliRunner().invoke(connect_group, ["cloudtrail-sqs", "--concurrency", "0"])
    assert result.exit_code == 2
    assert "concurrency" in result.output
