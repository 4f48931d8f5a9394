"""GCE inventory: the Compute Engine REST API's aggregated instance list, one record per instance.

This calls ``GET /compute/v1/projects/<project>/aggregated/instances`` over HTTPS with
google-auth's `AuthorizedSession`, not the ``google-cloud-compute`` client, so no more
packages are needed. Credentials come from Application Default Credentials with the
``compute.readonly`` scope; the role ``roles/compute.viewer`` is enough. Each instance
is published as the API returns it (``kind: compute#instance``); its key is the project.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson

from pivotwatch.connectors.delivery import OutgoingRecord
from pivotwatch.connectors.files import message_key
from pivotwatch.errors import DecodeError
from pivotwatch.schemas.event import Source

__all__ = ["COMPUTE_READONLY_SCOPE", "GceInstanceSource"]

logger = logging.getLogger(__name__)

COMPUTE_READONLY_SCOPE = "https://www.googleapis.com/auth/compute.readonly"
PAGE_SIZE = 500
REQUEST_TIMEOUT_SECONDS = 60.0


class GceInstanceSource:
    """Lists the GCE instances of each configured project."""

    name = "gce"

    def __init__(
        self,
        projects: list[str],
        endpoint: str,
        topic: str,
        credentials: Any | None = None,
    ) -> None:
        """Prepare the source; ``credentials`` default to Application Default Credentials."""
        self._projects = projects
        self._endpoint = endpoint.rstrip("/")
        self._topic = topic
        self._credentials = credentials
        self._session: Any | None = None

    def records(self) -> Iterator[OutgoingRecord]:
        session = self._authorized_session()
        for project in self._projects:
            count = 0
            for instance in self._instances(session, project):
                count += 1
                key = message_key(Source.INVENTORY, instance) or project.encode()
                yield OutgoingRecord(self._topic, key, orjson.dumps(instance))
            logger.debug("gce: %d instances in project %s", count, project)

    def _authorized_session(self) -> Any:
        if self._session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials = self._credentials
            if credentials is None:
                credentials, _ = google.auth.default(scopes=[COMPUTE_READONLY_SCOPE])
            self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        return self._session

    def _instances(self, session: Any, project: str) -> Iterator[dict[str, Any]]:
        url = f"{self._endpoint}/compute/v1/projects/{project}/aggregated/instances"
        params: dict[str, Any] = {"maxResults": PAGE_SIZE, "returnPartialSuccess": "true"}
        while True:
            response = session.get(url, params=params, timeout=REQUEST_TIMEOUT_SECONDS)
            response.raise_for_status()
            page = orjson.loads(response.content)
            if not isinstance(page, dict) or not isinstance(page.get("items", {}), dict):
                raise DecodeError(
                    f"the aggregated instance list of project {project} is not a "
                    "compute#instanceAggregatedList object"
                )
            for scope, scoped in page.get("items", {}).items():
                if "warning" in scoped and not scoped.get("instances"):
                    continue
                for instance in scoped.get("instances", []):
                    if isinstance(instance, dict):
                        yield instance
                    else:
                        logger.warning(
                            "gce: %s in %s: an instance is not an object", project, scope
                        )
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token
