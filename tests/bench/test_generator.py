"""Unit tests of the load generator: determinism, record shapes, planted chains."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from pivotwatch.bench.core import event_batches
from pivotwatch.bench.generator import GeneratedRecord, GeneratorConfig, LoadGenerator
from pivotwatch.correlator.engine import Correlator
from pivotwatch.errors import ConfigurationError
from pivotwatch.schemas.alert import Alert, AlertKind
from pivotwatch.schemas.event import Source
from pivotwatch.schemas.framing import split_message
from pivotwatch.schemas.normalize import NormalizeContext, normalize_record
from pivotwatch.settings import Settings, load_settings

SMALL = GeneratorConfig(seed=7, accounts=4, nodes_per_account=3, pods_per_node=3, gcp_projects=2)
# Chains sparse enough that no two share a node: a second chain on a node that already
# has one adds no score, so the correlator publishes no revision holding its evidence.
CHAINED = GeneratorConfig(
    seed=11,
    accounts=8,
    nodes_per_account=4,
    pods_per_node=3,
    gcp_projects=2,
    chains_per_100k=100,
    event_rate=100,
)


def _generate(config: GeneratorConfig, count: int) -> tuple[LoadGenerator, list[GeneratedRecord]]:
    generator = LoadGenerator(config)
    return generator, [*generator.inventory(), *generator.records(count)]


def _correlate(settings: Settings, records: list[GeneratedRecord]) -> list[Alert]:
    correlator = Correlator.from_settings(settings)
    alerts: list[Alert] = []
    for batch in event_batches(settings, records):
        alerts.extend(correlator.process(batch))
    return alerts


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def test_generator_same_seed_same_bytes() -> None:
    _, first = _generate(SMALL, 2000)
    _, second = _generate(SMALL, 2000)

    assert [(record.key, record.value) for record in first] == [
        (record.key, record.value) for record in second
    ]


def test_generator_other_seed_other_bytes() -> None:
    _, first = _generate(SMALL, 200)
    _, second = _generate(
        GeneratorConfig(seed=8, accounts=4, nodes_per_account=3, pods_per_node=3, gcp_projects=2),
        200,
    )

    assert [record.value for record in first] != [record.value for record in second]


def test_generator_writes_every_source() -> None:
    _, records = _generate(SMALL, 3000)
    sources = Counter(record.source for record in records)

    assert sources[Source.CLOUDTRAIL] > sources[Source.GCP_AUDIT] > 0
    assert sources[Source.FALCO] > 0
    assert sources[Source.INVENTORY] == 4 * (3 + 3 * (3 + 2))


def test_generator_cloudtrail_record_size() -> None:
    _, records = _generate(SMALL, 2000)
    sizes = [len(record.value) for record in records if record.source is Source.CLOUDTRAIL]

    assert 800 < sum(sizes) / len(sizes) < 2500


def test_generator_event_times_increase() -> None:
    _, records = _generate(CHAINED, 3000)
    times = [record.time for record in records if record.source is not Source.INVENTORY]

    assert times == sorted(times)


def test_generator_records_normalize(settings: Settings) -> None:
    """Every record frames to one source record that normalizes, keyed by the fleet's accounts."""
    generator, records = _generate(CHAINED, 3000)
    context = NormalizeContext.from_settings(settings.correlation)
    keys: Counter[str] = Counter()
    for record in records:
        framed = split_message(record.source, record.value)
        assert len(framed.records) == 1, record.value[:80]
        for event in normalize_record(record.source, framed.records[0], context):
            keys[event.key] += 1
    accounts = {account.id for account in generator.fleet.accounts}
    projects = {project.id for project in generator.fleet.projects}

    assert set(keys) == accounts | projects


def test_generator_record_ids_unique() -> None:
    _, records = _generate(CHAINED, 3000)
    ids = [record.event_id for record in records if record.source is not Source.INVENTORY]

    assert len(ids) == len(set(ids))


def test_generator_keys_match_sources() -> None:
    generator, records = _generate(SMALL, 1000)
    clusters = {account.cluster for account in generator.fleet.accounts}
    for record in records:
        decoded = orjson.loads(record.value)
        if record.source is Source.FALCO:
            assert record.key.decode() in clusters
        elif record.source is Source.CLOUDTRAIL:
            assert record.key.decode() == decoded["recipientAccountId"]


def test_generator_plants_complete_chains() -> None:
    generator, records = _generate(CHAINED, 12000)
    closing = [record for record in records if record.closes_chain]

    assert len(generator.complete_chains()) >= 4
    assert len(closing) == len(generator.complete_chains())


def test_generator_planted_chains_found(settings: Settings) -> None:
    generator, records = _generate(CHAINED, 12000)
    alerts = _correlate(settings, records)
    pivots = [alert for alert in alerts if alert.kind is AlertKind.PIVOT_CHAIN]
    entries = {(alert.account, alert.entry.namespace, alert.entry.pod) for alert in pivots}
    evidence = {item.event_id for alert in pivots for item in alert.evidence}
    identities = {identity for alert in pivots for identity in alert.identities}

    assert len(generator.complete_chains()) >= 4
    for chain in generator.complete_chains():
        assert (chain.account, chain.namespace, chain.pod) in entries, chain
        assert chain.identity in identities, chain
        assert set(chain.event_ids) <= evidence, chain


def test_generator_routine_gives_no_chain(settings: Settings) -> None:
    config = GeneratorConfig(
        seed=13, accounts=4, nodes_per_account=3, pods_per_node=3, gcp_projects=2, chains_per_100k=0
    )
    generator, records = _generate(config, 6000)
    alerts = _correlate(settings, records)

    assert not generator.chains
    assert [alert.title for alert in alerts if alert.kind is AlertKind.PIVOT_CHAIN] == []
    assert any(alert.kind is AlertKind.SINGLE_STAGE for alert in alerts)


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(accounts=0),
        GeneratorConfig(nodes_per_account=251),
        GeneratorConfig(event_rate=0),
        GeneratorConfig(cloudtrail_share=0.9, gcp_share=0.2),
    ],
)
def test_generator_invalid_config_raises(config: GeneratorConfig) -> None:
    with pytest.raises(ConfigurationError):
        LoadGenerator(config)
