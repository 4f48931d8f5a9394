"""Fixtures for the schema tests: the sample records under tests/fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pivotwatch.schemas.normalize import NormalizeContext

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    """Decode one fixture file that holds one JSON object."""
    record = orjson.loads((FIXTURES / name).read_bytes())
    assert isinstance(record, dict), f"{name} does not hold one JSON object"
    return record


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def context() -> NormalizeContext:
    """A context with no settings and nothing learned."""
    return NormalizeContext()
