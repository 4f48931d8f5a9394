"""boto3 clients for the AWS connectors.

Credentials come from boto3's standard chain (environment, shared files, web identity,
container and instance roles); pivotwatch never reads or logs them. ``endpoint_url``
replaces every service endpoint, for VPC endpoints or a local test server.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from pivotwatch.settings import AwsSettings

__all__ = ["aws_client"]


def aws_client(
    service: str,
    aws: AwsSettings,
    *,
    region: str | None = None,
    read_timeout: float = 60.0,
    max_pool_connections: int = 10,
) -> Any:
    """Return a boto3 client for ``service`` with standard retries and the configured endpoint.

    ``region`` overrides the configured region, for pollers that walk several regions.
    ``read_timeout`` must be longer than an SQS long-poll wait.
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": aws.max_attempts},
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
    )
    session = boto3.session.Session()
    return session.client(
        service,
        region_name=region or aws.region,
        endpoint_url=aws.endpoint_url,
        config=config,
    )
