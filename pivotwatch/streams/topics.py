"""Creation of the topics pivotwatch reads and writes."""

from __future__ import annotations

import contextlib
import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pivotwatch.errors import BrokerError
from pivotwatch.settings import Settings

__all__ = ["all_topic_names", "ensure_topics"]

logger = logging.getLogger(__name__)


def all_topic_names(settings: Settings) -> list[str]:
    """Return every topic name in the settings, raw topics first."""
    topics = settings.topics
    return [
        *topics.raw_topics().values(),
        topics.events,
        topics.alerts,
        topics.dead_letter,
    ]


def ensure_topics(settings: Settings, names: list[str] | None = None) -> None:
    """Create the topics that do not exist yet, with the configured partitions.

    Existing topics are left as they are, whatever their partition count.
    """
    wanted = names if names is not None else all_topic_names(settings)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka.bootstrap,
            client_id=f"{settings.kafka.client_id}-admin",
            request_timeout_ms=15000,
        )
    except KafkaError as error:
        raise BrokerError(
            f"cannot reach the Kafka broker at {settings.kafka.bootstrap}: {error}; "
            "start it, or set PIVOTWATCH_KAFKA__BOOTSTRAP"
        ) from error
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return
        new_topics = [
            NewTopic(
                name=name,
                num_partitions=settings.topics.partitions,
                replication_factor=settings.topics.replication_factor,
            )
            for name in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another process created them first
            admin.create_topics(new_topics)
        logger.info("created topics %s", ", ".join(missing))
    finally:
        admin.close()
