"""Every connector with the broker down at start and stopped mid-run.

The broker is the embedded Tansu broker on a fixed port, stopped and started again on
the same port. It keeps nothing in memory across a restart, so each check asserts that
the source was not acknowledged while the broker was down and that the records arrive
after the restart.
"""

# ruff: noqa: F401, F811 - pytest fixtures imported from test_live_support are test arguments

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests

from pivotwatch.connectors import cloudtrail_sqs, eventbridge, falco_http, pubsub
from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.connectors.inventory import run_inventory
from pivotwatch.connectors.inventory_aws import Ec2InstanceSource
from pivotwatch.streams.embedded import EmbeddedBroker, find_free_port, wait_for_port
from tests.connectors.test_live_eventbridge import cloudtrail_detail, envelope
from tests.connectors.test_live_falco_http import alert
from tests.connectors.test_live_pubsub import emulator, log_entry, subscription, subscription_path
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

pytestmark = pytest.mark.integration

ACCOUNT = "210987654321"


class RestartableBroker:
    """The embedded broker on one fixed port, started and stopped on demand."""

    def __init__(self) -> None:
        self.port = find_free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._broker: EmbeddedBroker | None = None

    def start(self) -> None:
        self._broker = EmbeddedBroker(port=self.port)
        self._broker.start()

    def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()
            self._broker = None


@pytest.fixture
def broker() -> Iterator[RestartableBroker]:
    restartable = RestartableBroker()
    try:
        yield restartable
    finally:
        restartable.stop()


def event_ids(bootstrap: str, topic: str, expected: int, field: str = "eventID") -> set[str]:
    return {
        orjson.loads(record.value)[field]
        for record in read_topic_records(bootstrap, topic, expected)
    }


def put_trail_file(s3: Any, sqs: Any, url: str, bucket: str, tag: str, count: int) -> None:
    key = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/{tag}.json.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip_json(cloudtrail_file(ACCOUNT, count, tag)))
    sqs.send_message(QueueUrl=url, MessageBody=orjson.dumps(s3_event(bucket, key)).decode())


@pytest.mark.usefixtures("aws_env")
def test_cloudtrail_sqs_survives_broker_outages(
    broker: RestartableBroker, topic_prefix: str, moto_endpoint: str
) -> None:
    s3 = boto("s3", moto_endpoint)
    sqs = boto("sqs", moto_endpoint)
    bucket = f"{topic_prefix}-trail"
    s3.create_bucket(Bucket=bucket)
    url = sqs.create_queue(QueueName=f"{topic_prefix}-ct")["QueueUrl"]
    settings = live_settings(
        broker.bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint},
        cloudtrail_sqs={"queue_url": url, "wait_seconds": 1, "visibility_timeout_seconds": 30},
    )
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR)
    topic = settings.topics.cloudtrail

    with running(lambda stop: cloudtrail_sqs.run(settings, stop, counters)):
        # 1. Broker down at start: the message stays in the queue.
        put_trail_file(s3, sqs, url, bucket, "before", 3)
        wait_for(lambda: counters.failed >= 3, 30, "a failed delivery")
        assert queue_depth(sqs, url) == 1
        assert counters.acked == 0

        # 2. Broker up: the message is delivered, then deleted.
        broker.start()
        wait_for(lambda: queue_depth(sqs, url) == 0, 40, "the queue to empty")
        assert event_ids(broker.bootstrap, topic, 3) == {"before-0", "before-1", "before-2"}

        # 3. Broker stopped mid-run, then restarted: nothing is deleted while it is down.
        broker.stop()
        failed_before = counters.failed
        put_trail_file(s3, sqs, url, bucket, "during", 2)
        wait_for(lambda: counters.failed > failed_before, 30, "a failed delivery")
        assert queue_depth(sqs, url) == 1
        broker.start()
        wait_for(lambda: queue_depth(sqs, url) == 0, 40, "the queue to empty")

    assert event_ids(broker.bootstrap, topic, 2) >= {"during-0", "during-1"}
    assert counters.acked == 2


