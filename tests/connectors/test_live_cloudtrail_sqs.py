"""CloudTrail from S3 + SQS against a moto server and a real Kafka broker."""

# ruff: noqa: F401, F811 - pytest fixtures imported from test_live_support are test arguments

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from pivotwatch.connectors import cloudtrail_sqs
from pivotwatch.connectors.cloudtrail_sqs import account_in_key, object_refs
from pivotwatch.connectors.delivery import ConnectorCounters, KafkaDelivery
from pivotwatch.connectors.sqs import SqsMessage, VisibilityKeeper
from pivotwatch.errors import DecodeError
from tests.connectors.test_live_support import (
    aws_env,
    boto,
    cloudtrail_file,
    gzip_json,
    live_settings,
    moto_endpoint,
    queue_depth,
    read_topic_records,
    running,
    s3_event,
    wait_for,
)

ACCOUNT = "210987654321"
ORG_KEY = (
    f"AWSLogs/o-a1b2c3d4e5/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/"
    f"{ACCOUNT}_CloudTrail_us-east-1_20261130T0800Z_a.json.gz"
)
DIGEST_KEY = (
    f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/30/"
    f"{ACCOUNT}_CloudTrail-Digest_us-east-1_x_20261130T0800Z.json.gz"
)


def message(body: Any, message_id: str = "m-1") -> SqsMessage:
    text = body if isinstance(body, str) else orjson.dumps(body).decode()
    return SqsMessage(message_id, "handle", text, 1)


# --- message shapes (no server) -----------------------------------------------------------


def test_object_refs_s3_event_decodes_key() -> None:
    refs = object_refs(message(s3_event("trail", "AWSLogs/1/CloudTrail/a b+c.json.gz")))
    assert [ref.key for ref in refs or []] == ["AWSLogs/1/CloudTrail/a b+c.json.gz"]


def test_object_refs_sns_wrapped_s3_event() -> None:
    inner = orjson.dumps(s3_event("trail", "k.json.gz")).decode()
    refs = object_refs(message({"Type": "Notification", "MessageId": "n", "Message": inner}))
    assert [str(ref) for ref in refs or []] == ["s3://trail/k.json.gz"]


def test_object_refs_cloudtrail_notice() -> None:
    notice = {"s3Bucket": "trail", "s3ObjectKey": ["a.json.gz", "b.json.gz"]}
    wrapped = {"Type": "Notification", "Message": orjson.dumps(notice).decode()}
    refs = object_refs(message(wrapped))
    assert [ref.key for ref in refs or []] == ["a.json.gz", "b.json.gz"]


def test_object_refs_test_event_is_none() -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "trail"}
    assert object_refs(message(test_event)) is None


def test_object_refs_ignores_object_removed() -> None:
    refs = object_refs(message(s3_event("trail", "k.json.gz", "ObjectRemoved:Delete")))
    assert refs == []


def test_object_refs_bad_json_raises() -> None:
    with pytest.raises(DecodeError, match="not valid JSON"):
        object_refs(message("{not json"))


def test_object_refs_unknown_shape_raises() -> None:
    with pytest.raises(DecodeError, match="neither an S3 event"):
        object_refs(message({"hello": "world"}))


def test_account_in_key_organization_trail() -> None:
    assert account_in_key(ORG_KEY) == ACCOUNT


def test_account_in_key_plain_trail() -> None:
    assert account_in_key(f"AWSLogs/{ACCOUNT}/CloudTrail/x.json.gz") == ACCOUNT


# --- against moto and Kafka -------------------------------------------------------------


def make_queue(moto_endpoint: str, name: str) -> tuple[Any, str]:
    sqs = boto("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return sqs, url


def notify_queue_on_put(moto_endpoint: str, bucket: str, queue_url: str, sqs: Any) -> None:
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto("s3", moto_endpoint).put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )


