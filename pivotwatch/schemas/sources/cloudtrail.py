"""AWS CloudTrail record mapping: field table and principal table per ``userIdentity.type``.

Record fields follow the CloudTrail record contents reference
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html)
and its ``userIdentity`` element page. Real records differ from the reference in ways
the tables allow for: a log shipper may replace ``eventTime`` with ``@timestamp``,
``AwsServiceEvent`` records can carry a ``userIdentity`` without ``type``, and
``requestParameters`` / ``responseElements`` are often null.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, EventKind, Principal, Source
from pivotwatch.schemas.sources.context import NormalizeContext
from pivotwatch.schemas.sources.table import (
    Field,
    JsonObject,
    Path,
    as_bool,
    as_documented_utc_time,
    as_ip,
    as_text,
    first_text,
    map_fields,
)

__all__ = ["EVENT_FIELDS", "INSIGHT_FIELDS", "PRINCIPAL_RULES", "PrincipalRule", "normalize"]

_SOURCE: Final = Source.CLOUDTRAIL.value
_UI: Final = "userIdentity"
_ISSUER: Final[Path] = (_UI, "sessionContext", "sessionIssuer")

EVENT_FIELDS: Final[tuple[Field, ...]] = (
    # CloudTrail documents eventTime as UTC, so a value without an offset is UTC.
    Field("time", (("eventTime",), ("@timestamp",)), as_documented_utc_time, required=True),
    Field("action", (("eventName",),), as_text, required=True),
    Field("service", (("eventSource",),), as_text),
    Field("account", (("recipientAccountId",), (_UI, "accountId")), as_text, required=True),
    Field("region", (("awsRegion",),), as_text),
    Field("source_ip", (("sourceIPAddress",),), as_ip),
    Field("user_agent", (("userAgent",),), as_text),
    Field("error_code", (("errorCode",),), as_text),
    Field("read_only", (("readOnly",),), as_bool),
)
"""Fields of API calls and service events."""

INSIGHT_FIELDS: Final[tuple[Field, ...]] = (
    Field("time", (("eventTime",), ("@timestamp",)), as_documented_utc_time, required=True),
    Field("action", (("insightDetails", "eventName"), ("eventName",)), as_text, required=True),
    Field("service", (("insightDetails", "eventSource"), ("eventSource",)), as_text),
    Field("account", (("recipientAccountId",),), as_text, required=True),
    Field("region", (("awsRegion",),), as_text),
)
"""Fields of CloudTrail Insights events, which name the API they measure in ``insightDetails``."""

_KIND_BY_EVENT_TYPE: Final[dict[str, EventKind]] = {
    "AwsServiceEvent": EventKind.SERVICE_EVENT,
    "AwsCloudTrailInsight": EventKind.INSIGHT,
}
"""``eventType`` values that are not calls. Every other value (``AwsApiCall``,
``AwsConsoleSignIn``, ``AwsVpceEvent``) is API_CALL."""


# -- principal table -------------------------------------------------------------------------


def _session_name_from_arn(arn: Any) -> str | None:
    """Return the session of ``…:assumed-role/<role>/<session>`` or ``…:federated-user/<name>``."""
    text = as_text(arn)
    if ":assumed-role/" in text or ":federated-user/" in text:
        return text.rsplit("/", 1)[-1] or None
    return None


def _session_name_from_principal_id(principal_id: Any) -> str | None:
    """Return ``<session>`` of a role session's ``principalId`` ``AROA…:<session>``."""
    _, separator, session = as_text(principal_id).partition(":")
    return session if separator and session else None


def _session_name(value: Any) -> str | None:
    text = as_text(value)
    if text.startswith("arn:"):
        return _session_name_from_arn(text)
    return _session_name_from_principal_id(text)


def _root_arn(record: JsonObject) -> str | None:
    account = first_text(record, ((_UI, "accountId"), ("recipientAccountId",)))
    return f"arn:aws:iam::{account}:root" if account else None


