"""CloudTrail from EventBridge through SQS, against a moto server and a real Kafka broker."""

# ruff: noqa: F401, F811 - pytest fixtures imported from test_live_support are test arguments

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from pivotwatch.connectors import eventbridge
from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.connectors.eventbridge import EventBridgeHandler, cloudtrail_event
from pivotwatch.connectors.sqs import SqsMessage
from pivotwatch.errors import DecodeError
from tests.connectors.test_live_support import (
    aws_env,
    boto,
    live_settings,
    moto_endpoint,
    queue_depth,
    read_topic_records,
    running,
    wait_for,
)

ACCOUNT = "111122223333"
DETAIL_TYPES = (
    "AWS API Call via CloudTrail",
    "AWS Console Sign In via CloudTrail",
    "AWS Service Event via CloudTrail",
)


def cloudtrail_detail(event_id: str, with_account: bool = True) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "userName": "ops"},
        "eventTime": "2026-11-30T08:00:00Z",
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "eventID": event_id,
    }
    if with_account:
        detail["recipientAccountId"] = ACCOUNT
    return detail


def envelope(detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5e1f7a2c",
        "detail-type": detail_type,
        "source": "aws.signin",
        "account": ACCOUNT,
        "time": "2026-11-30T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def message(body: Any) -> SqsMessage:
    return SqsMessage("m-1", "handle", orjson.dumps(body).decode(), 1)


@pytest.mark.parametrize("detail_type", DETAIL_TYPES)
def test_cloudtrail_event_accepts_detail_type(detail_type: str) -> None:
    event = cloudtrail_event(message(envelope(detail_type, cloudtrail_detail("e1"))))
    assert event is not None


def test_cloudtrail_event_other_detail_type_is_none() -> None:
    other = envelope("EC2 Instance State-change Notification", {"state": "running"})
    assert cloudtrail_event(message(other)) is None


def test_cloudtrail_event_without_detail_raises() -> None:
    broken = {"detail-type": "AWS API Call via CloudTrail", "detail": "x"}
    with pytest.raises(DecodeError, match="no detail object"):
        cloudtrail_event(message(broken))


def test_eventbridge_handler_keys_by_envelope_account() -> None:
    event = envelope(DETAIL_TYPES[0], cloudtrail_detail("e1", with_account=False))
    records = EventBridgeHandler("raw").records_of(message(event))
    assert [record.key for record in records] == [ACCOUNT.encode()]


def test_eventbridge_handler_sends_detail_only() -> None:
    records = EventBridgeHandler("raw").records_of(
        message(envelope(DETAIL_TYPES[1], {"eventID": "e2"}))
    )
    assert [orjson.loads(record.value) for record in records] == [{"eventID": "e2"}]


# moto's EventBridge leaves out the envelope's "account", so the records here carry theirs.
@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_eventbridge_rule_to_queue_delivered(
    kafka_bootstrap: str,
    topic_prefix: str,
    moto_endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqs = boto("sqs", moto_endpoint)
    events = boto("events", moto_endpoint)
    url = sqs.create_queue(QueueName=f"{topic_prefix}-eb")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = f"{topic_prefix}-cloudtrail"
    events.put_rule(Name=rule, EventPattern=orjson.dumps({"source": ["aws.signin"]}).decode())
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    entries = [
        {
            "Source": "aws.signin",
            "DetailType": detail_type,
            "Detail": orjson.dumps(cloudtrail_detail(f"eb-{index}")).decode(),
        }
        for index, detail_type in enumerate(DETAIL_TYPES)
    ]
    entries.append({"Source": "aws.signin", "DetailType": "Something Else", "Detail": '{"a": 1}'})
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    wait_for(lambda: queue_depth(sqs, url) == 4, 10, "EventBridge to fill the queue")
    sqs.send_message(QueueUrl=url, MessageBody="not an event")
    settings = live_settings(
        kafka_bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint, "region": "us-east-1"},
        eventbridge_sqs={"queue_url": url, "wait_seconds": 1},
    )
    counters = ConnectorCounters(eventbridge.CONNECTOR)

    with (
        caplog.at_level(logging.ERROR, logger="pivotwatch.connectors.sqs"),
        running(lambda stop: eventbridge.run(settings, stop, counters)),
    ):
        wait_for(lambda: counters.acked == 4 and counters.rejected == 1, 20, "5 settled")

    records = read_topic_records(kafka_bootstrap, settings.topics.cloudtrail, 3)
    assert sorted(orjson.loads(record.value)["eventID"] for record in records) == [
        "eb-0",
        "eb-1",
        "eb-2",
    ]
    assert {record.key for record in records} == {ACCOUNT.encode()}
    assert counters.skipped == 1
    assert queue_depth(sqs, url) == 1
    assert "body is not valid JSON" in caplog.text
