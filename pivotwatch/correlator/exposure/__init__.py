"""Transient exposures: risky configuration changes that are reverted within minutes.

An exposure opened and closed between two periodic configuration scans is never seen by
them. `ExposureTracker` pairs the change and the revert from the audit log in event
time, and `exposure_alert` turns each pair into a ``transient_exposure`` alert. The
extractors read EC2 security groups (`security_groups`), S3 buckets (`s3`) and GCP IAM
policies (`gcp`).
"""

from pivotwatch.correlator.exposure.alert import CRITICAL_AFTER, exposure_alert, exposure_chain_id
from pivotwatch.correlator.exposure.extract import extract_transitions
from pivotwatch.correlator.exposure.model import Direction, Facet, TransientExposure, Transition
from pivotwatch.correlator.exposure.tracker import ExposureTracker

__all__ = [
    "CRITICAL_AFTER",
    "Direction",
    "ExposureTracker",
    "Facet",
    "TransientExposure",
    "Transition",
    "exposure_alert",
    "exposure_chain_id",
    "extract_transitions",
]
