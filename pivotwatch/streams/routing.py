"""Routing a session's calls to the account where its chain began.

A chain may cross accounts: a session of account A assumes a role of account B, and the
new session's calls are recorded in B's trail, keyed by B. Those calls must also reach
the correlator state of A, where the runtime signal and the first session are.

CloudTrail records a cross-account ``AssumeRole`` in the role's account too, with the
caller's identity in ``userIdentity``. That copy sits on B's raw partition ahead of the
new session's calls, so the worker reading that partition learns the route before it
meets the calls, in order. Each later call of the session, found by its session ARN or
its access key id, is sent twice: once with its own key and once with the caller's.

Limits: routes are held by the worker that reads the role account's raw partition, for
the correlation window; a worker that restarts learns them again only from role
assumptions it reads after the restart.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime, timedelta

from pivotwatch.correlator.links import dig
from pivotwatch.schemas.event import Event, Source

__all__ = ["SessionRouter"]

logger = logging.getLogger(__name__)

ROLE_ASSUMPTIONS = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})


class SessionRouter:
    """Remembers which sessions came from another account, and routes their calls there."""

    def __init__(self, window: timedelta, max_routes: int = 100_000) -> None:
        self.window = window
        self.max_routes = max_routes
        self._routes: OrderedDict[str, tuple[str, datetime]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._routes)

    def extra_keys(self, event: Event) -> list[str]:
        """Return the other keys ``event`` must also reach, learning new routes from it."""
        if event.source is not Source.CLOUDTRAIL or event.principal is None:
            return []
        targets = self._targets(event)
        self._learn(event, targets)
        return [key for key in targets if key != event.key]

    def _targets(self, event: Event) -> list[str]:
        principal = event.principal
        assert principal is not None
        keys: list[str] = []
        for name in (principal.id, principal.access_key_id):
            route = self._routes.get(name) if name else None
            if route is not None and event.time - route[1] <= self.window:
                keys.append(route[0])
        caller_account = principal.account
        if event.action in ROLE_ASSUMPTIONS and caller_account and caller_account != event.key:
            keys.append(caller_account)
        return list(dict.fromkeys(keys))

    def _learn(self, event: Event, targets: list[str]) -> None:
        if event.action not in ROLE_ASSUMPTIONS or event.error_code or not targets:
            return
        response = event.raw.get("responseElements")
        names = [
            dig(response, "assumedRoleUser", "arn"),
            dig(response, "credentials", "accessKeyId"),
        ]
        for name in names:
            if isinstance(name, str) and name:
                for target in targets:
                    if target != event.key:
                        self._routes[name] = (target, event.time)
                        self._routes.move_to_end(name)
                        logger.info(
                            "routing calls of %s to key %s as well as %s", name, target, event.key
                        )
        while len(self._routes) > self.max_routes:
            self._routes.popitem(last=False)
