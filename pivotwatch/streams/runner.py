"""Running a worker in-process and waiting until it has processed what was sent.

`running_worker` starts the faust worker of a `Pipeline` as a task of the current
event loop. `wait_until_processed` compares the end offsets of topics with the
offsets the worker's consumer group has committed, so it works the same for a
worker in this process and one in another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pivotwatch.connectors.producer import kafka_client_config
from pivotwatch.errors import BrokerError
from pivotwatch.settings import Settings
from pivotwatch.streams.app import Pipeline

__all__ = ["OffsetWatcher", "read_topic", "running_worker"]

logger = logging.getLogger(__name__)


@asynccontextmanager
async def running_worker(
    pipeline: Pipeline, start_timeout: float = 60.0
) -> AsyncIterator[Pipeline]:
    """Run the pipeline's faust worker in this event loop until the block exits."""
    worker = faust.Worker(
        pipeline.app,
        loop=asyncio.get_running_loop(),
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.spinner = None  # faust draws a terminal spinner otherwise, even when quiet
    await asyncio.to_thread(pipeline.start_directory)
    task = asyncio.ensure_future(worker.start())
    try:
        await _wait_for_assignment(pipeline, task, start_timeout)
        yield pipeline
    finally:
        await worker.stop()
        await asyncio.to_thread(pipeline.stop_directory)
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception) as error:
            if not isinstance(error, asyncio.CancelledError):
                logger.debug("worker task ended with %r", error)


async def _wait_for_assignment(
    pipeline: Pipeline, task: asyncio.Future[Any], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if task.done():
            error = task.exception()
            raise BrokerError(f"the worker stopped while starting: {error!r}")
        try:
            assignment = pipeline.app.consumer.assignment()
        except ConsumerNotStarted:
            assignment = set()
        if assignment and not pipeline.app.rebalancing:
            return
        await asyncio.sleep(0.2)
    raise BrokerError(
        f"the worker got no partitions within {timeout:.0f} s; is the broker at "
        f"{pipeline.settings.kafka.bootstrap} running?"
    )


class OffsetWatcher:
    """Compares a consumer group's committed offsets with the topics' end offsets."""

    def __init__(self, settings: Settings) -> None:
        config = kafka_client_config(settings.kafka)
        self.group = settings.worker.app_id
        self.admin = KafkaAdminClient(**config)
        self.consumer = KafkaConsumer(**config, enable_auto_commit=False)

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()

    def end_offsets(self, topics: Iterable[str]) -> dict[TopicPartition, int]:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        return {
            tp: offset for tp, offset in self.consumer.end_offsets(partitions).items() if offset > 0
        }

    def lagging(self, targets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Return the partitions whose committed offset is still below the target."""
        committed = self.admin.list_group_offsets({self.group: list(targets)}).get(self.group, {})
        lag = {}
        for tp, target in targets.items():
            done = committed.get(tp)
            position = done.offset if done is not None else 0
            if position < target:
                lag[tp] = target - position
        return lag

    async def wait(self, topics: Iterable[str], timeout: float) -> None:
        """Wait until the group has committed everything now in ``topics``."""
        targets = self.end_offsets(topics)
        deadline = time.monotonic() + timeout
        while True:
            lag = self.lagging(targets)
            if not lag:
                return
            if time.monotonic() > deadline:
                described = ", ".join(
                    f"{tp.topic}[{tp.partition}]: {count}" for tp, count in lag.items()
                )
                raise BrokerError(
                    f"the worker did not process every record within {timeout:.0f} s; "
                    f"left: {described}"
                )
            await asyncio.sleep(0.25)


def read_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list[bytes]:
    """Read every message now in ``topic``, from the beginning, and return the values."""
    consumer = KafkaConsumer(**kafka_client_config(settings.kafka), enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise BrokerError(f"reading topic {topic} timed out after {timeout:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(record.value for record in records)
        return values
    finally:
        consumer.close()
