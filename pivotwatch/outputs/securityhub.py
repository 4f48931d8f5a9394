"""Importing alerts into AWS Security Hub as ASFF findings.

`SecurityHubExporter.export` takes alert revisions and imports one finding per chain
with ``BatchImportFindings``:

1. Revisions are reduced to the newest per chain, and a revision not newer than the one
   already imported is skipped, so a redelivered or reordered older revision never
   replaces a newer one. The imported revision of a chain this process has not seen is
   read back from Security Hub (``ProductFields["pivotwatch/revision"]``).
2. Each finding is mapped (`pivotwatch.schemas.asff.asff_finding`) with ``RelatedFindings``
   naming the other pivotwatch findings that share evidence with it, and trimmed under
   240 KB.
3. Findings are sent in batches of at most 100 findings and 6 MB. A throttled call
   (``ThrottlingException``, ``TooManyRequestsException``) is retried with exponential
   backoff and jitter; other errors are raised.
4. Security Hub's ``FailedFindings`` are logged and returned one by one; the others count
   as imported.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from pivotwatch.errors import PivotwatchError
from pivotwatch.schemas.alert import Alert
from pivotwatch.schemas.asff import (
    AsffContext,
    asff_finding,
    default_product_arn,
    finding_size,
    fit_finding,
)

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_FINDINGS",
    "FailedFinding",
    "ImportResult",
    "SecurityHubError",
    "SecurityHubExporter",
    "batch_findings",
]

logger = logging.getLogger(__name__)

MAX_BATCH_FINDINGS = 100
MAX_BATCH_BYTES = 6 * 1024 * 1024
THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException"})
ID_FILTER_VALUES = 10
"""Chain ids per GetFindings call when revisions are read back.

NOTE: a small, assumed bound on the values of one ``Id`` filter; the exact AWS limit was
not checked.
"""
MAX_EVIDENCE_INDEX = 100_000
"""Evidence ids remembered for ``RelatedFindings``; the oldest are forgotten first."""


class SecurityHubError(PivotwatchError):
    """A Security Hub call failed for a reason other than one finding's content."""


@dataclass(frozen=True, slots=True)
class FailedFinding:
    """A finding that Security Hub rejected, or that could not be made small enough."""

    id: str
    error_code: str
    message: str


@dataclass
class ImportResult:
    """Counts and failures of one `SecurityHubExporter.export` call."""

    imported: int = 0
    skipped_stale: int = 0
    """Revisions not newer than the one already imported for their chain."""
    failed: list[FailedFinding] = field(default_factory=list)
    throttled: int = 0
    """Throttled calls that were retried."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of throttled calls: ``base_seconds * 2**attempt`` with full jitter, capped."""

    max_attempts: int = 8
    base_seconds: float = 0.5
    max_seconds: float = 20.0


