"""A chain that crosses into another account stays one chain."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

from pivotwatch.connectors.files import SourceRecord, list_input_files, read_records
from pivotwatch.correlator.engine import Correlator
from pivotwatch.schemas.alert import AlertKind
from pivotwatch.settings import Settings, load_settings
from pivotwatch.streams.normalizing import Normalizer
from pivotwatch.streams.records import RawMessage
from pivotwatch.streams.scenario import scenario_inputs

SAMPLE = Path(__file__).resolve().parents[2] / "pivotwatch" / "samples" / "eks-imds-pivot"
HOME = "210987654321"
OTHER = "444455556666"
ROLE_SESSION = f"arn:aws:sts::{OTHER}:assumed-role/ops-cross/maint"
KEY = "ASIAEXAMPLECROSS0001"


def sample_messages(settings: Settings) -> list[RawMessage]:
    topics = settings.topics.raw_topics()
    inventory, others = scenario_inputs(SAMPLE)
    messages: list[RawMessage] = []
    for path in list_input_files(inventory + others):
        for item in read_records(path):
            if isinstance(item, SourceRecord):
                topic = topics[item.source.value]
                messages.append(RawMessage(topic, 0, len(messages), item.key, item.value))
    return messages


def stolen_session_record(messages: list[RawMessage]) -> dict[str, Any]:
    for message in messages:
        record = orjson.loads(message.value)
        if record.get("eventName") == "GetCallerIdentity" and record.get(
            "sourceIPAddress", ""
        ).startswith("198.51.100."):
            return record
    raise AssertionError("the sample has no GetCallerIdentity from the attacker")


def assume_role_copy(base: dict[str, Any], recipient: str, event_id: str) -> dict[str, Any]:
    record = copy.deepcopy(base)
    record.update(
        eventID=event_id,
        eventTime="2026-11-30T08:12:30Z",
        eventSource="sts.amazonaws.com",
        eventName="AssumeRole",
        recipientAccountId=recipient,
        requestParameters={
            "roleArn": f"arn:aws:iam::{OTHER}:role/ops-cross",
            "roleSessionName": "maint",
        },
        responseElements={
            "credentials": {
                "accessKeyId": KEY,
                "expiration": "Nov 30, 2026, 9:12:30 AM",
                "sessionToken": "x",
            },
            "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:maint", "arn": ROLE_SESSION},
        },
    )
    return record


def session_call(base: dict[str, Any], name: str, event_id: str, minute: int) -> dict[str, Any]:
    record = copy.deepcopy(base)
    record.update(
        eventID=event_id,
        eventTime=f"2026-11-30T08:{minute:02d}:10Z",
        eventSource="iam.amazonaws.com",
        eventName=name,
        recipientAccountId=OTHER,
        requestParameters={"userName": "backup-sync"},
        responseElements={
            "user": {"arn": f"arn:aws:iam::{OTHER}:user/backup-sync", "userName": "backup-sync"}
        },
        userIdentity={
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:maint",
            "arn": ROLE_SESSION,
            "accountId": OTHER,
            "accessKeyId": KEY,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLE",
                    "arn": f"arn:aws:iam::{OTHER}:role/ops-cross",
                    "accountId": OTHER,
                    "userName": "ops-cross",
                },
                "attributes": {"creationDate": "2026-11-30T08:12:30Z", "mfaAuthenticated": "false"},
            },
        },
    )
    return record


def test_cross_account_session_joins_the_home_chain() -> None:
    settings = load_settings()
    messages = sample_messages(settings)
    base = stolen_session_record(messages)
    crafted = [
        assume_role_copy(base, HOME, "c0ffee00-0000-4000-8000-000000000001"),
        assume_role_copy(base, OTHER, "c0ffee00-0000-4000-8000-000000000002"),
        session_call(base, "CreateUser", "c0ffee00-0000-4000-8000-000000000003", 13),
    ]
    topic = settings.topics.cloudtrail
    messages += [
        RawMessage(topic, 1, index, None, orjson.dumps(record))
        for index, record in enumerate(crafted)
    ]

    output = Normalizer(settings).process(messages)
    correlator = Correlator.from_settings(settings)
    alerts = correlator.process([event for events in output.batches.values() for event in events])

    assert output.counts["routed"] == 2
    chains = [alert for alert in alerts if alert.kind is AlertKind.PIVOT_CHAIN]
    assert {alert.account for alert in chains} == {HOME}
    latest = max(chains, key=lambda alert: alert.revision)
    assert ROLE_SESSION in latest.identities
    evidence = {item.event_id for item in latest.evidence}
    assert "c0ffee00-0000-4000-8000-000000000003" in evidence
    assert "c0ffee00-0000-4000-8000-000000000001" in evidence


def test_far_future_record_is_a_dead_letter() -> None:
    settings = load_settings()
    messages = sample_messages(settings)
    record = stolen_session_record(messages)
    record.update(eventID="f0000000-0000-4000-8000-000000000999", eventTime="9999-12-31T23:59:59Z")
    poisoned = RawMessage(settings.topics.cloudtrail, 2, 0, None, orjson.dumps(record))

    output = Normalizer(settings).process([poisoned, *messages])

    assert len(output.dead_letters) == 1
    assert "9999-12-31" in output.dead_letters[0].reason
    assert "MAX_FUTURE_SECONDS" in output.dead_letters[0].reason
    chains = [
        alert
        for alert in Correlator.from_settings(settings).process(
            [event for events in output.batches.values() for event in events]
        )
        if alert.kind is AlertKind.PIVOT_CHAIN
    ]
    assert chains