@pytest.mark.usefixtures("aws_env")
def test_eventbridge_survives_broker_outage(
    broker: RestartableBroker, topic_prefix: str, moto_endpoint: str
) -> None:
    sqs = boto("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName=f"{topic_prefix}-eb")["QueueUrl"]
    settings = live_settings(
        broker.bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint},
        eventbridge_sqs={"queue_url": url, "wait_seconds": 1},
    )
    counters = ConnectorCounters(eventbridge.CONNECTOR)
    body = orjson.dumps(envelope("AWS API Call via CloudTrail", cloudtrail_detail("eb-out")))

    with running(lambda stop: eventbridge.run(settings, stop, counters)):
        sqs.send_message(QueueUrl=url, MessageBody=body.decode())
        wait_for(lambda: counters.failed >= 1, 30, "a failed delivery")
        assert queue_depth(sqs, url) == 1
        broker.start()
        wait_for(lambda: queue_depth(sqs, url) == 0, 40, "the queue to empty")

    assert event_ids(broker.bootstrap, settings.topics.cloudtrail, 1) == {"eb-out"}


def test_pubsub_survives_broker_outage(
    broker: RestartableBroker, topic_prefix: str, subscription: tuple[Any, str]
) -> None:
    publisher, topic_path = subscription
    settings = live_settings(
        broker.bootstrap, topic_prefix, pubsub={"subscription": subscription_path(topic_path)}
    )
    counters = ConnectorCounters(pubsub.CONNECTOR)

    with running(lambda stop: pubsub.run(settings, stop, counters)):
        for index in range(3):
            publisher.publish(topic_path, orjson.dumps(log_entry(f"out-{index}"))).result()
        wait_for(lambda: counters.failed >= 3, 30, "failed deliveries")
        assert counters.acked == 0
        broker.start()
        wait_for(lambda: counters.acked == 3, 40, "three acks")

    delivered = event_ids(broker.bootstrap, settings.topics.gcp_audit, 3, "insertId")
    assert delivered == {"out-0", "out-1", "out-2"}


def test_falco_http_answers_503_until_broker_returns(
    broker: RestartableBroker, topic_prefix: str
) -> None:
    port = find_free_port()
    settings = live_settings(
        broker.bootstrap,
        topic_prefix,
        falco_http={"port": port, "allow_unauthenticated": True},
    )
    counters = ConnectorCounters(falco_http.CONNECTOR)
    body = orjson.dumps(alert("outage-1"))

    with running(lambda stop: falco_http.run(settings, stop, counters)):
        wait_for_port("127.0.0.1", port, 10)
        while_down = requests.post(f"http://127.0.0.1:{port}/", data=body, timeout=30)
        broker.start()
        after_restart = requests.post(f"http://127.0.0.1:{port}/", data=body, timeout=30)

    assert while_down.status_code == 503
    assert while_down.headers["Retry-After"] == "5"
    assert after_restart.status_code == 200
    assert event_ids(broker.bootstrap, settings.topics.falco, 1, "uuid") == {"outage-1"}


@pytest.mark.usefixtures("aws_env")
def test_inventory_retries_until_broker_returns(
    broker: RestartableBroker, topic_prefix: str, moto_endpoint: str
) -> None:
    ec2 = boto("ec2", moto_endpoint, "ca-central-1")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    reservation = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["ReservationId"]
    settings = live_settings(
        broker.bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint},
        inventory={"interval_seconds": 600},
    )
    counters = ConnectorCounters("inventory")
    source = Ec2InstanceSource(settings.connectors.aws, ["ca-central-1"], settings.topics.inventory)

    with running(lambda stop: run_inventory(settings, [source], stop, counters)):
        wait_for(lambda: counters.failed >= 1, 30, "a failed poll")
        assert counters.acked == 0
        broker.start()
        wait_for(lambda: counters.acked == 1, 40, "a complete poll")

    delivered = event_ids(broker.bootstrap, settings.topics.inventory, 1, "ReservationId")
    assert delivered == {reservation}
