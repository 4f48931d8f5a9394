"""Every worker's view of the whole inventory, for keying Falco alerts by account.

A Falco alert names its host, not its cloud account; the account comes from the host's
EC2 or GCE instance in the inventory. Inventory records reach the raw inventory topic on
any partition, and a worker's consumer group owns only some of them, but every worker
must know every host. So each worker also reads the whole inventory topic, outside the
consumer group, from the beginning and then as records arrive, and teaches the
normalizer's context each host it reads.

NOTE: faust-streaming's GlobalTable is the library's tool for this. With faust-streaming
0.15 a worker that restarted with a non-empty GlobalTable stopped delivering raw records
to its agent, so this module reads the topic with kafka-python instead.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from pivotwatch.connectors.producer import kafka_client_config
from pivotwatch.errors import RecordError
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.settings import Settings

__all__ = ["InventoryDirectory"]

logger = logging.getLogger(__name__)


class InventoryDirectory:
    """A background reader of the whole raw inventory topic.

    `start` returns once every record present at start has been read (or the timeout
    passed, which is logged); later records are read within about a second of arriving.
    """

    def __init__(self, settings: Settings, context: NormalizeContext) -> None:
        self.settings = settings
        self.context = context
        self.records = 0
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> None:
        self._thread = threading.Thread(target=self._run, name="pivotwatch-inventory", daemon=True)
        self._thread.start()
        if not self._caught_up.wait(timeout):
            logger.warning("inventory directory not caught up after %.0f s; going on", timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        topic = self.settings.topics.inventory
        while not self._stop.is_set():
            try:
                self._follow(topic)
            except KafkaError as error:
                logger.warning(
                    "reading inventory topic %s failed, retrying in 2 s: %s", topic, error
                )
                self._stop.wait(2)

    def _follow(self, topic: str) -> None:
        consumer = KafkaConsumer(
            **kafka_client_config(self.settings.kafka), enable_auto_commit=False
        )
        try:
            partitions = self._partitions(consumer, topic)
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            targets = consumer.end_offsets(partitions)
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self._learn(record.value)
                if not self._caught_up.is_set() and all(
                    consumer.position(tp) >= end for tp, end in targets.items()
                ):
                    logger.info(
                        "inventory directory caught up: %d records, %d host names",
                        self.records,
                        len(self.context.host_accounts),
                    )
                    self._caught_up.set()
        finally:
            consumer.close()

    def _partitions(self, consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
        deadline = time.monotonic() + 30
        while True:
            found = consumer.partitions_for_topic(topic)
            if found:
                return [TopicPartition(topic, partition) for partition in sorted(found)]
            if time.monotonic() > deadline or self._stop.is_set():
                raise KafkaError(f"topic {topic} has no partitions")
            time.sleep(0.5)

    def _learn(self, value: bytes | None) -> None:
        if not value:
            return
        try:
            framed = split_message(Source.INVENTORY, value)
            for record in framed.records:
                normalize_record(Source.INVENTORY, record, self.context)
        except RecordError:
            return  # the normalize agent sends the record to the dead-letter topic
        self.records += 1
