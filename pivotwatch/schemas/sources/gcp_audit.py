"""GCP Cloud Audit Logs mapping: a LogEntry whose ``protoPayload`` is an AuditLog.

Field names follow the LogEntry and AuditLog references
(https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry,
https://cloud.google.com/logging/docs/reference/audit/auditlog/rest/Shared.Types/AuditLog).
"""

from __future__ import annotations

import re
from typing import Any, Final

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, EventKind, Principal, Source
from pivotwatch.schemas.sources.context import UNKNOWN_KEY, NormalizeContext
from pivotwatch.schemas.sources.table import (
    Field,
    JsonObject,
    as_ip,
    as_text,
    as_utc_time,
    first_text,
    lookup,
    map_fields,
)

__all__ = [
    "EVENT_FIELDS",
    "RPC_CODE_NAMES",
    "normalize",
    "project_from_service_account",
    "resolve_principal",
]

_SOURCE: Final = Source.GCP_AUDIT.value
_PAYLOAD: Final = "protoPayload"
_AUTH: Final = (_PAYLOAD, "authenticationInfo")

_LOG_NAME_PROJECT: Final = re.compile(r"projects/([^/]+)/logs/")
_LOG_NAME_PARENT: Final = re.compile(r"((?:organizations|folders|billingAccounts)/[^/]+)/logs/")
_PROJECT_ID: Final = r"([a-z][a-z0-9-]{4,28}[a-z0-9])"
_SERVICE_ACCOUNT_PROJECT: Final = re.compile(rf"@{_PROJECT_ID}\.iam\.gserviceaccount\.com$")
_WORKLOAD_POOL_PROJECT: Final = re.compile(rf"^serviceAccount:{_PROJECT_ID}\.svc\.id\.goog\[")

RPC_CODE_NAMES: Final[dict[int, str]] = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
"""``google.rpc.Code`` names of the non-zero ``protoPayload.status.code`` values."""


def _project_id(value: Any) -> str | None:
    """Accept a project id (``resource.labels.project_id``) or a ``projects/<id>/logs/…`` name."""
    text = as_text(value)
    if "/" not in text:
        return text
    match = _LOG_NAME_PROJECT.match(text)
    return match.group(1) if match else None


