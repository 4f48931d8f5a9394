"""Each live connector's Prometheus metrics, scraped over HTTP from its /metrics endpoint.

The connectors run against the same servers as their own tests (moto, the Pub/Sub test
server, a real Kafka broker). Each test gives its `ConnectorCounters` a fresh registry,
so the scraped counts belong to that test alone.
"""

# ruff: noqa: F401, F811 - pytest fixtures imported from other test modules are test arguments

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pivotwatch.cli.connect import METRICS_PORTS
from pivotwatch.connectors import cloudtrail_sqs, eventbridge, falco_http, pubsub
from pivotwatch.connectors.delivery import COUNTER_NAMES, ConnectorCounters
from pivotwatch.connectors.inventory import run_inventory
from pivotwatch.connectors.inventory_aws import Ec2InstanceSource
from pivotwatch.connectors.metrics_endpoint import serving_metrics
from pivotwatch.errors import ConfigurationError
from pivotwatch.settings import Settings
from pivotwatch.streams.embedded import find_free_port, wait_for_port
from pivotwatch.streams.metrics import ConnectorMetrics
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
    running,
    s3_event,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "345678901234"
RECORDS = "pivotwatch_connector_records_total"
ACKS = "pivotwatch_connector_source_acks_total"
ERRORS = "pivotwatch_connector_errors_total"
LAST_SUCCESS = "pivotwatch_connector_last_success_timestamp_seconds"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """GET http://127.0.0.1:PORT/metrics and return every sample by name and labels."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value; a labelled series never increased is absent, so 0."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def with_metrics_port(settings: Settings) -> tuple[Settings, int]:
    port = find_free_port()
    connectors = settings.connectors.model_copy(update={"metrics_port": port})
    return settings.model_copy(update={"connectors": connectors}), port


# --- counters and registry (no server) ----------------------------------------------------


def test_counters_update_prometheus_series() -> None:
    registry = CollectorRegistry()
    counters = ConnectorCounters("cloudtrail-sqs", registry=registry)
    for name in COUNTER_NAMES:
        counters.add(name, 2)
    labels = {"connector": "cloudtrail-sqs"}

    assert registry.get_sample_value(RECORDS, {**labels, "outcome": "received"}) == 2
    assert registry.get_sample_value(RECORDS, {**labels, "outcome": "produced"}) == 2
    assert registry.get_sample_value(RECORDS, {**labels, "outcome": "failed"}) == 2
    assert registry.get_sample_value(ACKS, labels) == 2
    assert registry.get_sample_value(ERRORS, labels) == 4
    assert (registry.get_sample_value(LAST_SUCCESS, labels) or 0) > 0
    assert counters.snapshot() == dict.fromkeys(COUNTER_NAMES, 2)


def test_counters_unknown_name_raises() -> None:
    counters = ConnectorCounters("falco-http", registry=CollectorRegistry())
    with pytest.raises(ValueError, match="unknown connector counter 'deliverd'"):
        counters.add("deliverd")


def test_connector_metrics_new_registry_gets_families() -> None:
    # A registry created after another was collected may reuse its id(); it must still
    # receive metric families of its own.
    for _ in range(20):
        registry = CollectorRegistry()
        ConnectorMetrics("inventory", registry).received(1)
        assert (
            registry.get_sample_value(RECORDS, {"connector": "inventory", "outcome": "received"})
            == 1
        )
        del registry
        gc.collect()


def test_serving_metrics_unset_port_serves_nothing() -> None:
    settings = live_settings("127.0.0.1:1", "t")
    counters = ConnectorCounters("falco-http", registry=CollectorRegistry())
    with serving_metrics(settings.connectors, counters) as server:
        assert server is None


def test_serving_metrics_busy_port_raises() -> None:
    settings, port = with_metrics_port(live_settings("127.0.0.1:1", "t"))
    counters = ConnectorCounters("falco-http", registry=CollectorRegistry())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with (
            pytest.raises(ConfigurationError, match=f"cannot serve metrics on 127.0.0.1:{port}"),
            serving_metrics(settings.connectors, counters),
        ):
            pass


# --- each connector, scraped while it runs ------------------------------------------------


@pytest.mark.integration
def test_falco_http_metrics_scraped(kafka_bootstrap: str, topic_prefix: str) -> None:
    receiver_port = find_free_port()
    settings, metrics_port = with_metrics_port(
        live_settings(
            kafka_bootstrap,
            topic_prefix,
            falco_http={"port": receiver_port, "allow_unauthenticated": True},
        )
    )
    counters = ConnectorCounters(falco_http.CONNECTOR, registry=CollectorRegistry())
    url = f"http://127.0.0.1:{receiver_port}/"

    with running(lambda stop: falco_http.run(settings, stop, counters)):
        wait_for_port("127.0.0.1", receiver_port, 10)
        single = requests.post(url, data=orjson.dumps(alert("m-1")), timeout=30)
        array = requests.post(url, data=orjson.dumps([alert("m-2"), alert("m-3")]), timeout=30)
        garbage = requests.post(url, data=b"{not json", timeout=30)
        samples = scrape(metrics_port)

    labels = {"connector": falco_http.CONNECTOR}
    assert [single.status_code, array.status_code, garbage.status_code] == [200, 200, 400]
    assert value(samples, RECORDS, **labels, outcome="received") == 3
    assert value(samples, RECORDS, **labels, outcome="produced") == 3
    assert value(samples, RECORDS, **labels, outcome="failed") == 0
    assert value(samples, ACKS, **labels) == 2
    assert value(samples, ERRORS, **labels) == 1
    assert value(samples, LAST_SUCCESS, **labels) > 0


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_cloudtrail_sqs_metrics_scraped(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    s3 = boto("s3", moto_endpoint)
    sqs = boto("sqs", moto_endpoint)
    bucket = f"{topic_prefix}-trail"
    key = f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/11/30/metrics.json.gz"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=gzip_json(cloudtrail_file(ACCOUNT, 3, "mt")))
    queue_url = sqs.create_queue(QueueName=f"{topic_prefix}-ct")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=orjson.dumps(s3_event(bucket, key)).decode())
    sqs.send_message(QueueUrl=queue_url, MessageBody="{not json")
    settings, metrics_port = with_metrics_port(
        live_settings(
            kafka_bootstrap,
            topic_prefix,
            aws={"endpoint_url": moto_endpoint, "region": "us-east-1"},
            cloudtrail_sqs={
                "queue_url": queue_url,
                "wait_seconds": 1,
                "visibility_timeout_seconds": 60,
            },
        )
    )
    counters = ConnectorCounters(cloudtrail_sqs.CONNECTOR, registry=CollectorRegistry())

    with running(lambda stop: cloudtrail_sqs.run(settings, stop, counters)):
        wait_for(lambda: counters.acked == 1 and counters.rejected == 1, 20, "both settled")
        samples = scrape(metrics_port)

    labels = {"connector": cloudtrail_sqs.CONNECTOR}
    assert value(samples, RECORDS, **labels, outcome="received") == 3
    assert value(samples, RECORDS, **labels, outcome="produced") == 3
    assert value(samples, RECORDS, **labels, outcome="failed") == 0
    assert value(samples, ACKS, **labels) == 1
    assert value(samples, ERRORS, **labels) == 1
    assert value(samples, LAST_SUCCESS, **labels) > 0


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_eventbridge_sqs_metrics_scraped(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    sqs = boto("sqs", moto_endpoint)
    queue_url = sqs.create_queue(QueueName=f"{topic_prefix}-eb")["QueueUrl"]
    events = [
        envelope("AWS API Call via CloudTrail", cloudtrail_detail("eb-metrics-1")),
        envelope("EC2 Instance State-change Notification", {"state": "running"}),
    ]
    for event in events:
        sqs.send_message(QueueUrl=queue_url, MessageBody=orjson.dumps(event).decode())
    settings, metrics_port = with_metrics_port(
        live_settings(
            kafka_bootstrap,
            topic_prefix,
            aws={"endpoint_url": moto_endpoint, "region": "us-east-1"},
            eventbridge_sqs={"queue_url": queue_url, "wait_seconds": 1},
        )
    )
    counters = ConnectorCounters(eventbridge.CONNECTOR, registry=CollectorRegistry())

    with running(lambda stop: eventbridge.run(settings, stop, counters)):
        wait_for(lambda: counters.acked == 2, 20, "both messages deleted")
        samples = scrape(metrics_port)

    labels = {"connector": eventbridge.CONNECTOR}
    assert value(samples, RECORDS, **labels, outcome="received") == 1
    assert value(samples, RECORDS, **labels, outcome="produced") == 1
    assert value(samples, ACKS, **labels) == 2
    assert value(samples, ERRORS, **labels) == 0


@pytest.mark.integration
def test_gcp_pubsub_metrics_scraped(
    kafka_bootstrap: str, topic_prefix: str, subscription: tuple[Any, str]
) -> None:
    publisher, topic_path = subscription
    for index in range(2):
        publisher.publish(topic_path, orjson.dumps(log_entry(f"pm-{index}"))).result()
    publisher.publish(topic_path, b"not json at all").result()
    settings, metrics_port = with_metrics_port(
        live_settings(
            kafka_bootstrap, topic_prefix, pubsub={"subscription": subscription_path(topic_path)}
        )
    )
    counters = ConnectorCounters(pubsub.CONNECTOR, registry=CollectorRegistry())

    with running(lambda stop: pubsub.run(settings, stop, counters)):
        wait_for(lambda: counters.acked == 2 and counters.rejected >= 1, 20, "2 acks, 1 reject")
        samples = scrape(metrics_port)

    labels = {"connector": pubsub.CONNECTOR}
    assert value(samples, RECORDS, **labels, outcome="received") == 2
    assert value(samples, RECORDS, **labels, outcome="produced") == 2
    assert value(samples, ACKS, **labels) == 2
    assert value(samples, ERRORS, **labels) >= 1


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_inventory_metrics_scraped(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    region = "ap-southeast-2"
    ec2 = boto("ec2", moto_endpoint, region)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
    reservations = len(ec2.describe_instances()["Reservations"])
    settings, metrics_port = with_metrics_port(
        live_settings(
            kafka_bootstrap,
            topic_prefix,
            aws={"endpoint_url": moto_endpoint},
            inventory={"interval_seconds": 600},
        )
    )
    counters = ConnectorCounters("inventory", registry=CollectorRegistry())
    source = Ec2InstanceSource(settings.connectors.aws, [region], settings.topics.inventory)

    with running(lambda stop: run_inventory(settings, [source], stop, counters)):
        wait_for(lambda: counters.acked == 1, 20, "one complete poll")
        samples = scrape(metrics_port)

    labels = {"connector": "inventory"}
    assert value(samples, RECORDS, **labels, outcome="received") == reservations
    assert value(samples, RECORDS, **labels, outcome="produced") == reservations
    assert value(samples, ACKS, **labels) == 1


# --- the connect command ------------------------------------------------------------------


@pytest.mark.integration
def test_connect_command_serves_metrics(kafka_bootstrap: str, topic_prefix: str) -> None:
    receiver_port = find_free_port()
    metrics_port = find_free_port()
    environment = {
        name: text for name, text in os.environ.items() if not name.startswith("PIVOTWATCH_")
    }
    environment.update(
        PIVOTWATCH_LOG_LEVEL="INFO",
        PIVOTWATCH_TOPICS__FALCO=f"{topic_prefix}.falco",
        PIVOTWATCH_CONNECTORS__FALCO_HTTP__ALLOW_UNAUTHENTICATED="true",
    )
    arguments = ["--bootstrap", kafka_bootstrap, "--port", str(receiver_port)]
    command = [sys.executable, "-m", "pivotwatch", "connect", "falco-http", *arguments]
    process = subprocess.Popen(
        [*command, "--metrics-port", str(metrics_port)],
        env=environment,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", metrics_port, 30)
        wait_for_port("127.0.0.1", receiver_port, 30)
        response = requests.post(
            f"http://127.0.0.1:{receiver_port}/", data=orjson.dumps(alert("cli-1")), timeout=30
        )
        samples = scrape(metrics_port)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)

    labels = {"connector": falco_http.CONNECTOR}
    assert response.status_code == 200
    assert value(samples, RECORDS, **labels, outcome="produced") == 1
    assert value(samples, ACKS, **labels) == 1
    assert process.returncode == 0
    assert f"serving metrics on http://127.0.0.1:{metrics_port}/metrics" in errors


# --- deployment -----------------------------------------------------------------------------


def test_compose_connectors_scraped_by_prometheus() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    scrape_config = yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    targets = {
        target
        for job in scrape_config["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    for service_name, service in compose["services"].items():
        command = service.get("command", [])
        if command[:2] != ["pivotwatch", "connect"]:
            continue
        port = METRICS_PORTS[command[2]]
        environment = service["environment"]
        assert environment["PIVOTWATCH_CONNECTORS__METRICS_PORT"] == str(port), service_name
        assert environment["PIVOTWATCH_CONNECTORS__METRICS_ADDRESS"] == "0.0.0.0", service_name
        assert f"{service_name}:{port}" in targets, service_name
        assert f"127.0.0.1:{port}:{port}" in service["ports"], service_name
