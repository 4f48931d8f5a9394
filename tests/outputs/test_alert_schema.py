"""The shipped JSON Schema of the alert topic, and alerts checked against it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from pivotwatch.schemas.alert import SCHEMA_VERSION
from pivotwatch.schemas.jsonschema import (
    ALERT_SCHEMA_ID,
    FIELD_DESCRIPTIONS,
    alert_schema_path,
    load_alert_schema,
    render_alert_schema,
    write_alert_schema,
)

from .conftest import FIXTURES, read_alert_lines

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def validator() -> jsonschema.Draft202012Validator:
    schema = load_alert_schema()
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def schema_errors(message: bytes) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator().iter_errors(orjson.loads(message))
    ]


def test_shipped_schema_matches_model() -> None:
    shipped = alert_schema_path().read_text(encoding="utf-8")
    assert shipped == render_alert_schema(), (
        "alert.schema.json is stale: run python -m pivotwatch.schemas.jsonschema"
    )


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(load_alert_schema())


def test_schema_names_id_and_version() -> None:
    schema = load_alert_schema()
    assert schema["$id"] == ALERT_SCHEMA_ID
    assert SCHEMA_VERSION in schema["$id"]
    assert schema["$defs"]["Alert"]["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_write_alert_schema_writes_rendered_text(tmp_path: Path) -> None:
    target = write_alert_schema(tmp_path / "alert.schema.json")
    assert target.read_text(encoding="utf-8") == render_alert_schema()


def test_every_field_has_description() -> None:
    definitions = load_alert_schema()["$defs"]
    for struct in ("Alert", "Entry", "Evidence"):
        for name, field in definitions[struct]["properties"].items():
            assert field.get("description"), f"{struct}.{name} has no description"


def test_docs_describe_every_field() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", text, flags=re.MULTILINE))
    for struct, fields in FIELD_DESCRIPTIONS.items():
        prefix = {"Alert": "", "Entry": "entry.", "Evidence": "evidence."}[struct]
        for name in fields:
            assert f"{prefix}{name}" in documented, f"docs/alerts.md has no row for {prefix}{name}"


def test_docs_name_schema_version() -> None:
    assert f"`schema_version` `{SCHEMA_VERSION}`" in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "path", sorted(FIXTURES.glob("*.alerts.jsonl")), ids=lambda path: path.name
)
def test_recorded_alerts_match_schema(path: Path) -> None:
    for line in read_alert_lines(path):
        assert schema_errors(line) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", 101),
        ("revision", 0),
        ("first_seen", "yesterday"),
        ("kind", "pivot"),
        ("schema_version", "0.9"),
    ],
)
def test_schema_rejects_invalid_field(field: str, value: Any) -> None:
    alert = orjson.loads(read_alert_lines(FIXTURES / "eks-imds-pivot.alerts.jsonl")[0])
    alert[field] = value
    assert schema_errors(orjson.dumps(alert)) != []


def test_schema_rejects_missing_chain_id() -> None:
    alert = orjson.loads(read_alert_lines(FIXTURES / "eks-imds-pivot.alerts.jsonl")[0])
    del alert["chain_id"]
    assert schema_errors(orjson.dumps(alert)) != []


@pytest.mark.integration
@pytest.mark.shared
def test_scenario_alerts_match_schema(scenario_alert_messages: dict[str, list[bytes]]) -> None:
    assert sum(len(messages) for messages in scenario_alert_messages.values()) > 0
    for folder, messages in scenario_alert_messages.items():
        for message in messages:
            assert schema_errors(message) == [], f"{folder}: {message[:200]!r}"
