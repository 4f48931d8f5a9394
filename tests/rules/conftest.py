"""Fixtures for the rule pack tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from tests.rules.rule_records import RecordBuilder, base_record, merge_patch

from pivotwatch.schemas.event import Source


@pytest.fixture
def build_record() -> RecordBuilder:
    """Build a record of a source from its base record and a patch."""

    def build(source: Source, patch: Mapping[str, Any]) -> dict[str, Any]:
        return merge_patch(base_record(source), patch)

    return build
