"""Base records in each source's shape, and patches that turn them into test records."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pivotwatch.schemas.event import Source

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
CASES = HERE / "cases"

BASE_FILES = {
    Source.CLOUDTRAIL: "cloudtrail_base.json",
    Source.GCP_AUDIT: "gcp_audit_base.json",
    Source.FALCO: "falco_base.json",
}

RecordBuilder = Callable[[Source, Mapping[str, Any]], dict[str, Any]]


def merge_patch(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``patch`` merged in: objects merge key by key, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = merge_patch(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def base_record(source: Source) -> dict[str, Any]:
    """Return the base record of a source: a realistic record that no rule of the pack matches."""
    loaded: dict[str, Any] = json.loads((FIXTURES / BASE_FILES[source]).read_text())
    return loaded
