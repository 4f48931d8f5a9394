"""The bundled incident through the live connectors gives the alerts that run-scenario gives.

CloudTrail files go into moto's S3 with S3 notifications to SQS and are read by the
CloudTrail connector, Falco alerts are posted one per request to the HTTP receiver,
and the inventory is replayed. A worker runs in this process for both runs.
"""

# ruff: noqa: F401, F811 - pytest fixtures imported from test_live_support are test arguments

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
import pytest
import requests

from pivotwatch.connectors import cloudtrail_sqs, falco_http
from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.connectors.replay import replay
from pivotwatch.settings import Settings
from pivotwatch.streams.app import Pipeline
from pivotwatch.streams.embedded import find_free_port, wait_for_port
from pivotwatch.streams.runner import OffsetWatcher, read_topic, running_worker
from pivotwatch.streams.scenario import isolated_settings, run_scenario
from pivotwatch.streams.topics import ensure_topics
from tests.connectors.test_live_support import (
    SAMPLE,
    aws_env,
    boto,
    gzip_json,
    live_settings,
    moto_endpoint,
    queue_depth,
    wait_for,
)
from tests.integration.support import ORDER_INDEPENDENT_KINDS, latest_revisions

pytestmark = pytest.mark.integration

TIMEOUT = 120.0


def summary(values: list[bytes]) -> dict[str, tuple[str, frozenset[str]]]:
    """Chain id -> (kind, evidence ids) of the newest revision of each chain."""
    return {
        chain_id: (alert["kind"], frozenset(item["event_id"] for item in alert["evidence"]))
        for chain_id, alert in latest_revisions(values).items()
    }


def chain_summary(
    values: list[bytes],
) -> dict[str, tuple[str, int, frozenset[str], frozenset[str]]]:
    """Chain id -> (kind, score, identities, techniques) of chains and exposures.

    Evidence that only repeats published behaviour publishes no revision, so which copy
    of it the newest revision lists depends on arrival order; these fields do not.
    """
    return {
        chain_id: (
            alert["kind"],
            alert["score"],
            frozenset(alert["identities"]),
            frozenset(alert["techniques"]),
        )
        for chain_id, alert in latest_revisions(values).items()
        if alert["kind"] in ORDER_INDEPENDENT_KINDS
    }


def upload_trail(settings: Settings, moto_endpoint: str, prefix: str) -> tuple[Any, str]:
    """Create the bucket, notify the queue on uploads and upload the sample's files."""
    s3 = boto("s3", moto_endpoint)
    sqs = boto("sqs", moto_endpoint)
    bucket = f"{prefix}-trail"
    s3.create_bucket(Bucket=bucket)
    url = sqs.get_queue_url(QueueName=f"{prefix}-ct")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    for file in sorted((SAMPLE / "cloudtrail").glob("*.json")):
        account = file.name.split("_")[0]
        key = f"AWSLogs/{account}/CloudTrail/us-west-2/2026/11/30/{file.name}.gz"
        s3.put_object(Bucket=bucket, Key=key, Body=gzip_json(orjson.loads(file.read_bytes())))
    return sqs, url


def post_falco_alerts(port: int) -> None:
    for line in (SAMPLE / "falco.jsonl").read_bytes().splitlines():
        if line.strip():
            response = requests.post(f"http://127.0.0.1:{port}/", data=line, timeout=30)
            response.raise_for_status()


async def run_live(settings: Settings, moto_endpoint: str, prefix: str) -> list[bytes]:
    ensure_topics(settings)
    pipeline = Pipeline(settings)
    watcher = OffsetWatcher(settings)
    raw_topics = list(settings.topics.raw_topics().values())
    queue_url = settings.connectors.cloudtrail_sqs.queue_url
    assert queue_url is not None
    port = settings.connectors.falco_http.port
    stop = threading.Event()
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR)
    connectors = [
        threading.Thread(target=cloudtrail_sqs.run, args=(settings, stop, counters)),
        threading.Thread(target=falco_http.run, args=(settings, stop)),
    ]
    try:
        async with running_worker(pipeline):
            # 1. Inventory first, as run-scenario does.
            await asyncio.to_thread(replay, [SAMPLE / "inventory"], settings, None, False)
            await watcher.wait(raw_topics, TIMEOUT)
            await watcher.wait([settings.topics.events], TIMEOUT)

            # 2. Falco over HTTP, then CloudTrail through S3 + SQS: the order they reach a
            # live system in, because CloudTrail delivers its files minutes after the calls.
            for thread in connectors:
                thread.start()
            await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 10)
            await asyncio.to_thread(post_falco_alerts, port)
            await watcher.wait(raw_topics, TIMEOUT)
            await watcher.wait([settings.topics.events], TIMEOUT)
            sqs, _ = await asyncio.to_thread(upload_trail, settings, moto_endpoint, prefix)
            await asyncio.to_thread(
                wait_for, lambda: queue_depth(sqs, queue_url) == 0, TIMEOUT, "the queue to empty"
            )
            await watcher.wait(raw_topics, TIMEOUT)
            await watcher.wait([settings.topics.events], TIMEOUT)
    finally:
        stop.set()
        for thread in connectors:
            if thread.is_alive():
                thread.join(timeout=30)
        watcher.close()
    assert counters.rejected == 0
    return await asyncio.to_thread(read_topic, settings, settings.topics.alerts)


@pytest.mark.usefixtures("aws_env")
def test_live_path_matches_run_scenario(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    base = live_settings(
        kafka_bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint},
        cloudtrail_sqs={"wait_seconds": 1, "concurrency": 1},
        falco_http={"port": find_free_port(), "allow_unauthenticated": True},
    )
    live = isolated_settings(base)
    queue_url = boto("sqs", moto_endpoint).create_queue(QueueName=f"{topic_prefix}-ct")["QueueUrl"]
    live = live.model_copy(
        update={
            "connectors": live.connectors.model_copy(
                update={
                    "cloudtrail_sqs": live.connectors.cloudtrail_sqs.model_copy(
                        update={"queue_url": queue_url}
                    )
                }
            )
        }
    )

    live_alerts = asyncio.run(run_live(live, moto_endpoint, topic_prefix))
    replayed = asyncio.run(run_scenario(SAMPLE, isolated_settings(base), timeout=TIMEOUT))

    assert any(kind == "pivot_chain" for kind, _, _, _ in chain_summary(replayed.alerts).values())
    assert chain_summary(live_alerts) == chain_summary(replayed.alerts)
    # Falco alerts reach a live system before the CloudTrail files, so each runtime
    # signal is first published alone; the chain then takes it in. Every other alert of
    # the live path is a single-stage alert about evidence the chain contains too.
    expected = summary(replayed.alerts)
    found = summary(live_alerts)
    chained = frozenset().union(
        *(evidence for kind, evidence in found.values() if kind == "pivot_chain")
    )
    extra = {chain_id: found[chain_id] for chain_id in found.keys() - expected.keys()}
    assert {kind for kind, _ in extra.values()} <= {"single_stage"}
    assert all(evidence <= chained for _, evidence in extra.values())
