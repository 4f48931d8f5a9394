from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from pivotwatch.errors import MappingError
from pivotwatch.schemas.event import Event, Source
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from tests.schemas.conftest import load_fixture

SAMPLES = [
    (Source.CLOUDTRAIL, "cloudtrail/otrf-shipper-timestamp-assumed-role.json"),
    (Source.GCP_AUDIT, "gcp_audit/impersonation-chain.json"),
    (Source.FALCO, "falco/alert-kubernetes.json"),
    (Source.INVENTORY, "inventory/ec2-instance-bare.json"),
]


@pytest.mark.parametrize(("source", "name"), SAMPLES, ids=[source.value for source, _ in SAMPLES])
def test_normalize_event_json_round_trip(source: Source, name: str) -> None:
    event = normalize_record(source, load_fixture(name), NormalizeContext())[0]

    decoded = msgspec.json.decode(msgspec.json.encode(event), type=Event)

    assert decoded == event


@pytest.mark.parametrize(("source", "name"), SAMPLES, ids=[source.value for source, _ in SAMPLES])
def test_normalize_event_time_is_aware_utc(source: Source, name: str) -> None:
    event = normalize_record(source, load_fixture(name), NormalizeContext())[0]

    assert event.time.utcoffset() is not None
    assert event.time.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("source", list(Source))
def test_normalize_record_rejects_non_object(source: Source) -> None:
    record: Any = ["not", "an", "object"]

    with pytest.raises(MappingError, match="record is a list"):
        normalize_record(source, record, NormalizeContext())


@pytest.mark.parametrize("source", list(Source))
def test_normalize_empty_object_rejected(source: Source) -> None:
    with pytest.raises(MappingError):
        normalize_record(source, {}, NormalizeContext())


def test_normalize_context_from_settings() -> None:
    @dataclass
    class AccountSettings:
        cluster_accounts: dict[str, str]
        default_account: str | None

    settings = AccountSettings({"web-prod": "111122223333"}, "999999999999")

    context = NormalizeContext.from_settings(settings)

    assert context.cluster_accounts == {"web-prod": "111122223333"}
    assert context.default_account == "999999999999"
    assert context.host_accounts == {}
