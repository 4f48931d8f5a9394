"""The faust agents through faust's agent test context, without a broker.

The agents' output topics are replaced by a recorder, because the test context feeds an
agent in memory but the agent's own sends would still go to Kafka; the same paths run
against a real broker in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from pivotwatch.schemas.event import EventBatch, Source
from pivotwatch.settings import load_settings
from pivotwatch.streams.app import AGENT_CORRELATE, AGENT_NORMALIZE, Pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class RecordingTopic:
    """Stands in for a faust topic: keeps what is sent and acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> asyncio.Future[None]:
        self.sent.append(message)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipeline = Pipeline(load_settings(worker={"batch_seconds": 0.05}))
    pipeline.events_topic = RecordingTopic()  # type: ignore[assignment]
    pipeline.dead_letter_topic = RecordingTopic()  # type: ignore[assignment]
    pipeline.alerts_topic = RecordingTopic()  # type: ignore[assignment]
    yield pipeline


def cloudtrail_record() -> bytes:
    path = next((FIXTURES / "cloudtrail").glob("*.json"))
    document = orjson.loads(path.read_bytes())
    records = (
        document["Records"] if isinstance(document, dict) and "Records" in document else document
    )
    record = records[0] if isinstance(records, list) else records
    return orjson.dumps(record)


async def run_agent(pipeline: Pipeline, name: str, values: list[bytes]) -> None:
    agent = pipeline.app.agents[name]
    async with agent.test_context() as context:
        for value in values:
            await context.put(value, key=b"key")
        await asyncio.sleep(0.3)


def test_normalize_agent_routes_and_dead_letters(pipeline: Pipeline) -> None:
    # The test context delivers on an internal channel; route it as the CloudTrail topic.
    pipeline.normalizer.sources = {"<internal>": Source.CLOUDTRAIL}
    good = cloudtrail_record()

    asyncio.run(run_agent(pipeline, AGENT_NORMALIZE, [b'{"truncated": ', good]))

    dead = pipeline.dead_letter_topic.sent  # type: ignore[attr-defined]
    events = pipeline.events_topic.sent  # type: ignore[attr-defined]
    assert len(dead) == 1
    assert dead[0]["value"] == b'{"truncated": '
    headers = dict(dead[0]["headers"])
    assert headers["pivotwatch.source.topic"] == b"<internal>"
    assert (
        b"JSON" in headers["pivotwatch.error.reason"]
        or b"json" in headers["pivotwatch.error.reason"]
    )
    assert len(events) == 1
    batch = msgspec.json.decode(events[0]["value"], type=EventBatch)
    assert batch.events[0].event_id == orjson.loads(good)["eventID"]
    assert events[0]["key"] == batch.key.encode()


def test_correlate_agent_skips_invalid_batches(pipeline: Pipeline) -> None:
    asyncio.run(
        run_agent(pipeline, AGENT_CORRELATE, [b"not an event batch", b'{"key": "k", "events": []}'])
    )

    assert pipeline.counts["correlate.invalid"] == 1
    assert pipeline.alerts_topic.sent == []  # type: ignore[attr-defined]
