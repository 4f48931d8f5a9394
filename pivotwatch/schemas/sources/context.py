"""Normalization context: account mappings from settings and from inventory."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pivotwatch.schemas.event import Event, EventKind, Source

__all__ = ["UNKNOWN_KEY", "NormalizeContext"]

logger = logging.getLogger(__name__)

UNKNOWN_KEY = "unknown"
"""Correlation key of runtime and inventory records whose account cannot be resolved."""


class _AccountSettings(Protocol):
    @property
    def cluster_accounts(self) -> Mapping[str, str]: ...
    @property
    def default_account(self) -> str | None: ...


@dataclass(slots=True)
class NormalizeContext:
    """Account lookups for records that do not name their cloud account.

    ``cluster_accounts`` and ``default_account`` come from settings. ``host_accounts``
    is learned from inventory: `learn` adds the names and addresses of each EC2
    or GCE instance (instance id, private DNS name and its first label, private and
    public addresses, GCE name) with the instance's account or project.

    NOTE: private addresses and EC2 private DNS names repeat across VPCs, so when two
    accounts hold the same address the later inventory record wins. A context is used
    by one worker at a time and is not thread-safe.
    """

    cluster_accounts: Mapping[str, str] = field(default_factory=dict)
    default_account: str | None = None
    host_accounts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: _AccountSettings) -> NormalizeContext:
        """Build a context from the typed settings' ``cluster_accounts`` and ``default_account``."""
        return cls(
            cluster_accounts=dict(settings.cluster_accounts),
            default_account=settings.default_account,
        )

    def account_for_host(self, name: str | None) -> str | None:
        """Return the account of a cluster or host name: settings first, then inventory."""
        if not name:
            return None
        return self.cluster_accounts.get(name) or self.host_accounts.get(name)

    def learn(self, event: Event) -> int:
        """Add the host names and addresses of an inventory instance event.

        Events other than EC2 or GCE instances, and instances without an account, add
        nothing. Returns how many names were added or changed.
        """
        if event.source is not Source.INVENTORY or event.kind is not EventKind.ASSET:
            return 0
        if event.account is None:
            return 0

        # Imported here because the inventory mapping imports this module.
        from pivotwatch.schemas.sources.inventory import host_names

        return self._remember(host_names(event), event.account, event.event_id)

    def _remember(self, names: Iterable[str], account: str, event_id: str) -> int:
        changed = 0
        for name in names:
            previous = self.host_accounts.get(name)
            if previous == account:
                continue
            if previous is not None:
                logger.info(
                    "host %s moved from account %s to %s (inventory %s)",
                    name,
                    previous,
                    account,
                    event_id,
                )
            self.host_accounts[name] = account
            changed += 1
        return changed
