"""The Falco HTTP receiver with a real HTTP client, over plain HTTP, TLS and mutual TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pivotwatch.connectors import falco_http
from pivotwatch.connectors.delivery import ConnectorCounters, KafkaDelivery
from pivotwatch.errors import ConfigurationError
from pivotwatch.settings import Settings
from pivotwatch.streams.embedded import find_free_port, wait_for_port
from tests.connectors.test_live_support import live_settings, read_topic_records, running

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "falco" / "alert-kubernetes.json"
TOKEN = "s3cr3t-token-for-tests"


def alert(uuid: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(FIXTURE.read_bytes())
    document["uuid"] = uuid
    return document


# --- certificates -------------------------------------------------------------------------


@dataclass
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, certificate: x509.Certificate, key: Any) -> Issued:
    cert_path = folder / f"{stem}.crt"
    key_path = folder / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path)


class TestCa:
    """A certificate authority that issues server and client certificates for one test."""

    __test__ = False

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = folder / f"{name}.crt"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = (
            x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
            if server
            else (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        return _write(self.folder, f"{self.name}-{common_name}", certificate, key)


# --- receiver ---------------------------------------------------------------------------


def receiver_settings(bootstrap: str, prefix: str, **receiver: Any) -> Settings:
    port = find_free_port()
    return live_settings(
        bootstrap, prefix, falco_http={"host": "127.0.0.1", "port": port, **receiver}
    )


@contextmanager
def serving(settings: Settings, counters: ConnectorCounters) -> Iterator[str]:
    """Run the receiver in a thread; yield its base URL."""
    receiver = settings.connectors.falco_http
    scheme = "https" if receiver.tls_certfile is not None else "http"
    with running(lambda stop: falco_http.run(settings, stop, counters)):
        wait_for_port("127.0.0.1", receiver.port, 10)
        yield f"{scheme}://127.0.0.1:{receiver.port}"


def test_receiver_without_authentication_rejected(tmp_path: Path) -> None:
    settings = receiver_settings("127.0.0.1:1", "t")
    counters = ConnectorCounters(falco_http.CONNECTOR)
    with pytest.raises(ConfigurationError, match="allow_unauthenticated"):
        falco_http.FalcoReceiver(settings, counters, KafkaDelivery(settings, counters))


def test_receiver_certificate_without_key_rejected(tmp_path: Path) -> None:
    settings = receiver_settings("127.0.0.1:1", "t", tls_certfile=str(tmp_path / "a.crt"))
    with pytest.raises(ConfigurationError, match="both tls_certfile and tls_keyfile"):
        falco_http.server_ssl_context(settings.connectors.falco_http)


def test_alert_records_single_alert_keeps_bytes() -> None:
    body = orjson.dumps(alert("u1"))
    records = falco_http.alert_records("raw", body)
    assert [record.value for record in records] == [body]


def test_alert_records_keyed_by_cluster() -> None:
    records = falco_http.alert_records("raw", orjson.dumps([alert("a"), alert("b")]))
    assert [record.key for record in records] == [b"web-prod", b"web-prod"]


@pytest.mark.integration
def test_falco_http_plain_statuses_and_delivery(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = receiver_settings(
        kafka_bootstrap, topic_prefix, allow_unauthenticated=True, max_body_bytes=4096
    )
    counters = ConnectorCounters(falco_http.CONNECTOR)
    sidekick = {**alert("sidekick-1"), "tags": ["T1552.005"], "source": "syscall"}

    with (
        caplog.at_level(logging.WARNING, logger="pivotwatch.connectors.falco_http"),
        serving(settings, counters) as url,
    ):
        first = requests.post(url + "/", data=orjson.dumps(alert("http-1")), timeout=10)
        bad_json = requests.post(url + "/", data=b"{not json", timeout=10)
        not_falco = requests.post(url + "/", json={"hello": "world"}, timeout=10)
        too_large = requests.post(url + "/", data=b"[" + b" " * 5000 + b"]", timeout=10)
        second = requests.post(url + "/", json=sidekick, timeout=10)
        health = requests.get(url + "/healthz", timeout=10)

    assert first.status_code == 200
    assert bad_json.status_code == 400
    assert "not valid JSON" in bad_json.json()["error"]
    assert not_falco.status_code == 400
    assert "not a Falco alert" in not_falco.json()["error"]
    assert too_large.status_code == 413
    assert second.status_code == 200
    assert health.status_code == 200
    assert "without authentication" in caplog.text
    records = read_topic_records(kafka_bootstrap, settings.topics.falco, 2)
    assert sorted(orjson.loads(record.value)["uuid"] for record in records) == [
        "http-1",
        "sidekick-1",
    ]
    assert {record.key for record in records} == {b"web-prod"}
    assert counters.acked == 2
    assert counters.rejected == 3


@pytest.mark.integration
def test_falco_http_bearer_token_over_tls(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    ca = TestCa(tmp_path, "ca")
    server = ca.issue("server", server=True)
    settings = receiver_settings(
        kafka_bootstrap,
        topic_prefix,
        tls_certfile=str(server.cert),
        tls_keyfile=str(server.key),
        bearer_token=TOKEN,
    )
    counters = ConnectorCounters(falco_http.CONNECTOR)
    body = orjson.dumps(alert("tls-1"))

    with serving(settings, counters) as url:
        missing = requests.post(url + "/", data=body, verify=str(ca.cert_path), timeout=10)
        wrong = requests.post(
            url + "/",
            data=body,
            headers={"Authorization": "Bearer wrong"},
            verify=str(ca.cert_path),
            timeout=10,
        )
        right = requests.post(
            url + "/",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            verify=str(ca.cert_path),
            timeout=10,
        )

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 200
    records = read_topic_records(kafka_bootstrap, settings.topics.falco, 1)
    assert [record.value for record in records] == [body]


@pytest.mark.integration
def test_falco_http_mutual_tls(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    ca = TestCa(tmp_path, "ca")
    other_ca = TestCa(tmp_path, "other")
    server = ca.issue("server", server=True)
    client = ca.issue("falco", server=False)
    stranger = other_ca.issue("falco", server=False)
    settings = receiver_settings(
        kafka_bootstrap,
        topic_prefix,
        tls_certfile=str(server.cert),
        tls_keyfile=str(server.key),
        tls_client_cafile=str(ca.cert_path),
    )
    counters = ConnectorCounters(falco_http.CONNECTOR)
    body = orjson.dumps(alert("mtls-1"))
    verify = str(ca.cert_path)

    # With TLS 1.3 the server rejects the certificate after the client's handshake has
    # finished, so the client sees either an SSL error or a closed connection.
    with serving(settings, counters) as url:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(url + "/", data=body, verify=verify, timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(
                url + "/",
                data=body,
                verify=verify,
                cert=(str(stranger.cert), str(stranger.key)),
                timeout=10,
            )
        accepted = requests.post(
            url + "/",
            data=body,
            verify=verify,
            cert=(str(client.cert), str(client.key)),
            timeout=10,
        )

    assert accepted.status_code == 200
    records = read_topic_records(kafka_bootstrap, settings.topics.falco, 1)
    assert [orjson.loads(record.value)["uuid"] for record in records] == ["mtls-1"]
