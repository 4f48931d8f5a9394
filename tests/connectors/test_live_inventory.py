"""Inventory pollers: EC2 against moto, GCE and Kubernetes against local stand-in APIs.

No Compute Engine or Kubernetes API server can run here, so those two tests serve the
APIs' JSON from a small HTTP server on loopback (the Kubernetes one over TLS with a
bearer token check). They check paging, authentication and framing, not the real APIs.
"""

# ruff: noqa: F401, F811 - pytest fixtures imported from test_live_support are test arguments

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from google.auth.credentials import AnonymousCredentials

from pivotwatch.connectors.delivery import ConnectorCounters
from pivotwatch.connectors.inventory import run_inventory
from pivotwatch.connectors.inventory_aws import ALL_REGIONS, Ec2InstanceSource
from pivotwatch.connectors.inventory_gcp import GceInstanceSource
from pivotwatch.connectors.inventory_k8s import KubernetesSource
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import guess_source
from pivotwatch.settings import AwsSettings, InventorySettings
from tests.connectors.test_live_falco_http import TestCa
from tests.connectors.test_live_support import (
    aws_env,
    boto,
    live_settings,
    moto_endpoint,
    read_topic_records,
    running,
    wait_for,
)

Route = Callable[[str, dict[str, list[str]], dict[str, str]], tuple[int, Any]]


@contextmanager
def stand_in_api(route: Route, context: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``route(path, query, headers) -> (status, JSON)`` on a loopback port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            status, document = route(parsed.path, parse_qs(parsed.query), dict(self.headers))
            body = orjson.dumps(document)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- EC2 against moto ---------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_ec2_source_one_record_per_reservation(moto_endpoint: str) -> None:
    for region in ("us-east-1", "eu-west-1"):
        ec2 = boto("ec2", moto_endpoint, region)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2)
    aws = AwsSettings(endpoint_url=moto_endpoint, region="us-east-1")

    records = list(Ec2InstanceSource(aws, ["us-east-1", "eu-west-1"], "raw").records())

    reservations = [orjson.loads(record.value) for record in records]
    assert len(reservations) >= 2
    assert all(len(reservation["Instances"]) >= 1 for reservation in reservations)
    assert all(
        record.key == reservation["OwnerId"].encode()
        for record, reservation in zip(records, reservations, strict=True)
    )
    assert {guess_source(reservation) for reservation in reservations} == {Source.INVENTORY}


@pytest.mark.usefixtures("aws_env")
def test_ec2_source_all_regions_uses_describe_regions(moto_endpoint: str) -> None:
    aws = AwsSettings(endpoint_url=moto_endpoint, region="us-east-1")

    regions = Ec2InstanceSource(aws, [ALL_REGIONS], "raw").resolve_regions()

    assert {"us-east-1", "eu-west-1", "ap-south-1"} <= set(regions)


@pytest.mark.integration
@pytest.mark.usefixtures("aws_env")
def test_inventory_ec2_delivered_to_kafka(
    kafka_bootstrap: str, topic_prefix: str, moto_endpoint: str
) -> None:
    ec2 = boto("ec2", moto_endpoint, "sa-east-1")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=3, MaxCount=3)
    settings = live_settings(
        kafka_bootstrap,
        topic_prefix,
        aws={"endpoint_url": moto_endpoint},
        inventory={"aws_regions": ["sa-east-1"], "interval_seconds": 60},
    )
    counters = ConnectorCounters("inventory")
    source = Ec2InstanceSource(settings.connectors.aws, ["sa-east-1"], settings.topics.inventory)

    with running(lambda stop: run_inventory(settings, [source], stop, counters)):
        wait_for(lambda: counters.acked >= 1, 20, "one complete poll")

    records = read_topic_records(kafka_bootstrap, settings.topics.inventory, 1)
    instances = [i for r in records for i in orjson.loads(r.value)["Instances"]]
    assert len(instances) == 3


# --- GCE and Kubernetes against stand-in APIs ---------------------------------------------


