"""Shared fixtures: the Kafka broker and the ../shared folder.

Integration tests use the broker named by ``PIVOTWATCH_TEST_BOOTSTRAP`` (CI starts
Apache Kafka and sets it); without it they start the embedded broker for the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pivotwatch.streams.embedded import EmbeddedBroker

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared samples and scenarios; tests that need them skip where they are absent."""
    if not (SHARED / "DESIGN.md").is_file():
        pytest.skip(f"{SHARED} is absent: only the project's CI checkout has the shared samples")
    return SHARED


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Address of a running Kafka broker."""
    configured = os.environ.get("PIVOTWATCH_TEST_BOOTSTRAP")
    if configured:
        yield configured
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix that keeps one test's topics apart from every other test's."""
    return f"t{uuid.uuid4().hex[:10]}"
