"""Writing generated records to the raw topics, as fast as possible or at a fixed rate.

`produce_all` sends a list of records from this process. `paced_producer` runs in a
child process (see `start_paced_producer`): it rebuilds the same records from the
generator's config and seed, sends them at a fixed rate, and reports the wall-clock
time just before each chain-closing record was handed to the client.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aiokafka import AIOKafkaProducer

from pivotwatch.bench.generator import GeneratedRecord, GeneratorConfig, LoadGenerator
from pivotwatch.settings import Settings

__all__ = ["PacedRun", "produce_all", "start_paced_producer"]

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.01
"""A paced producer sends what is due every 10 ms."""


@dataclass(frozen=True, slots=True)
class PacedRun:
    """What a paced producer sent, reported back to the harness."""

    sent: int
    seconds: float
    closing_sent_at: dict[str, float]
    """Event id of each chain-closing record -> ``time.time()`` just before it was sent."""


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
        client_id="pivotwatch-bench",
    )


async def produce_all(
    settings: Settings, records: Sequence[GeneratedRecord], window: int = 20_000
) -> float:
    """Send every record and wait for all acknowledgements; return the seconds it took."""
    topics = settings.topics.raw_topics()
    producer = _producer(settings.kafka.bootstrap)
    await producer.start()
    started = time.perf_counter()
    try:
        for first in range(0, len(records), window):
            futures = [
                await producer.send(topics[record.source.value], value=record.value, key=record.key)
                for record in records[first : first + window]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def _send_paced(
    settings: Settings, records: Sequence[GeneratedRecord], rate: float
) -> PacedRun:
    topics = settings.topics.raw_topics()
    producer = _producer(settings.kafka.bootstrap)
    await producer.start()
    closing: dict[str, float] = {}
    pending: list[asyncio.Future[Any]] = []
    position = 0
    started = time.monotonic()
    try:
        while position < len(records):
            due = min(len(records), int((time.monotonic() - started) * rate) + 1)
            while position < due:
                record = records[position]
                if record.closes_chain:
                    closing[record.event_id] = time.time()
                pending.append(
                    await producer.send(
                        topics[record.source.value], value=record.value, key=record.key
                    )
                )
                position += 1
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending = []
            await asyncio.sleep(TICK_SECONDS)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return PacedRun(sent=position, seconds=time.monotonic() - started, closing_sent_at=closing)


def paced_producer(
    settings: Settings,
    config: GeneratorConfig,
    count: int,
    rate: float,
    ready: Connection,
    result: Connection,
) -> None:
    """Rebuild the records after the inventory and send them at ``rate`` per second (child process).

    Sends ``"ready"`` on ``ready`` once the records are built, waits for ``"go"``, and
    sends the `PacedRun` on ``result`` when done.
    """
    generator = LoadGenerator(config)
    generator.inventory()  # advances the generator's random state as the harness's copy did
    records = list(generator.records(count))
    ready.send("ready")
    ready.recv()
    result.send(asyncio.run(_send_paced(settings, records, rate)))


def start_paced_producer(
    settings: Settings, config: GeneratorConfig, count: int, rate: float
) -> tuple[multiprocessing.process.BaseProcess, Connection, Connection]:
    """Start `paced_producer` in a spawned process; return it with its two pipes."""
    context = multiprocessing.get_context("spawn")
    ready_parent, ready_child = context.Pipe()
    result_parent, result_child = context.Pipe(duplex=False)
    process = context.Process(
        target=paced_producer,
        args=(settings, config, count, rate, ready_child, result_child),
        name="pivotwatch-bench-producer",
        daemon=True,
    )
    process.start()
    return process, ready_parent, result_parent