def gce_instance(project: str, zone: str, name: str) -> dict[str, Any]:
    return {
        "kind": "compute#instance",
        "name": name,
        "id": str(abs(hash(name)) % 10**12),
        "zone": f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}",
        "selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{zone}/instances/{name}",
        "networkInterfaces": [{"networkIP": "10.0.0.2"}],
        "serviceAccounts": [{"email": f"node@{project}.iam.gserviceaccount.com"}],
    }


def test_gce_source_pages_aggregated_list() -> None:
    project = "payments-prod-4821"
    seen_tokens: list[str | None] = []

    def route(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any]:
        if path != f"/compute/v1/projects/{project}/aggregated/instances":
            return 404, {"error": path}
        token = query.get("pageToken", [None])[0]
        seen_tokens.append(token)
        if token is None:
            items = {
                "zones/us-central1-a": {"instances": [gce_instance(project, "us-central1-a", "a")]},
                "zones/us-east1-b": {"warning": {"code": "NO_RESULTS_ON_PAGE"}},
            }
            return 200, {
                "kind": "compute#instanceAggregatedList",
                "items": items,
                "nextPageToken": "p2",
            }
        items = {
            "zones/us-central1-b": {"instances": [gce_instance(project, "us-central1-b", "b")]}
        }
        return 200, {"kind": "compute#instanceAggregatedList", "items": items}

    with stand_in_api(route) as url:
        source = GceInstanceSource([project], url, "raw", credentials=AnonymousCredentials())
        records = list(source.records())

    assert [orjson.loads(record.value)["name"] for record in records] == ["a", "b"]
    assert {record.key for record in records} == {project.encode()}
    assert seen_tokens == [None, "p2"]


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "checkout", "uid": f"uid-{name}"},
        "spec": {
            "nodeName": "ip-10-1-42-17.us-west-2.compute.internal",
            "serviceAccountName": "web",
        },
        "status": {"podIP": "10.1.42.30", "hostIP": "10.1.42.17"},
    }


def test_kubernetes_source_token_tls_and_paging(tmp_path: Path) -> None:
    ca = TestCa(tmp_path, "cluster-ca")
    server = ca.issue("apiserver", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.cert, server.key)
    token_file = tmp_path / "token"
    token_file.write_text("k8s-token\n")
    seen_auth: list[str] = []

    def route(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any]:
        seen_auth.append(headers.get("Authorization", ""))
        if headers.get("Authorization") != "Bearer k8s-token":
            return 401, {"kind": "Status", "code": 401}
        if path == "/api/v1/pods":
            if query.get("continue") is None:
                return 200, {
                    "kind": "PodList",
                    "items": [pod("web-1")],
                    "metadata": {"continue": "c1"},
                }
            return 200, {"kind": "PodList", "items": [pod("web-2")], "metadata": {}}
        if path == "/api/v1/serviceaccounts":
            account = {
                "metadata": {
                    "name": "web",
                    "namespace": "checkout",
                    "annotations": {
                        "eks.amazonaws.com/role-arn": "arn:aws:iam::210987654321:role/web"
                    },
                }
            }
            return 200, {"kind": "ServiceAccountList", "items": [account], "metadata": {}}
        return 404, {"kind": "Status", "code": 404}

    with stand_in_api(route, context) as url:
        inventory = InventorySettings(
            kubernetes_api_url=url,
            kubernetes_token_file=token_file,
            kubernetes_ca_file=ca.cert_path,
            kubernetes_page_size=1,
        )
        records = list(KubernetesSource(inventory, "raw").records())

    objects = [orjson.loads(record.value) for record in records]
    assert [(item["kind"], item["metadata"]["name"]) for item in objects] == [
        ("Pod", "web-1"),
        ("Pod", "web-2"),
        ("ServiceAccount", "web"),
    ]
    assert {guess_source(item) for item in objects} == {Source.INVENTORY}
    assert set(seen_auth) == {"Bearer k8s-token"}