def connector_settings(kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str, url: str):
    return live_settings(
        kafka_bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint, "region": "us-east-1"},
        cloudtrail_sqs={"queue_url": url, "wait_seconds": 1, "visibility_timeout_seconds": 30},
    )


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_cloudtrail_sqs_s3_notifications_delivered(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    s3 = boto("s3", moto_endpoint)
    bucket = f"{topic_prefix}-trail"
    s3.create_bucket(Bucket=bucket)
    sqs, url = make_queue(moto_endpoint, f"{topic_prefix}-ct")
    notify_queue_on_put(moto_endpoint, bucket, url, sqs)
    s3.put_object(Bucket=bucket, Key=ORG_KEY, Body=gzip_json(cloudtrail_file(ACCOUNT, 3, "org")))
    s3.put_object(Bucket=bucket, Key=DIGEST_KEY, Body=gzip_json({"digestStartTime": "x"}))
    settings = connector_settings(kafka_bootstrap, topic_prefix, moto_endpoint, url)
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR)

    with running(lambda stop: cloudtrail_sqs.run(settings, stop, counters)):
        wait_for(lambda: queue_depth(sqs, url) == 0, 20, "the queue to empty")

    records = read_topic_records(kafka_bootstrap, settings.topics.cloudtrail, 3)
    assert sorted(orjson.loads(record.value)["eventID"] for record in records) == [
        "org-0",
        "org-1",
        "org-2",
    ]
    assert {record.key for record in records} == {ACCOUNT.encode()}
    assert counters.delivered == 3
    assert counters.acked == counters.received


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_cloudtrail_sqs_sns_envelopes_delivered(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    s3 = boto("s3", moto_endpoint)
    sns = boto("sns", moto_endpoint)
    bucket = f"{topic_prefix}-trail"
    s3.create_bucket(Bucket=bucket)
    sqs, url = make_queue(moto_endpoint, f"{topic_prefix}-ct")
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic_arn = sns.create_topic(Name=f"{topic_prefix}-ct")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    first = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/a.json.gz"
    second = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/b.json.gz"
    third = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/c d.json.gz"
    s3.put_object(Bucket=bucket, Key=first, Body=gzip_json(cloudtrail_file(ACCOUNT, 2, "a")))
    s3.put_object(Bucket=bucket, Key=second, Body=gzip_json(cloudtrail_file(ACCOUNT, 1, "b")))
    s3.put_object(Bucket=bucket, Key=third, Body=gzip_json(cloudtrail_file(ACCOUNT, 1, "c")))
    # CloudTrail's own notice, then an S3 event published through SNS.
    notice = {"s3Bucket": bucket, "s3ObjectKey": [first, second]}
    sns.publish(TopicArn=topic_arn, Message=orjson.dumps(notice).decode())
    sns.publish(TopicArn=topic_arn, Message=orjson.dumps(s3_event(bucket, third)).decode())
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}
    sns.publish(TopicArn=topic_arn, Message=orjson.dumps(test_event).decode())
    settings = connector_settings(kafka_bootstrap, topic_prefix, moto_endpoint, url)
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR)

    with running(lambda stop: cloudtrail_sqs.run(settings, stop, counters)):
        wait_for(lambda: queue_depth(sqs, url) == 0, 20, "the queue to empty")

    records = read_topic_records(kafka_bootstrap, settings.topics.cloudtrail, 4)
    event_ids = sorted(orjson.loads(record.value)["eventID"] for record in records)
    assert event_ids == ["a-0", "a-1", "b-0", "c-0"]
    assert counters.skipped == 1
    assert counters.acked == 3


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_cloudtrail_sqs_garbage_rejected_rest_delivered(
    kafka_bootstrap: str,
    topic_prefix: str,
    moto_endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s3 = boto("s3", moto_endpoint)
    bucket = f"{topic_prefix}-trail"
    s3.create_bucket(Bucket=bucket)
    sqs, url = make_queue(moto_endpoint, f"{topic_prefix}-ct")
    good = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/good.json.gz"
    bad = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/bad.json.gz"
    s3.put_object(Bucket=bucket, Key=good, Body=gzip_json(cloudtrail_file(ACCOUNT, 2, "good")))
    s3.put_object(Bucket=bucket, Key=bad, Body=b"this is neither gzip nor JSON")
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    sqs.send_message(QueueUrl=url, MessageBody=orjson.dumps(s3_event(bucket, bad)).decode())
    sqs.send_message(QueueUrl=url, MessageBody=orjson.dumps(s3_event(bucket, good)).decode())
    settings = connector_settings(kafka_bootstrap, topic_prefix, moto_endpoint, url)
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR)

    with (
        caplog.at_level(logging.ERROR, logger="pivotwatch.connectors.sqs"),
        running(lambda stop: cloudtrail_sqs.run(settings, stop, counters)),
    ):
        wait_for(lambda: counters.rejected >= 2 and counters.acked >= 1, 20, "all three settled")

    records = read_topic_records(kafka_bootstrap, settings.topics.cloudtrail, 2)
    assert sorted(orjson.loads(record.value)["eventID"] for record in records) == [
        "good-0",
        "good-1",
    ]
    assert queue_depth(sqs, url) == 2
    assert "body is not valid JSON" in caplog.text
    assert "bad.json.gz is not a CloudTrail log file" in caplog.text


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_visibility_keeper_hides_message_while_held(moto_endpoint: str, topic_prefix: str) -> None:
    sqs, url = make_queue(moto_endpoint, f"{topic_prefix}-vis")
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    raw = sqs.receive_message(QueueUrl=url, VisibilityTimeout=2)["Messages"][0]
    held = SqsMessage(raw["MessageId"], raw["ReceiptHandle"], raw["Body"], 1)
    keeper = VisibilityKeeper(sqs, url, 2)
    keeper.start()
    keeper.hold(held)
    try:
        threading.Event().wait(3.5)
        while_held = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
    finally:
        keeper.release(held)
        keeper.stop()
    assert while_held == []
    assert keeper.extensions >= 1


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_cloudtrail_sqs_concurrent_objects_one_message(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    s3 = boto("s3", moto_endpoint)
    bucket = f"{topic_prefix}-trail"
    s3.create_bucket(Bucket=bucket)
    sqs, url = make_queue(moto_endpoint, f"{topic_prefix}-ct")
    keys = [f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/{n}.json.gz" for n in range(6)]
    for number, key in enumerate(keys):
        s3.put_object(
            Bucket=bucket, Key=key, Body=gzip_json(cloudtrail_file(ACCOUNT, 50, f"f{number}"))
        )
    notice = {"s3Bucket": bucket, "s3ObjectKey": keys}
    settings = connector_settings(kafka_bootstrap, topic_prefix, moto_endpoint, url)
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR)
    delivery = KafkaDelivery(settings, counters)
    consumer, downloads = cloudtrail_sqs.build_consumer(settings, counters, delivery)
    sqs.send_message(QueueUrl=url, MessageBody=orjson.dumps(notice).decode())

    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = consumer.poll_once(pool)
    finally:
        downloads.shutdown()
        delivery.close()

    assert [outcome.value for outcome in outcomes] == ["delivered"]
    assert counters.delivered == 300
    assert queue_depth(sqs, url) == 0
