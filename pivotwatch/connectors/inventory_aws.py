"""EC2 inventory: ``DescribeInstances`` in every configured region, one record per reservation.

A reservation carries the owning account (``OwnerId``), which is the record's key,
like ``aws ec2 describe-instances`` output split by `pivotwatch replay`. The region
list ``["*"]`` means every region enabled in the account (``DescribeRegions``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson

from pivotwatch.connectors.aws import aws_client
from pivotwatch.connectors.delivery import OutgoingRecord
from pivotwatch.settings import AwsSettings

__all__ = ["ALL_REGIONS", "Ec2InstanceSource"]

logger = logging.getLogger(__name__)

ALL_REGIONS = "*"
PAGE_SIZE = 1000


class Ec2InstanceSource:
    """Lists EC2 reservations, region by region."""

    name = "ec2"

    def __init__(self, aws: AwsSettings, regions: list[str], topic: str) -> None:
        self._aws = aws
        self._regions = regions
        self._topic = topic

    def records(self) -> Iterator[OutgoingRecord]:
        for region in self.resolve_regions():
            count = 0
            ec2 = aws_client("ec2", self._aws, region=region)
            pages = ec2.get_paginator("describe_instances").paginate(
                PaginationConfig={"PageSize": PAGE_SIZE}
            )
            for page in pages:
                for reservation in page.get("Reservations", []):
                    count += 1
                    yield self._record(reservation)
            logger.debug("ec2: %d reservations in %s", count, region)

    def _record(self, reservation: dict[str, Any]) -> OutgoingRecord:
        owner = reservation.get("OwnerId")
        key = owner.encode() if isinstance(owner, str) and owner else None
        return OutgoingRecord(self._topic, key, orjson.dumps(reservation))

    def resolve_regions(self) -> list[str]:
        """Return the configured regions, with ``*`` expanded to the account's enabled ones."""
        if ALL_REGIONS not in self._regions:
            return list(self._regions)
        ec2 = aws_client("ec2", self._aws)
        response = ec2.describe_regions(AllRegions=False)
        regions = sorted(region["RegionName"] for region in response["Regions"])
        logger.debug("ec2: enabled regions %s", ", ".join(regions))
        return regions