def _error_name(code: Any) -> str | None:
    """Return the ``google.rpc.Code`` name of a non-zero status code; 0 is success."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"expected an integer status code, got {type(code).__name__}")
    if code == 0:
        return None
    return RPC_CODE_NAMES.get(code, str(code))


def _read_only(authorization: Any) -> bool | None:
    """Return True when every checked permission is a read, False when any is a write."""
    if not isinstance(authorization, list):
        raise TypeError(f"expected a list, got {type(authorization).__name__}")
    kinds: set[str] = {
        entry["permissionType"]
        for entry in authorization
        if isinstance(entry, dict) and isinstance(entry.get("permissionType"), str)
    }
    if not kinds:
        return None
    return all(kind.endswith("_READ") for kind in kinds)


EVENT_FIELDS: Final[tuple[Field, ...]] = (
    Field("time", (("timestamp",), ("receiveTimestamp",)), as_utc_time, required=True),
    Field("action", ((_PAYLOAD, "methodName"),), as_text, required=True),
    Field("service", ((_PAYLOAD, "serviceName"),), as_text),
    Field(
        "account",
        (("resource", "labels", "project_id"), ("logName",)),
        _project_id,
    ),
    Field(
        "region",
        (
            ("resource", "labels", "location"),
            ("resource", "labels", "zone"),
            ("resource", "labels", "region"),
        ),
        as_text,
    ),
    Field("source_ip", ((_PAYLOAD, "requestMetadata", "callerIp"),), as_ip),
    Field("user_agent", ((_PAYLOAD, "requestMetadata", "callerSuppliedUserAgent"),), as_text),
    Field("error_code", ((_PAYLOAD, "status", "code"),), _error_name),
    Field("read_only", ((_PAYLOAD, "authorizationInfo"),), _read_only),
)


def normalize(record: JsonObject, context: NormalizeContext) -> list[Event]:
    """Map one audit LogEntry to one event keyed by its project.

    An entry without a project (an organization, folder or billing account log) is
    keyed by that parent's resource name, else by ``unknown``.

    Raises:
        MappingError: ``insertId``, the time or ``protoPayload.methodName`` is missing,
            or a mapped field has the wrong type.
    """
    event_id = _read_insert_id(record)
    fields = map_fields(record, EVENT_FIELDS, source=_SOURCE, event_id=event_id)
    key = fields.get("account") or _parent_from_log_name(record) or UNKNOWN_KEY

    return [
        Event(
            source=Source.GCP_AUDIT,
            kind=EventKind.API_CALL,
            event_id=event_id,
            key=key,
            principal=resolve_principal(record),
            raw=record,
            **fields,
        )
    ]


def resolve_principal(record: JsonObject) -> Principal | None:
    """Read the caller from ``authenticationInfo``, or None when it names no principal.

    The id is ``principalEmail``, else ``principalSubject`` (Workload Identity and
    workforce identities can have only a subject). ``delegation`` lists the
    ``serviceAccountDelegationInfo`` entries in the order the log gives them, which is
    the order of the delegation, first delegate first; empty entries are left out.
    """
    email = first_text(record, ((*_AUTH, "principalEmail"),))
    subject = first_text(record, ((*_AUTH, "principalSubject"),))
    principal_id = email or subject
    if principal_id is None:
        return None

    return Principal(
        id=principal_id,
        type=_principal_type(email, subject),
        account=_principal_project(email, subject),
        subject=subject,
        delegation=_read_delegation(lookup(record, (*_AUTH, "serviceAccountDelegationInfo"))),
    )


def _principal_type(email: str | None, subject: str | None) -> str:
    if email is not None and email.endswith(".gserviceaccount.com"):
        return "serviceAccount"
    if subject is not None:
        if _WORKLOAD_POOL_PROJECT.match(subject):
            return "kubernetesServiceAccount"
        if subject.startswith(("principal://", "principalSet://")):
            return "federatedPrincipal"
        prefix, separator, _ = subject.partition(":")
        if separator and prefix.isalpha():
            return prefix
    return "user" if email is not None else "unknown"


def project_from_service_account(email: str) -> str | None:
    """Return the project of a service account email ``<name>@<project>.iam.gserviceaccount.com``.

    Default service accounts (``<number>-compute@developer.gserviceaccount.com``) name
    the project number, not its id, and give None.
    """
    match = _SERVICE_ACCOUNT_PROJECT.search(email)
    return match.group(1) if match else None


def _principal_project(email: str | None, subject: str | None) -> str | None:
    """Return the project id that a service account email or a KSA subject names."""
    if email is not None:
        project = project_from_service_account(email)
        if project is not None:
            return project
    if subject is not None:
        match = _WORKLOAD_POOL_PROJECT.match(subject)
        if match:
            return match.group(1)
    return None


def _read_delegation(entries: Any) -> tuple[str, ...]:
    if not isinstance(entries, list):
        return ()
    delegates: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        delegate = first_text(
            entry,
            (
                ("firstPartyPrincipal", "principalEmail"),
                ("principalSubject",),
                ("thirdPartyPrincipal", "thirdPartyClaims", "sub"),
            ),
        )
        if delegate is not None:
            delegates.append(delegate)
    return tuple(delegates)


def _parent_from_log_name(record: JsonObject) -> str | None:
    log_name = record.get("logName")
    if not isinstance(log_name, str):
        return None
    match = _LOG_NAME_PARENT.match(log_name)
    return match.group(1) if match else None


def _read_insert_id(record: JsonObject) -> str:
    insert_id = record.get("insertId")
    if isinstance(insert_id, str) and insert_id:
        return insert_id
    if insert_id is None:
        raise MappingError(
            f"gcp_audit record has no insertId (logName {record.get('logName')!r}, "
            f"timestamp {record.get('timestamp')!r}): expected a string at insertId"
        )
    raise MappingError(f"gcp_audit record has an invalid insertId {insert_id!r}: expected a string")
