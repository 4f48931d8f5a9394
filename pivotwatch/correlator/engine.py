"""The correlator: normalized events in, alerts out.

`Correlator.process` takes a batch of events (any keys, any order) and returns the
alerts that the batch made new or changed. It keeps one `KeyState` per correlation
key. It imports neither Kafka nor faust.

Time is event time throughout. Each stream has its own watermark, the newest event
time seen from it. A record older than its watermark minus the allowed lateness is
dropped and counted. A stream is what delivers records in order: one Falco host, one
CloudTrail region, one GCP project's audit log, each within one key. State older than
the window is forgotten.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from msgspec import structs

from pivotwatch.correlator.alerts import chain_alert, single_stage_alert, stable_id
from pivotwatch.correlator.chains import evaluate_chain
from pivotwatch.correlator.dedup import Deduplicator
from pivotwatch.correlator.detections import Detection, detection_from_falco_tags, merge_detections
from pivotwatch.correlator.exposure import ExposureTracker, exposure_alert
from pivotwatch.correlator.scoring import severity_for_level
from pivotwatch.correlator.state import KeyState, PublishedChain
from pivotwatch.schemas.alert import Alert, Severity
from pivotwatch.schemas.event import Event, EventKind, Source
from pivotwatch.settings import CorrelationSettings, Settings

__all__ = ["Correlator", "RuleMatcher"]

logger = logging.getLogger(__name__)

_SEVERITY_BY_LEVEL = {
    "informational": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def alert_signature(
    identities: Iterable[str],
    techniques: Iterable[str],
    stages: Iterable[str],
    rules: Iterable[str],
) -> frozenset[str]:
    """Return what kinds of behaviour an alert shows, for deciding on a new revision."""
    return frozenset(
        [f"identity:{name}" for name in identities]
        + [f"technique:{name}" for name in techniques]
        + [f"stage:{name}" for name in stages]
        + [f"rule:{name}" for name in rules]
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _stream_of(event: Event) -> str:
    """Return the name of the ordered stream that delivered ``event`` within its key."""
    if event.source is Source.FALCO and event.workload is not None:
        return event.workload.host or ""
    return event.region or ""


# A host's or pod's credential used from an address none of its hosts has: a strong
# signal of stolen credentials even without a runtime alert, published as a single stage.
OFF_HOST_DETECTION = Detection(
    rules=("pivotwatch:off-host-credential-use",),
    titles=("Workload Credential Used Off-Host",),
    techniques=("T1078.004", "T1552.005"),
    tactics=("initial-access", "credential-access"),
    level="high",
)


# Published chains kept before the first scan for expired ones.
MIN_PUBLISHED_SCAN = 1024


class RuleMatcher(Protocol):
    """The interface the correlator needs from a rule engine."""

    def match(self, event: Event) -> Sequence[object]: ...


class Correlator:
    """Keeps per-key state and turns events into alerts."""

    def __init__(self, rules: RuleMatcher, settings: CorrelationSettings) -> None:
        self.rules = rules
        self.settings = settings
        self.states: dict[str, KeyState] = {}
        self.trackers: dict[str, ExposureTracker] = {}
        self.deduplicator = Deduplicator(settings.allowed_lateness)
        self.watermarks: dict[tuple[str, Source, str], datetime] = {}
        self.counts: Counter[str] = Counter()
        self.published: dict[str, PublishedChain] = {}
        self._published_limit = MIN_PUBLISHED_SCAN
        self.min_single_stage = _SEVERITY_BY_LEVEL[settings.min_single_stage_level]

    @classmethod
    def from_settings(cls, settings: Settings) -> Correlator:
        """Load the rule pack and the configured rule folders, then build the correlator."""
        from pivotwatch.correlator.sigma import RuleSet

        correlation = settings.correlation
        rules = RuleSet.load(correlation.rule_paths, bundled=correlation.bundled_rules)
        logger.info("loaded %d detection rules", len(rules))
        return cls(rules, correlation)

    def process(self, events: Iterable[Event]) -> list[Alert]:
        """Correlate a batch of events and return the new or changed alerts."""
        alerts: list[Alert] = []
        touched: dict[str, KeyState] = {}
        candidates: list[tuple[KeyState, Event, Detection, str]] = []
        for event in events:
            if not self._admit(event):
                continue
            state = self._state(event.key)
            touched[event.key] = state
            alerts.extend(self._observe(state, event, candidates))
        for state in touched.values():
            alerts.extend(self._publish_chains(state))
        alerts.extend(self._publish_single_stages(candidates))
        for state in touched.values():
            state.expire(self.settings.window)
        self._expire_published()
        return alerts

    def restore(self, events: Iterable[Event]) -> None:
        """Rebuild state from events that were processed before; publish nothing.

        Call `restore_published` afterwards: it sets what was really published.
        """
        self.process(events)

    def restore_published(self, alerts: Iterable[dict[str, Any]]) -> None:
        """Set the publication state from the alerts topic (decoded JSON objects)."""
        self.published.clear()
        for alert in alerts:
            chain_id, revision, score = (
                alert.get("chain_id"),
                alert.get("revision"),
                alert.get("score"),
            )
            if (
                not isinstance(chain_id, str)
                or not isinstance(revision, int)
                or not isinstance(score, int)
            ):
                continue
            last_seen = _parse_time(alert.get("last_seen"))
            kept = self.published.get(chain_id)
            if kept is None or revision > kept.revision:
                signature = alert_signature(
                    _strings(alert.get("identities")),
                    _strings(alert.get("techniques")),
                    _strings(alert.get("stages")),
                    _strings(alert.get("rules")),
                )
                self.published[chain_id] = PublishedChain(
                    revision=revision, score=score, last_seen=last_seen, signature=signature
                )

    def drop_keys(self, keys: Iterable[str]) -> None:
        """Forget the state of keys whose events partition this worker no longer owns."""
        for key in keys:
            self.states.pop(key, None)
            self.trackers.pop(key, None)

    def _expire_published(self) -> None:
        """Forget published chains older than the window, once the table has doubled.

        The scan walks every published chain, so it runs only when the table reached
        twice its size after the last scan: amortized, each chain is scanned a bounded
        number of times.
        """
        if len(self.published) < self._published_limit:
            return
        newest = max((state.newest for state in self.states.values() if state.newest), default=None)
        if newest is not None:
            horizon = newest - self.settings.window
            expired = [
                chain_id
                for chain_id, published in self.published.items()
                if published.last_seen is not None and published.last_seen < horizon
            ]
            for chain_id in expired:
                del self.published[chain_id]
        self._published_limit = max(MIN_PUBLISHED_SCAN, 2 * len(self.published))

    # Admission: duplicates and late records.

    def _admit(self, event: Event) -> bool:
        if event.kind is EventKind.ASSET:
            return True
        # The key is part of the id: a cross-account call reaches two keys on purpose.
        if self.deduplicator.is_duplicate(
            f"{event.key}:{event.source}:{event.event_id}", event.time
        ):
            self.counts["duplicate"] += 1
            return False
        mark = (event.key, event.source, _stream_of(event))
        watermark = self.watermarks.get(mark)
        if watermark is not None and event.time < watermark - self.settings.allowed_lateness:
            self.counts["late"] += 1
            logger.info(
                "dropped late %s record %s of key %s: event time %s is more than the allowed "
                "lateness behind %s",
                event.source,
                event.event_id,
                event.key,
                event.time.isoformat(),
                watermark.isoformat(),
            )
            return False
        if watermark is None or event.time > watermark:
            self.watermarks[mark] = event.time
        return True

    def _state(self, key: str) -> KeyState:
        state = self.states.get(key)
        if state is None:
            state = KeyState.create(
                key, self.settings.max_nodes_per_key, self.settings.max_edges_per_key
            )
            self.states[key] = state
            self.trackers[key] = ExposureTracker(
                self.settings.transient_window, self.settings.allowed_lateness
            )
        return state

    # Observation: links, signals, activities.

    def _observe(
        self,
        state: KeyState,
        event: Event,
        candidates: list[tuple[KeyState, Event, Detection, str]],
    ) -> list[Alert]:
        state.linker.link(event)
        if event.kind is EventKind.ASSET:
            return []
        state.advance(event.time)
        detection = merge_detections(self.rules.match(event)) or detection_from_falco_tags(event)
        self.counts["events"] += 1
        if event.source is Source.FALCO:
            if detection is not None and event.workload is not None:
                workload = state.add_signal(event, detection)
                candidates.append((state, event, detection, workload))
            return []
        if event.principal is None:
            if detection is not None:
                candidates.append((state, event, detection, "unknown"))
            return self._track_exposure(event)
        actor = state.linker.actor_node(event)
        state.learn_egress(actor, event)
        off_host = state.is_off_host(actor, event)
        if detection is not None or event.action in state.linker.deriving_actions or off_host:
            state.add_activity(actor, event, detection)
        if detection is not None:
            candidates.append((state, event, detection, actor))
        if off_host:
            candidates.append((state, event, OFF_HOST_DETECTION, actor))
        return self._track_exposure(event)

    def _track_exposure(self, event: Event) -> list[Alert]:
        tracker = self.trackers[event.key]
        return [exposure_alert(finding) for finding in tracker.observe(event)]

    # Publication.

    def _publish_chains(self, state: KeyState) -> list[Alert]:
        """Evaluate the chains the batch may have changed and publish their revisions."""
        alerts: list[Alert] = []
        for workload in state.stale_workloads():
            chain, footprint = evaluate_chain(state, workload)
            state.footprints[workload] = footprint
            if chain is None:
                state.chains.pop(workload, None)
                continue
            state.chains[workload] = chain
            alert = self._revise(chain_alert(state.key, chain, revision=1))
            if alert is not None:
                alerts.append(alert)
        state.clear_changes()
        return alerts

    def _revise(self, draft: Alert) -> Alert | None:
        """Return the draft as the chain's next revision, or None if nothing worth one changed.

        A chain publishes a new revision when its score changes, or when it gains an
        identity, technique, stage or rule it did not have: a new kind of behaviour.
        More evidence of behaviour already published (the same call by the same identity
        again) publishes nothing, so a burst of reads is one revision, not thousands.
        """
        signature = alert_signature(draft.identities, draft.techniques, draft.stages, draft.rules)
        published = self.published.get(draft.chain_id)
        if (
            published is not None
            and published.score == draft.score
            and signature <= published.signature
        ):
            return None
        revision = 1 if published is None else published.revision + 1
        self.published[draft.chain_id] = PublishedChain(
            revision=revision, score=draft.score, last_seen=draft.last_seen, signature=signature
        )
        if revision == 1:
            return draft
        return structs.replace(
            draft, revision=revision, alert_id=stable_id(draft.chain_id, str(revision))
        )

    def _publish_single_stages(
        self, candidates: list[tuple[KeyState, Event, Detection, str]]
    ) -> list[Alert]:
        alerts: list[Alert] = []
        # Chains are computed once per key, not once per candidate of the key.
        states = {state.key: state for state, _, _, _ in candidates}
        chained = {key: self._chained_event_ids(state) for key, state in states.items()}
        for state, event, detection, actor in candidates:
            if event.event_id in chained[state.key]:
                continue
            if severity_for_level(detection.level).rank < self.min_single_stage.rank:
                continue
            alert = single_stage_alert(state.key, event, detection, actor)
            if alert.chain_id in self.published:
                continue
            self.published[alert.chain_id] = PublishedChain(
                revision=1, score=alert.score, last_seen=alert.last_seen
            )
            alerts.append(alert)
        return alerts

    @staticmethod
    def _chained_event_ids(state: KeyState) -> set[str]:
        ids: set[str] = set()
        for chain in state.chains.values():
            ids.update(signal.event.event_id for signal in chain.signals)
            ids.update(activity.event.event_id for activity in chain.activities)
        return ids
