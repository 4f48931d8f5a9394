"""The ``/metrics`` endpoint of a live connector.

A connector serves the registry of its `ConnectorCounters` while it runs, when
``connectors.metrics_port`` is set. ``pivotwatch connect`` always sets it, to the
connector's own default port unless the setting or ``--metrics-port`` chooses one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.errors import ConfigurationError
from pivotwatch.settings import ConnectorSettings
from pivotwatch.streams.metrics import MetricsServer, serve_metrics

__all__ = ["serving_metrics"]

logger = logging.getLogger(__name__)


@contextmanager
def serving_metrics(
    connectors: ConnectorSettings, counters: ConnectorCounters
) -> Iterator[MetricsServer | None]:
    """Serve ``counters.registry`` on ``/metrics`` for the duration of the block.

    Yields the running server, or ``None`` when ``connectors.metrics_port`` is unset.

    Raises:
        ConfigurationError: the address and port cannot be bound (in use, or not an
            address of this host).
    """
    port = connectors.metrics_port
    if port is None:
        yield None
        return

    try:
        server = serve_metrics(counters.registry, port, connectors.metrics_address)
    except OSError as error:
        raise ConfigurationError(
            f"{counters.connector} cannot serve metrics on {connectors.metrics_address}:{port}: "
            f"{error.strerror or error}; choose another port with --metrics-port or "
            "PIVOTWATCH_CONNECTORS__METRICS_PORT"
        ) from error
    try:
        yield server
    finally:
        server.close()
        logger.debug("%s: stopped serving metrics", counters.connector)