def batch_findings(
    findings: Sequence[dict[str, Any]],
    max_findings: int = MAX_BATCH_FINDINGS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> list[list[dict[str, Any]]]:
    """Split findings into batches of at most ``max_findings`` findings and ``max_bytes``."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_bytes = 0
    for finding in findings:
        size = finding_size(finding)
        if current and (len(current) >= max_findings or current_bytes + size > max_bytes):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(finding)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


class SecurityHubExporter:
    """Imports alert revisions into Security Hub, one finding per chain."""

    def __init__(
        self,
        client: Any,
        *,
        account_id: str,
        region: str,
        partition: str = "aws",
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Use ``client``, a boto3 Security Hub client of ``account_id`` in ``region``.

        ``clock`` gives each finding's ``UpdatedAt`` (default: now, in UTC); ``sleep``
        waits between retries.
        """
        self.client = client
        self.account_id = account_id
        self.region = region
        self.partition = partition
        self.retry = retry or RetryPolicy()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.revisions: dict[str, int] = {}
        """Imported revision of each chain id."""
        self._evidence_findings: OrderedDict[str, set[str]] = OrderedDict()

    @property
    def product_arn(self) -> str:
        return default_product_arn(self.region, self.account_id, self.partition)

    def export(self, alerts: Iterable[Alert]) -> ImportResult:
        """Import the newest revision of each chain in ``alerts``; see the module docstring."""
        result = ImportResult()

        # 1. Newest revision per chain, and only if newer than what was imported.
        newest = _newest_revisions(alerts, result)
        self._load_revisions([chain_id for chain_id in newest if chain_id not in self.revisions])
        fresh = [
            alert
            for chain_id, alert in newest.items()
            if alert.revision > self.revisions.get(chain_id, 0)
        ]
        result.skipped_stale += len(newest) - len(fresh)

        # 2. Map and trim.
        findings: list[dict[str, Any]] = []
        by_id: dict[str, Alert] = {}
        for alert in fresh:
            finding = self._finding(alert, result)
            if finding is not None:
                findings.append(finding)
                by_id[alert.chain_id] = alert

        # 3. and 4. Import in batches and record what Security Hub accepted.
        for batch in batch_findings(findings):
            failed_ids = self._import_batch(batch, result)
            for finding in batch:
                if finding["Id"] not in failed_ids:
                    self._remember(by_id[finding["Id"]])
                    result.imported += 1
        return result

    def _finding(self, alert: Alert, result: ImportResult) -> dict[str, Any] | None:
        context = AsffContext(
            account_id=self.account_id,
            region=self.region,
            updated_at=self.clock(),
            partition=self.partition,
            related_ids=tuple(self._related_ids(alert)),
        )
        finding = fit_finding(asff_finding(alert, context))
        if finding is None:
            failure = FailedFinding(
                alert.chain_id, "FindingTooLarge", "finding exceeds 240 KB even without evidence"
            )
            logger.error(
                "chain %s revision %d not imported: %s",
                alert.chain_id,
                alert.revision,
                failure.message,
            )
            result.failed.append(failure)
        return finding

    def _import_batch(self, batch: list[dict[str, Any]], result: ImportResult) -> set[str]:
        """Send one batch, retrying throttled calls; return the ids that Security Hub rejected."""
        response = self._call_with_backoff("BatchImportFindings", result, Findings=batch)
        failed_ids: set[str] = set()
        for failure in response.get("FailedFindings", []):
            item = FailedFinding(
                failure.get("Id", ""), failure.get("ErrorCode", ""), failure.get("ErrorMessage", "")
            )
            logger.error(
                "Security Hub rejected finding %s: %s %s", item.id, item.error_code, item.message
            )
            result.failed.append(item)
            failed_ids.add(item.id)
        logger.info(
            "imported %d of %d findings into %s",
            response.get("SuccessCount", 0),
            len(batch),
            self.product_arn,
        )
        return failed_ids

    def _call_with_backoff(
        self, operation: str, result: ImportResult, **request: Any
    ) -> dict[str, Any]:
        method = getattr(self.client, _snake_case(operation))
        for attempt in range(self.retry.max_attempts):
            try:
                response: dict[str, Any] = method(**request)
                return response
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in THROTTLING_CODES:
                    raise SecurityHubError(f"Security Hub {operation} failed: {error}") from error
                if attempt + 1 == self.retry.max_attempts:
                    raise SecurityHubError(
                        f"Security Hub {operation} still throttled ({code}) "
                        f"after {attempt + 1} attempts; "
                        "retry later or lower the export rate"
                    ) from error
                delay = random.uniform(
                    0, min(self.retry.max_seconds, self.retry.base_seconds * 2**attempt)
                )
                logger.warning(
                    "Security Hub %s throttled (%s), attempt %d of %d; retrying in %.2f s",
                    operation,
                    code,
                    attempt + 1,
                    self.retry.max_attempts,
                    delay,
                )
                result.throttled += 1
                self.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _load_revisions(self, chain_ids: list[str]) -> None:
        """Read the imported revision of chains not seen by this process from Security Hub."""
        wanted = sorted(set(chain_ids))
        for start in range(0, len(wanted), ID_FILTER_VALUES):
            self._load_revision_chunk(set(wanted[start : start + ID_FILTER_VALUES]))

    def _load_revision_chunk(self, wanted: set[str]) -> None:
        filters = {
            "ProductArn": [{"Value": self.product_arn, "Comparison": "EQUALS"}],
            "Id": [{"Value": chain_id, "Comparison": "EQUALS"} for chain_id in sorted(wanted)],
        }
        paginator = self.client.get_paginator("get_findings")
        try:
            for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": 100}):
                for finding in page.get("Findings", []):
                    self._note_revision(finding, wanted)
        except ClientError as error:
            raise SecurityHubError(f"Security Hub GetFindings failed: {error}") from error

    def _note_revision(self, finding: dict[str, Any], wanted: set[str]) -> None:
        chain_id = finding.get("Id")
        revision = finding.get("ProductFields", {}).get("pivotwatch/revision", "")
        if chain_id in wanted and revision.isdigit():
            self.revisions[chain_id] = max(self.revisions.get(chain_id, 0), int(revision))

    def _related_ids(self, alert: Alert) -> list[str]:
        related: dict[str, None] = {}
        for item in alert.evidence:
            for chain_id in self._evidence_findings.get(item.event_id, ()):
                if chain_id != alert.chain_id:
                    related[chain_id] = None
        return list(related)

    def _remember(self, alert: Alert) -> None:
        self.revisions[alert.chain_id] = alert.revision
        for item in alert.evidence:
            chains = self._evidence_findings.setdefault(item.event_id, set())
            chains.add(alert.chain_id)
            self._evidence_findings.move_to_end(item.event_id)
        while len(self._evidence_findings) > MAX_EVIDENCE_INDEX:
            self._evidence_findings.popitem(last=False)


def _newest_revisions(alerts: Iterable[Alert], result: ImportResult) -> dict[str, Alert]:
    newest: dict[str, Alert] = {}
    for alert in alerts:
        known = newest.get(alert.chain_id)
        if known is None or alert.revision > known.revision:
            if known is not None:
                result.skipped_stale += 1
            newest[alert.chain_id] = alert
        else:
            result.skipped_stale += 1
    return newest


def _snake_case(operation: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in operation).lstrip("_")
