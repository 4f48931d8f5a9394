"""Normalization: one source record to normalized events, by the source's mapping tables.

Normalization is a pure function of the record and the `NormalizeContext`, except that
inventory instance records add their host names to ``context.host_accounts`` so that
later Falco alerts and pods on those hosts get the instance's account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, Source
from pivotwatch.schemas.sources import cloudtrail, falco, gcp_audit, inventory
from pivotwatch.schemas.sources.context import UNKNOWN_KEY, NormalizeContext

__all__ = ["UNKNOWN_KEY", "NormalizeContext", "normalize_record"]

logger = logging.getLogger(__name__)

_Normalizer = Callable[[dict[str, Any], NormalizeContext], list[Event]]

_NORMALIZERS: Final[dict[Source, _Normalizer]] = {
    Source.CLOUDTRAIL: cloudtrail.normalize,
    Source.GCP_AUDIT: gcp_audit.normalize,
    Source.FALCO: falco.normalize,
    Source.INVENTORY: inventory.normalize,
}


def normalize_record(
    source: Source, record: dict[str, Any], context: NormalizeContext
) -> list[Event]:
    """Map one decoded source record to its normalized events.

    Returns one event for every source except inventory, where an EC2 reservation gives
    one event per instance (an empty reservation gives none). Each event's ``raw`` is
    the record itself, or for a reservation the instance object. It is not copied, so
    callers must not change the record afterwards.

    Raises:
        MappingError: the record lacks a field the mapping needs or has a field of the
            wrong type. ``event_id`` is set when the record's id could be read.
    """
    if not isinstance(record, dict):
        raise MappingError(
            f"{source} record is a {type(record).__name__}: expected a decoded JSON object"
        )

    events = _NORMALIZERS[source](record, context)

    if source is Source.INVENTORY:
        for event in events:
            context.learn(event)
    return events
