"""Kubernetes inventory: pods and service accounts of every namespace, one record per object.

Lists ``/api/v1/pods`` and ``/api/v1/serviceaccounts`` in pages (``limit`` and
``continue``) with a bearer token and the API server's CA bundle, over ``requests``
rather than the ``kubernetes`` client. List items carry no ``kind`` or ``apiVersion``,
so both are set on each object, as ``kubectl get -o json`` does. In a pod, the
service account token at /var/run/secrets/kubernetes.io/serviceaccount/token and its
ca.crt beside it serve; the role needs ``list`` on ``pods`` and ``serviceaccounts``.
The token file is read again before each poll, because projected tokens rotate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import requests

from pivotwatch.connectors.delivery import OutgoingRecord
from pivotwatch.errors import ConfigurationError, DecodeError
from pivotwatch.settings import InventorySettings

__all__ = ["KUBERNETES_KINDS", "KubernetesSource"]

logger = logging.getLogger(__name__)

KUBERNETES_KINDS = (("pods", "Pod"), ("serviceaccounts", "ServiceAccount"))
"""Resource path and ``kind`` of each listed object type."""
REQUEST_TIMEOUT_SECONDS = 60.0


class KubernetesSource:
    """Lists pods and service accounts through the Kubernetes API."""

    name = "kubernetes"

    def __init__(self, inventory: InventorySettings, topic: str) -> None:
        if inventory.kubernetes_api_url is None:
            raise ConfigurationError("the Kubernetes inventory needs kubernetes_api_url")
        if inventory.kubernetes_token_file is None:
            raise ConfigurationError(
                "the Kubernetes inventory needs kubernetes_token_file, the file that contains the "
                "bearer token (in a pod: /var/run/secrets/kubernetes.io/serviceaccount/token)"
            )
        self._api = inventory.kubernetes_api_url.rstrip("/")
        self._token_file = inventory.kubernetes_token_file
        self._verify: str | bool = (
            str(inventory.kubernetes_ca_file) if inventory.kubernetes_ca_file else True
        )
        self._page_size = inventory.kubernetes_page_size
        self._topic = topic

    def records(self) -> Iterator[OutgoingRecord]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {_read_token(self._token_file)}"
            session.headers["Accept"] = "application/json"
            for resource, kind in KUBERNETES_KINDS:
                count = 0
                for item in self._list(session, resource):
                    count += 1
                    item["kind"] = kind
                    item["apiVersion"] = "v1"
                    yield OutgoingRecord(self._topic, None, orjson.dumps(item))
                logger.debug("kubernetes: %d %s", count, resource)

    def _list(self, session: requests.Session, resource: str) -> Iterator[dict[str, Any]]:
        url = f"{self._api}/api/v1/{resource}"
        params: dict[str, Any] = {"limit": self._page_size}
        while True:
            # verify per request: a session-wide value loses to REQUESTS_CA_BUNDLE.
            response = session.get(
                url, params=params, verify=self._verify, timeout=REQUEST_TIMEOUT_SECONDS
            )
            response.raise_for_status()
            page = orjson.loads(response.content)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise DecodeError(f"the Kubernetes API response to {url} has no items list")
            for item in page["items"]:
                if isinstance(item, dict):
                    yield item
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params["continue"] = token


def _read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the Kubernetes token file {path}: {error}"
        ) from error
    if not token:
        raise ConfigurationError(f"the Kubernetes token file {path} is empty")
    return token
