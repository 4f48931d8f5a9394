"""What a cloud call touched: the resource name read from the record."""

from __future__ import annotations

from pivotwatch.correlator.links import dig
from pivotwatch.schemas.event import Event, Source

__all__ = ["resource_of"]

# CloudTrail requestParameters fields that name the resource, most specific first.
_CLOUDTRAIL_NAME_FIELDS = (
    "secretId",
    "name",
    "trailName",
    "detectorId",
    "functionName",
    "userName",
    "roleName",
    "policyArn",
    "snapshotId",
    "imageId",
    "groupId",
)


def resource_of(event: Event) -> str | None:
    """Return a name for what the call touched, or None when the record names nothing."""
    if event.source is Source.GCP_AUDIT:
        name = dig(event.raw, "protoPayload", "resourceName")
        return name if isinstance(name, str) and name else None
    if event.source is not Source.CLOUDTRAIL:
        return None
    parameters = event.raw.get("requestParameters")
    if isinstance(parameters, dict):
        bucket = parameters.get("bucketName")
        if isinstance(bucket, str):
            key = parameters.get("key")
            return f"s3://{bucket}/{key}" if isinstance(key, str) else f"s3://{bucket}"
        for field in _CLOUDTRAIL_NAME_FIELDS:
            value = parameters.get(field)
            if isinstance(value, str) and value:
                return f"{event.service or 'aws'}:{value}"
    resources = event.raw.get("resources")
    if isinstance(resources, list):
        for resource in resources:
            arn = dig(resource, "ARN")
            if isinstance(arn, str):
                return arn
    return None
