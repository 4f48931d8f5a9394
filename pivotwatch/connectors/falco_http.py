"""An HTTP receiver for Falco's ``http_output`` and falcosidekick's webhook output.

Both POST one alert per request as a JSON object in Falco's ``json_output`` form; a
JSON array of such objects is accepted too. The receiver responds only after Kafka has
acknowledged every alert of the request:

| status | when |
|---|---|
| 200 | every alert acknowledged by Kafka |
| 400 | the body is not JSON, or not a Falco alert (the reason is in the body) |
| 401 | the bearer token is missing or wrong |
| 413 | the body is larger than ``max_body_bytes`` |
| 503 | Kafka did not acknowledge; the sender should retry (``Retry-After`` is set) |

Authentication is mutual TLS (the client certificate must be signed by
``tls_client_cafile``, else the TLS handshake fails and no HTTP status is sent), a
bearer token compared in constant time, or both. Running without either needs
``allow_unauthenticated``, and a warning is logged at start. ``GET /healthz`` returns
200 without authentication, for liveness probes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import threading

import orjson
from aiohttp import web

from pivotwatch.connectors.delivery import ConnectorCounters, KafkaDelivery, OutgoingRecord
from pivotwatch.connectors.files import message_key
from pivotwatch.connectors.metrics_endpoint import serving_metrics
from pivotwatch.errors import BrokerError, ConfigurationError, DecodeError
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import guess_source, split_message
from pivotwatch.settings import FalcoHttpSettings, Settings

__all__ = ["CONNECTOR", "FalcoReceiver", "alert_records", "run", "server_ssl_context"]

logger = logging.getLogger(__name__)

CONNECTOR = "falco-http"
HEALTH_PATH = "/healthz"
RETRY_AFTER_SECONDS = 5


def alert_records(topic: str, body: bytes) -> list[OutgoingRecord]:
    """Return the Falco alerts of a request body, each as one record for ``topic``.

    A body holding one alert object is sent with its bytes unchanged.

    Raises:
        DecodeError: the body is not JSON, or an item is not a Falco alert.
    """
    framed = split_message(Source.FALCO, body)
    for index, alert in enumerate(framed.records):
        if guess_source(alert) is not Source.FALCO:
            raise DecodeError(
                f"item {index} is not a Falco alert: expected rule, priority and output or "
                f"output_fields, got fields {sorted(alert)[:8]}"
            )
    single = len(framed.records) == 1 and body.lstrip()[:1] == b"{"
    return [
        OutgoingRecord(
            topic, message_key(Source.FALCO, alert), body if single else orjson.dumps(alert)
        )
        for alert in framed.records
    ]


def server_ssl_context(receiver: FalcoHttpSettings) -> ssl.SSLContext | None:
    """Return the server's TLS context, or ``None`` without a certificate.

    Raises:
        ConfigurationError: only one of certificate and key is set, a client CA is set
            without a server certificate, or a file cannot be loaded.
    """
    if (receiver.tls_certfile is None) != (receiver.tls_keyfile is None):
        raise ConfigurationError(
            "falco_http needs both tls_certfile and tls_keyfile, or neither; got "
            f"tls_certfile={receiver.tls_certfile} and tls_keyfile={receiver.tls_keyfile}"
        )
    if receiver.tls_certfile is None or receiver.tls_keyfile is None:
        if receiver.tls_client_cafile is not None:
            raise ConfigurationError(
                "falco_http tls_client_cafile needs TLS: set tls_certfile and tls_keyfile too"
            )
        return None

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(receiver.tls_certfile, receiver.tls_keyfile)
        if receiver.tls_client_cafile is not None:
            context.load_verify_locations(cafile=receiver.tls_client_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(f"falco_http cannot load its TLS files: {error}") from error
    return context


class FalcoReceiver:
    """The aiohttp application and its server; see the module docstring."""

    def __init__(
        self, settings: Settings, counters: ConnectorCounters, delivery: KafkaDelivery
    ) -> None:
        self.receiver = settings.connectors.falco_http
        self.topic = settings.topics.falco
        self.counters = counters
        self.delivery = delivery
        self.ssl_context = server_ssl_context(self.receiver)
        self._check_authentication()
        token = self.receiver.bearer_token
        self._expected_authorization = (
            f"Bearer {token.get_secret_value()}".encode() if token is not None else None
        )
        self._runner: web.AppRunner | None = None

    def _check_authentication(self) -> None:
        receiver = self.receiver
        mutual_tls = receiver.tls_client_cafile is not None
        if receiver.bearer_token is not None and not receiver.bearer_token.get_secret_value():
            raise ConfigurationError("falco_http bearer_token is empty; set a token or unset it")
        if mutual_tls or receiver.bearer_token is not None:
            if receiver.bearer_token is not None and self.ssl_context is None:
                logger.warning(
                    "%s: the bearer token travels in clear text because TLS is off; set "
                    "tls_certfile and tls_keyfile unless the sender is on the same host",
                    CONNECTOR,
                )
            return
        if not receiver.allow_unauthenticated:
            raise ConfigurationError(
                "falco_http has no authentication: set tls_client_cafile (mutual TLS) or "
                "bearer_token, or set allow_unauthenticated to accept any client"
            )
        logger.warning(
            "%s: accepting alerts without authentication (allow_unauthenticated is set)",
            CONNECTOR,
        )

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.receiver.max_body_bytes)
        app.router.add_post(self.receiver.path, self.receive)
        app.router.add_get(HEALTH_PATH, self.health)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.receiver.host, self.receiver.port, ssl_context=self.ssl_context
        )
        await site.start()
        logger.info(
            "%s receiver listening on %s://%s:%d%s (mutual TLS %s, bearer token %s)",
            CONNECTOR,
            "https" if self.ssl_context is not None else "http",
            self.receiver.host,
            self.receiver.port,
            self.receiver.path,
            "on" if self.receiver.tls_client_cafile is not None else "off",
            "on" if self._expected_authorization is not None else "off",
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def receive(self, request: web.Request) -> web.Response:
        """Deliver the alerts of one request and respond with a status from the module table."""
        self.counters.add("received")
        peer = request.remote

        # 1. Credentials, before the body is read.
        if not self._authorized(request):
            self.counters.add("rejected")
            logger.warning(
                "%s: rejected a request from %s: missing or wrong token", CONNECTOR, peer
            )
            return web.json_response(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="pivotwatch"'},
            )

        # 2. Size and JSON.
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.counters.add("rejected")
            logger.warning(
                "%s: rejected a request from %s: body over %d bytes",
                CONNECTOR,
                peer,
                self.receiver.max_body_bytes,
            )
            return web.json_response(
                {"error": f"body larger than {self.receiver.max_body_bytes} bytes"}, status=413
            )
        try:
            records = alert_records(self.topic, body)
        except DecodeError as error:
            self.counters.add("rejected")
            logger.warning("%s: rejected a request from %s: %s", CONNECTOR, peer, error)
            return web.json_response({"error": str(error)}, status=400)

        # 3. Kafka, then the response.
        self.counters.add("records_in", len(records))
        try:
            await asyncio.to_thread(self.delivery.deliver, records)
        except BrokerError as error:
            logger.error(
                "%s: %d alerts from %s were not delivered: %s", CONNECTOR, len(records), peer, error
            )
            return web.json_response(
                {"error": "Kafka did not acknowledge the alerts; retry later"},
                status=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.counters.add("acked")
        logger.debug("%s: delivered %d alerts from %s", CONNECTOR, len(records), peer)
        return web.json_response({"delivered": len(records)})

    def _authorized(self, request: web.Request) -> bool:
        if self._expected_authorization is None:
            return True
        offered = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(offered, self._expected_authorization)


def run(
    settings: Settings, stop: threading.Event, counters: ConnectorCounters | None = None
) -> ConnectorCounters:
    """Serve until ``stop`` is set and return the counters.

    Also serves ``/metrics`` when ``connectors.metrics_port`` is set.

    Raises:
        ConfigurationError: the TLS or authentication settings are invalid, or the
            metrics port cannot be bound.
    """
    counters = counters if counters is not None else ConnectorCounters(CONNECTOR)
    delivery = KafkaDelivery(settings, counters)
    receiver = FalcoReceiver(settings, counters, delivery)
    try:
        with serving_metrics(settings.connectors, counters):
            asyncio.run(_serve(receiver, stop))
    finally:
        delivery.close()
    logger.info("%s receiver stopped: %s", CONNECTOR, counters.snapshot())
    return counters


async def _serve(receiver: FalcoReceiver, stop: threading.Event) -> None:
    await receiver.start()
    try:
        while not stop.is_set():
            await asyncio.sleep(0.2)
    finally:
        await receiver.stop()
