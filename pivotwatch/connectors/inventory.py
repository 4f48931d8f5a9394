"""Inventory polling: list assets on an interval and publish one record per asset.

Each `InventorySource` lists one kind of asset (EC2 reservations, GCE instances,
Kubernetes pods and service accounts) in the API's own JSON, one record per asset,
the format that `pivotwatch replay` reads from ``aws ec2 describe-instances``,
``gcloud compute instances list --format=json`` and ``kubectl get -o json`` output.
`run_inventory` polls every configured source, delivers the records in batches and
sleeps ``interval_seconds``. A poll that fails (API or Kafka) is retried after a
backoff delay instead of the full interval. Records of a failed poll may have been
delivered in part, and the next poll sends them again. That is harmless because the
correlator keys its inventory by asset, so a repeat replaces the earlier record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from pivotwatch.connectors.delivery import (
    Backoff,
    ConnectorCounters,
    KafkaDelivery,
    OutgoingRecord,
)
from pivotwatch.connectors.metrics_endpoint import serving_metrics
from pivotwatch.errors import BrokerError, ConfigurationError
from pivotwatch.settings import Settings

__all__ = [
    "CONNECTOR",
    "DELIVERY_BATCH",
    "InventorySource",
    "configured_sources",
    "poll_once",
    "run",
    "run_inventory",
]

logger = logging.getLogger(__name__)

CONNECTOR = "inventory"
DELIVERY_BATCH = 500
"""Records sent before waiting for Kafka's acknowledgements."""


class InventorySource(Protocol):
    """One API that lists assets."""

    name: str

    def records(self) -> Iterator[OutgoingRecord]:
        """Yield one record per asset; raise on an API failure."""
        ...


def poll_once(source: InventorySource, delivery: KafkaDelivery, counters: ConnectorCounters) -> int:
    """List every asset of ``source``, deliver them and return how many were delivered.

    Raises:
        BrokerError: Kafka did not acknowledge a batch.
        Exception: whatever the API client raised.
    """
    counters.add("received")
    batch: list[OutgoingRecord] = []
    delivered = 0
    for record in source.records():
        batch.append(record)
        if len(batch) >= DELIVERY_BATCH:
            delivered += _deliver(batch, delivery, counters)
            batch = []
    delivered += _deliver(batch, delivery, counters)
    counters.add("acked")
    return delivered


def _deliver(
    batch: list[OutgoingRecord], delivery: KafkaDelivery, counters: ConnectorCounters
) -> int:
    counters.add("records_in", len(batch))
    delivery.deliver(batch)
    return len(batch)


def run_inventory(
    settings: Settings,
    sources: Sequence[InventorySource],
    stop: threading.Event,
    counters: ConnectorCounters | None = None,
) -> ConnectorCounters:
    """Poll ``sources`` every ``interval_seconds`` until ``stop`` is set; return the counters.

    Also serves ``/metrics`` when ``connectors.metrics_port`` is set.

    Raises:
        ConfigurationError: the metrics port cannot be bound.
    """
    counters = counters if counters is not None else ConnectorCounters(CONNECTOR)
    interval = settings.connectors.inventory.interval_seconds
    backoff = Backoff.from_settings(settings.connectors.delivery)
    delivery = KafkaDelivery(settings, counters)
    logger.info(
        "%s connector polling %s every %.0f s",
        CONNECTOR,
        ", ".join(source.name for source in sources),
        interval,
    )
    try:
        with serving_metrics(settings.connectors, counters):
            while not stop.is_set():
                failed = _poll_all(sources, delivery, counters)
                pause = backoff.next_delay() if failed else interval
                if not failed:
                    backoff.reset()
                stop.wait(pause)
    finally:
        delivery.close()
    logger.info("%s connector stopped: %s", CONNECTOR, counters.snapshot())
    return counters


def _poll_all(
    sources: Sequence[InventorySource], delivery: KafkaDelivery, counters: ConnectorCounters
) -> bool:
    """Poll each source once; return whether any poll failed."""
    failed = False
    for source in sources:
        started = time.monotonic()
        try:
            count = poll_once(source, delivery, counters)
        except BrokerError as error:
            logger.error("%s: %s records were not delivered: %s", CONNECTOR, source.name, error)
            failed = True
            continue
        except Exception as error:  # an API failure of one source must not stop the others
            logger.error("%s: listing %s failed: %r", CONNECTOR, source.name, error)
            counters.add("errors")
            failed = True
            continue
        logger.info(
            "%s: delivered %d %s records in %.1f s",
            CONNECTOR,
            count,
            source.name,
            time.monotonic() - started,
        )
    return failed


def configured_sources(settings: Settings) -> list[InventorySource]:
    """Build a source for each configured API: EC2 regions, GCE projects, Kubernetes URL.

    Raises:
        ConfigurationError: the Kubernetes URL is set without a token file.
    """
    from pivotwatch.connectors.inventory_aws import Ec2InstanceSource
    from pivotwatch.connectors.inventory_gcp import GceInstanceSource
    from pivotwatch.connectors.inventory_k8s import KubernetesSource

    inventory = settings.connectors.inventory
    topic = settings.topics.inventory
    sources: list[InventorySource] = []
    if inventory.aws_regions:
        sources.append(Ec2InstanceSource(settings.connectors.aws, inventory.aws_regions, topic))
    if inventory.gcp_projects:
        sources.append(GceInstanceSource(inventory.gcp_projects, inventory.gce_endpoint, topic))
    if inventory.kubernetes_api_url:
        sources.append(KubernetesSource(inventory, topic))
    return sources


def run(
    settings: Settings, stop: threading.Event, counters: ConnectorCounters | None = None
) -> ConnectorCounters:
    """Poll every configured source until ``stop`` is set and return the counters.

    Raises:
        ConfigurationError: no source is configured, or one is configured incompletely.
    """
    sources = configured_sources(settings)
    if not sources:
        raise ConfigurationError(
            "no inventory source is configured: set aws_regions, gcp_projects or kubernetes_api_url"
        )
    return run_inventory(settings, sources, stop, counters)