def _user_arn(record: JsonObject) -> str | None:
    account = first_text(record, ((_UI, "accountId"), ("recipientAccountId",)))
    user = first_text(record, ((_UI, "userName"),))
    return f"arn:aws:iam::{account}:user/{user}" if account and user else None


def _assumed_role_arn(record: JsonObject) -> str | None:
    """Build the session ARN from the issuer role and the principal id when ``arn`` is absent."""
    account = first_text(record, ((_UI, "accountId"), ("recipientAccountId",)))
    role = first_text(record, ((*_ISSUER, "userName"),))
    principal_id = first_text(record, ((_UI, "principalId"),))
    session = _session_name_from_principal_id(principal_id) if principal_id else None
    if account and role and session:
        return f"arn:aws:sts::{account}:assumed-role/{role}/{session}"
    return None


@dataclass(frozen=True, slots=True)
class PrincipalRule:
    """How to read the principal of one ``userIdentity.type``.

    ``id_paths`` are tried in order; ``derive_id`` builds the id when none is present.
    ``fields`` fill the other `Principal` fields. Paths start at the record, so a rule
    can fall back to record-level fields such as ``recipientAccountId``.
    """

    id_paths: tuple[Path, ...]
    fields: tuple[Field, ...] = ()
    derive_id: Callable[[JsonObject], str | None] | None = None


_OWN_ACCOUNT: Final = Field("account", ((_UI, "accountId"), ("recipientAccountId",)), as_text)
_ACCESS_KEY: Final = Field("access_key_id", ((_UI, "accessKeyId"),), as_text)
_SESSION_ISSUER: Final = Field("session_issuer", ((*_ISSUER, "arn"),), as_text)
_SESSION_NAME: Final = Field(
    "session_name",
    ((_UI, "arn"), (_UI, "principalId")),
    _session_name,
)
_DELIVERY: Final = Field(
    "credential_delivery", ((_UI, "sessionContext", "ec2RoleDelivery"),), as_text
)

PRINCIPAL_RULES: Final[dict[str, PrincipalRule]] = {
    "Root": PrincipalRule(
        id_paths=((_UI, "arn"),), fields=(_OWN_ACCOUNT, _ACCESS_KEY), derive_id=_root_arn
    ),
    "IAMUser": PrincipalRule(
        id_paths=((_UI, "arn"),), fields=(_OWN_ACCOUNT, _ACCESS_KEY), derive_id=_user_arn
    ),
    "AssumedRole": PrincipalRule(
        id_paths=((_UI, "arn"),),
        fields=(_OWN_ACCOUNT, _SESSION_ISSUER, _SESSION_NAME, _ACCESS_KEY, _DELIVERY),
        derive_id=_assumed_role_arn,
    ),
    "FederatedUser": PrincipalRule(
        id_paths=((_UI, "arn"), (_UI, "principalId")),
        fields=(_OWN_ACCOUNT, _SESSION_ISSUER, _SESSION_NAME, _ACCESS_KEY),
    ),
    "WebIdentityUser": PrincipalRule(
        # principalId is "<provider>:<audience>:<subject>", unique across identity providers.
        id_paths=((_UI, "principalId"), (_UI, "userName")),
        fields=(
            Field("account", ((_UI, "accountId"), ("recipientAccountId",)), as_text),
            Field(
                "subject",
                (
                    (_UI, "userName"),
                    ("responseElements", "subjectFromWebIdentityToken"),
                    ("additionalEventData", "subjectFromWebIdentityToken"),
                ),
                as_text,
            ),
        ),
    ),
    "SAMLUser": PrincipalRule(
        id_paths=((_UI, "principalId"), (_UI, "userName")),
        fields=(
            Field("account", ((_UI, "accountId"), ("recipientAccountId",)), as_text),
            Field(
                "subject",
                ((_UI, "userName"), ("responseElements", "subject")),
                as_text,
            ),
        ),
    ),
    "AWSService": PrincipalRule(
        id_paths=((_UI, "invokedBy"), (_UI, "principalId")),
        fields=(Field("account", ((_UI, "accountId"),), as_text),),
    ),
    "AWSAccount": PrincipalRule(
        id_paths=((_UI, "accountId"), (_UI, "principalId")),
        fields=(Field("account", ((_UI, "accountId"),), as_text), _ACCESS_KEY),
    ),
    "IdentityCenterUser": PrincipalRule(
        id_paths=((_UI, "onBehalfOf", "userId"), (_UI, "principalId")),
        fields=(_OWN_ACCOUNT, _ACCESS_KEY),
    ),
    "Unknown": PrincipalRule(
        id_paths=((_UI, "arn"), (_UI, "userName"), (_UI, "principalId")),
        fields=(_OWN_ACCOUNT, _ACCESS_KEY),
    ),
}
"""Principal rules by ``userIdentity.type``."""

