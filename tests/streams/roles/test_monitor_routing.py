"""The partitioned monitor's pieces without a broker: what a router sends where, and
owners fed two routers' bundles at different paces (and one bundle twice) reporting what
one monitor reports on the same messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from monitor_traffic import T0_MS, predictions, register
from test_monitor import FakeMessage, as_messages, decode_outputs, new_monitor, offline

from monitors.notify import Notifier
from streams.config import Settings
from streams.kafka.partitioning import model_partition
from streams.models import Registry
from streams.roles.monitor import ALL_MODELS, MonitorSettings, PartitionOwner
from streams.roles.monitor.bundles import Bundle
from streams.roles.monitor.routing import MonitorRouter

__all__ = ["offline"]  # the fixture, imported for the tests below

REPARTITION = "monitor.input"
PARTS = 3
MODELS = ("versions", "noref", "drift")  # repartition partitions 0, 1, 2


def traffic(settings: Settings) -> list[FakeMessage]:
    """Predictions of three models over two predictions partitions (four windows), dead
    letters with and without a model, in event-time order per partition."""
    records = [r for i, m in enumerate(MODELS) for r in predictions(m, 4, 150, seed=40 + i)]
    records.sort(key=lambda r: r["event_time"])
    messages = as_messages(settings.topic_predictions, "Prediction", records, partitions=2)
    letters = [
        {
            "original_key": None,
            "original_value": b"x",
            "original_headers": [],
            "source_topic": settings.topic_requests,
            "source_partition": 0,
            "source_offset": i,
            "source_timestamp": None,
            "stage": "score",
            "error": "bad",
            "error_type": "model_error",
            "ts": T0_MS + i * 9_000,
            "worker": None,
            "model": "drift" if i % 2 else None,
        }
        for i in range(24)
    ]
    return messages + as_messages(settings.topic_dlq, "DeadLetter", letters)


def in_time_order(messages: Sequence[FakeMessage]) -> list[FakeMessage]:
    """Predictions by scorer time and dead letters by theirs, merged."""
    codec = new_codec()

    def when(m: FakeMessage) -> int:
        schema = "DeadLetter" if m.value() and m.topic().startswith("scoring.dlq") else ""
        record = codec.decode(m.value(), m.headers(), schema or "Prediction")
        return record["ts"] if schema else record["scored_time"]

    return sorted(messages, key=when)


def router(settings: Settings, partitions: Sequence[int]) -> MonitorRouter:
    topic = settings.topic_predictions
    return MonitorRouter(
        settings,
        REPARTITION,
        PARTS,
        new_codec(),
        lambda: [(topic, p) for p in partitions],
    )


def new_codec() -> Any:
    from schemas import Codec

    return Codec()


def bundles_of(outputs: Sequence[Any]) -> dict[int, list[Bundle]]:
    out: dict[int, list[Bundle]] = {}
    for o in outputs:
        assert o.topic == REPARTITION
        out.setdefault(o.partition, []).append(Bundle.decode(o.value))
    return out


def test_router_sends_each_model_to_its_partition_with_the_frontier(
    offline: tuple[Settings, Registry],
) -> None:
    settings, _registry = offline
    messages = traffic(settings)
    garbage = FakeMessage(settings.topic_predictions, 0, 10_000, b"\x00garbage", None, b"k")
    outputs = router(settings, [0, 1]).route([*messages, garbage])
    sent = bundles_of(outputs)
    assert sorted(sent) == [0, 1, 2]  # every partition, records or not
    everything = model_partition(ALL_MODELS, PARTS)
    for part, bundles in sent.items():
        *head, last = bundles
        assert all(not b.frontier and not b.rates for b in head)  # riding on the last
        stamps = {(s.partition, s.routed) for s in last.frontier}
        assert stamps == {(0, 10_001), (1, 900)}  # after the last offset routed of each
        assert bool(last.rates) == (part == everything)
        for b in bundles:
            for m in b.messages():
                if m.value() == b"\x00garbage":
                    assert part == everything
                    continue
                schema = "Prediction" if m.topic() == settings.topic_predictions else "DeadLetter"
                model = new_codec().decode(m.value(), m.headers(), schema)["model"]
                assert part == (everything if model is None else model_partition(model, PARTS))
    rows = sum(len(r.offsets) for b in sent[everything] for r in b.rates)
    assert rows == len(messages)  # every prediction (none is a shadow) and dead letter
    newest = max(m for m in (s.newest for s in sent[0][-1].frontier) if m is not None)
    assert newest == pytest.approx((T0_MS + 4 * 60_000 - 400) / 1000.0)


def fold_partitioned(
    settings: Settings, registry: Registry, messages: list[FakeMessage], claim_caught_up: bool
) -> tuple[list, list, list[PartitionOwner]]:
    """Two routers (predictions partition 0, then 1, the dead letters with the second),
    their bundles folded by three owners: all of the first router's, then the
    second's, its first batch twice. `claim_caught_up` tells the owners that every
    predictions partition is routed to its end, as if no router could lag."""
    topic = settings.topic_predictions
    p0 = [m for m in messages if m.topic() == topic and m.partition() == 0]
    rest = in_time_order([m for m in messages if m not in p0])
    options = MonitorSettings()
    owners = []
    for p in range(PARTS):
        owner = PartitionOwner(settings, options, registry=registry, notifier=Notifier([]))
        owner.own(p, REPARTITION, counts_all_models=p == model_partition(ALL_MODELS, PARTS))
        owner.restore(None)
        owner.source_partitions = [(topic, 0), (topic, 1)]
        ends = {(topic, 0): len(p0), (topic, 1): len(rest) - 24}
        owner.source_ends = ends
        owners.append(owner)
    outputs: dict[int, list] = {p: [] for p in range(PARTS)}
    offsets = dict.fromkeys(range(PARTS), 0)
    routers = ((router(settings, [0]), p0), (router(settings, [1]), rest))
    for n, (routing, routed) in enumerate(routers):
        for i in range(0, len(routed), 200):
            sent = routing.route(routed[i : i + 200])
            if n == 1 and i == 0:
                sent += sent  # routed twice (an abort on the embedded broker)
            for o in sent:
                owner = owners[o.partition]
                if claim_caught_up:
                    owner.source_ends = dict(owner.source_routed)
                bundle = FakeMessage(REPARTITION, o.partition, offsets[o.partition], o.value, None)
                offsets[o.partition] += 1
                outputs[o.partition] += owner.process([bundle])
                owner.committed()
    metrics, alerts = [], []
    for out in outputs.values():
        m, a = decode_outputs(out, settings)
        metrics += m
        alerts += a
    return metrics, alerts, owners


def rows(metrics: list) -> dict[tuple, float]:
    out = {}
    for m in metrics:
        key = (m.model, m.version, m.segment, m.window_start, m.metric, m.feature)
        assert key not in out
        out[key] = m.value
    return out


def test_owners_fed_at_different_paces_report_what_one_monitor_does(
    offline: tuple[Settings, Registry],
) -> None:
    settings, registry = offline
    for model in ("versions", "drift"):
        register(registry, model)
    register(registry, "noref", reference=False)
    messages = traffic(settings)
    one = new_monitor(settings, registry)
    # One monitor reads both partitions side by side: nothing lags behind another.
    one.lagging = lambda: []
    outputs = []
    ordered = in_time_order(messages)
    for i in range(0, len(ordered), 200):
        outputs += one.process(ordered[i : i + 200])
        one.committed()
    expected, expected_alerts = decode_outputs(outputs, settings)

    metrics, alerts, owners = fold_partitioned(settings, registry, messages, False)
    assert rows(metrics) == pytest.approx(rows(expected))
    assert len(alerts) == len(expected_alerts)
    assert not one.window.dropped_late and not one.dlq_window.dropped_late
    assert all(not o.window.dropped_late and not o.dlq_window.dropped_late for o in owners)
    assert sum(o.counts["skipped_seen"] for o in owners) > 0  # the batch routed twice
    assert any(k[0] == ALL_MODELS for k in rows(metrics))

    # Owners told that nothing lags close the windows before the slow router's events.
    _metrics, _alerts, hasty = fold_partitioned(settings, registry, messages, True)
    assert any(o.window.dropped_late for o in hasty)


def test_a_rewound_router_claims_nothing_it_must_route_again(
    offline: tuple[Settings, Registry],
) -> None:
    settings, _registry = offline
    routing = router(settings, [0, 1])
    routing.route(traffic(settings))
    assert {s.partition for s in routing.frontier()} == {0, 1}
    routing.rewound([(settings.topic_predictions, 1)])  # its transaction aborted
    assert [(s.partition, s.routed) for s in routing.frontier()] == [(0, 900)]


def test_an_owner_lags_for_partitions_not_routed_to_their_end(
    offline: tuple[Settings, Registry],
) -> None:
    settings, registry = offline
    topic = settings.topic_predictions
    owner = PartitionOwner(settings, MonitorSettings(), registry=registry, notifier=Notifier([]))
    owner.own(1, REPARTITION, counts_all_models=False)
    owner.source_partitions = [(topic, 0), (topic, 1), (topic, 2)]
    owner.source_routed = {(topic, 0): 50, (topic, 1): 40}
    owner.source_ends = {(topic, 0): 50, (topic, 1): 41}
    # 1 is short of its end; 2 was never routed and its end is unknown.
    assert owner.lagging is not None and owner.lagging() == [(topic, 1), (topic, 2)]
    owner.source_ends = {(topic, 0): 50, (topic, 1): 40, (topic, 2): 0}  # 2 is empty
    assert owner.lagging() == []


def test_the_setting_picks_the_partitioned_lane(tmp_path: Any) -> None:
    from streams.config import load_settings
    from streams.roles.monitor import MonitorLane, PartitionedMonitorLane, monitor_lane

    env = {"LASTMILE_MONITOR_PARTITIONED": "true"}
    base = {"toml_path": None, "data_dir": tmp_path, "registry": str(tmp_path / "registry")}
    settings = load_settings(env=env, **base)
    assert settings.monitor.partitioned
    assert settings.monitor.repartition_topic_for(settings) == "monitor.input"
    lane = monitor_lane(settings)
    assert isinstance(lane, PartitionedMonitorLane)
    assert lane.private_topics == {"monitor.state", "monitor.input"}
    owner = lane.make_owner()  # one registry, codec and notifier for every owner
    assert owner.registry is lane.make_owner().registry
    assert type(monitor_lane(load_settings(env={}, **base))) is MonitorLane