_FALLBACK_RULE: Final = PrincipalRule(
    id_paths=(
        (_UI, "arn"),
        (_UI, "principalId"),
        (_UI, "userName"),
        (_UI, "invokedBy"),
        (_UI, "accountId"),
    ),
    fields=(_OWN_ACCOUNT, _ACCESS_KEY, _SESSION_ISSUER),
)
"""Rule for a ``userIdentity`` whose type is absent or not in `PRINCIPAL_RULES`."""


# -- mapping ---------------------------------------------------------------------------------


def normalize(record: JsonObject, context: NormalizeContext) -> list[Event]:
    """Map one CloudTrail record to one event keyed by its account.

    Raises:
        MappingError: ``eventID``, the event time, ``eventName`` or the account is
            missing, or a mapped field has the wrong type.
    """
    event_id = _read_event_id(record)
    kind = _read_kind(record)
    table = INSIGHT_FIELDS if kind is EventKind.INSIGHT else EVENT_FIELDS
    fields = map_fields(record, table, source=_SOURCE, event_id=event_id)
    principal = None if kind is EventKind.INSIGHT else resolve_principal(record, event_id)

    return [
        Event(
            source=Source.CLOUDTRAIL,
            kind=kind,
            event_id=event_id,
            key=fields["account"],
            principal=principal,
            raw=record,
            **fields,
        )
    ]


def resolve_principal(record: JsonObject, event_id: str | None = None) -> Principal | None:
    """Read the acting principal through the rule for its ``userIdentity.type``.

    Returns None when the record has no ``userIdentity`` object or the identity contains
    no usable id. A missing ``type`` with ``invokedBy`` is read as ``AWSService``,
    which is what ``AwsServiceEvent`` records without a type contain.
    """
    identity = record.get(_UI)
    if not isinstance(identity, dict) or not identity:
        return None

    identity_type = _read_identity_type(identity)
    rule = PRINCIPAL_RULES.get(identity_type, _FALLBACK_RULE)
    principal_id = first_text(record, rule.id_paths)
    if principal_id is None and rule.derive_id is not None:
        principal_id = rule.derive_id(record)
    if principal_id is None:
        return None

    fields = map_fields(record, rule.fields, source=_SOURCE, event_id=event_id)
    return Principal(id=principal_id, type=identity_type, **fields)


def _read_identity_type(identity: JsonObject) -> str:
    identity_type = identity.get("type")
    if isinstance(identity_type, str) and identity_type:
        return identity_type
    if isinstance(identity.get("invokedBy"), str) and "arn" not in identity:
        return "AWSService"
    return "Unknown"


def _read_event_id(record: JsonObject) -> str:
    event_id = record.get("eventID")
    if isinstance(event_id, str) and event_id:
        return event_id
    if event_id is None:
        raise MappingError(
            f"cloudtrail record has no eventID (eventName {record.get('eventName')!r}, "
            f"eventTime {record.get('eventTime')!r}): expected a string at eventID"
        )
    raise MappingError(f"cloudtrail record has an invalid eventID {event_id!r}: expected a string")


def _read_kind(record: JsonObject) -> EventKind:
    event_type = record.get("eventType")
    if isinstance(event_type, str):
        return _KIND_BY_EVENT_TYPE.get(event_type, EventKind.API_CALL)
    return EventKind.API_CALL
