"""The monitor role through the embedded broker: simulated streams, drift alerts,
restarts and a worker killed inside a transaction.

Event times are set by the tests (aligned on minutes from ``T0``), never the wall clock,
so which window an event lands in, and when windows close, is deterministic.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from monitor_traffic import (
    CODEC,
    Recorder,
    predictions,
    register,
    window_end,
)

from monitors.events import AlertEvent
from monitors.notify import Notifier
from streams.config import Settings, load_settings, settings_env
from streams.kafka.topics import ensure_topics
from streams.models import Registry
from streams.records import alert_from_avro, metric_from_avro
from streams.roles.monitor import (
    Monitor,
    MonitorLane,
    MonitorSettings,
    read_snapshot,
)

# -- through the broker ---------------------------------------------------------------------


def produce(settings: Settings, topic: str, schema: str, records: Sequence[dict]) -> None:
    producer = Producer(settings.producer_config())
    for r in records:
        value, headers = CODEC.encode(schema, r)
        while True:
            try:
                producer.produce(topic, value, r["request_id"], headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(30) == 0


def read_topic(settings: Settings, topic: str, schema: str) -> list[dict[str, Any]]:
    """Every committed record of a topic, decoded."""
    consumer = Consumer(
        settings.consumer_config(f"reader-{uuid.uuid4().hex[:6]}", **{"enable.partition.eof": True})
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        consumer.assign(parts)
        pending = {tp.partition for tp in parts}
        out = []
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                out.append(CODEC.decode(msg.value(), msg.headers(), schema))
        assert not pending, f"could not read {topic} to its end"
        return out
    finally:
        consumer.close()


def wait_until(check: Callable[[], bool], timeout: float, lane: MonitorLane) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert not lane.failed, lane.stats.last_error
        assert time.monotonic() < deadline, f"timed out; monitor counts {dict(lane.monitor.counts)}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def module_settings(
    broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], Settings]:
    base = tmp_path_factory.mktemp("monitor")

    def make() -> Settings:
        suffix = uuid.uuid4().hex[:8]
        defaults = load_settings(env={}, toml_path=None)
        topics = {f"topic_{role}": f"{name}.{suffix}" for role, name in defaults.topics.items()}
        return load_settings(
            env={},
            toml_path=None,
            kafka_port=broker.port,
            data_dir=base / suffix,
            registry=str(base / suffix / "registry"),
            **topics,
        )

    return make


PER_WINDOW = 2000
STEADY_WINDOWS = 50  # 100,000 events
DRIFT_WINDOWS = 12
ABRUPT_AT = 4 * PER_WINDOW + 600  # 30% into window 4
ABRUPT_UNTIL = 8 * PER_WINDOW  # back to the reference from window 8
GRADUAL_AT = 4 * PER_WINDOW  # the drifted share ramps 0 -> 1 over windows 4..7
CONCEPT_AT = 6 * PER_WINDOW  # the "perf" model's labels turn to noise


@pytest.fixture(scope="module")
def scenario(module_settings: Callable[[], Settings]) -> Iterator[dict[str, Any]]:
    """Five models in one stream through one monitor lane: steady (100k events), abrupt
    and gradual feature drift, a version without reference, and outcomes with concept drift."""
    settings = module_settings()
    ensure_topics(settings)
    registry = Registry.from_settings(settings)
    for model in ("steady", "abrupt", "gradual", "perf"):
        register(registry, model)
    register(registry, "noref", reference=False)
    records = predictions("steady", STEADY_WINDOWS, PER_WINDOW, seed=11)
    records += predictions(
        "abrupt",
        DRIFT_WINDOWS,
        PER_WINDOW,
        seed=12,
        x2_shift=lambda i: np.where((i >= ABRUPT_AT) & (i < ABRUPT_UNTIL), 1.0, 0.0),
    )
    records += predictions(
        "gradual",
        DRIFT_WINDOWS,
        PER_WINDOW,
        seed=13,
        plan_mix=lambda i: np.clip((i - GRADUAL_AT) / (4 * PER_WINDOW), 0.0, 1.0),
    )
    records += predictions("noref", DRIFT_WINDOWS, PER_WINDOW, seed=14)
    perf = predictions("perf", DRIFT_WINDOWS, PER_WINDOW, seed=15)
    records += perf
    rng = np.random.default_rng(16)
    outcomes = []
    for i, r in enumerate(perf):
        truth = r["label"] if i < CONCEPT_AT else str(rng.integers(0, 2))
        outcomes.append(
            {
                "request_id": r["request_id"],
                "model": "perf",
                "label": truth,
                "value": None,
                "event_time": r["event_time"] + 20_000,
            }
        )
    records.sort(key=lambda r: r["event_time"])
    started = time.perf_counter()
    produce(settings, settings.topic_predictions, "Prediction", records)
    produce(settings, settings.topic_outcomes, "Outcome", outcomes)
    produced_s = time.perf_counter() - started

    recorder = Recorder()
    logging.getLogger("lastmile.monitor").addHandler(recorder)
    # Default rules and windows; a group of its own, as tests share the broker.
    options = MonitorSettings(group_id=f"monitor-{uuid.uuid4().hex[:8]}")
    lane = MonitorLane(
        settings, options, Monitor(settings, options, registry=registry, notifier=Notifier([]))
    )
    started = time.perf_counter()
    lane.start()
    try:
        total = len(records)
        wait_until(lambda: lane.stats.batches > 0, 60, lane)
        first_batch, first_count = time.perf_counter(), lane.stats.consumed
        wait_until(lambda: lane.stats.consumed >= total + len(outcomes), 120, lane)
        done = time.perf_counter()
        elapsed = done - started
        steady_rate = (total + len(outcomes) - first_count) / (done - first_batch)
        metrics = [
            metric_from_avro(r)
            for r in read_topic(settings, settings.topic_metrics, "MonitorMetric")
        ]
        alerts = [alert_from_avro(r) for r in read_topic(settings, settings.topic_alerts, "Alert")]
        yield {
            "settings": settings,
            "lane": lane,
            "metrics": metrics,
            "alerts": alerts,
            "records": total,
            "elapsed": elapsed,
            "steady_rate": steady_rate,
            "produced_s": produced_s,
            "log": recorder,
        }
    finally:
        lane.stop()
        logging.getLogger("lastmile.monitor").removeHandler(recorder)


def drift_alerts(alerts: list[AlertEvent], model: str) -> list[AlertEvent]:
    return [a for a in alerts if a.model == model and a.kind == "drift"]


def test_throughput_and_every_window_once(scenario: dict[str, Any]) -> None:
    metrics = scenario["metrics"]
    rate = scenario["records"] / scenario["elapsed"]
    print(
        f"\nmonitor lane: {scenario['records']:,} predictions (+24,000 outcomes) in "
        f"{scenario['elapsed']:.1f} s from start, group join included ({rate:,.0f} predictions/s); "
        f"{scenario['steady_rate']:,.0f} messages/s after the first batch; produced in "
        f"{scenario['produced_s']:.1f} s; counts {dict(scenario['lane'].monitor.counts)}"
    )
    keys = Counter((m.key, m.window_start) for m in metrics)
    assert max(keys.values()) == 1
    counts = {
        (m.model, m.window_start): m.value
        for m in metrics
        if m.metric == "count" and m.segment is None
    }
    # Every window but the newest one closed, with every event in it.
    assert sum(1 for (model, _) in counts if model == "steady") == STEADY_WINDOWS - 1
    assert all(v == PER_WINDOW for v in counts.values())
    for model in ("abrupt", "gradual", "noref", "perf"):
        assert sum(1 for (m, _) in counts if m == model) == DRIFT_WINDOWS
    assert not scenario["lane"].monitor.window.dropped_late


def test_abrupt_drift_alerts_within_two_windows_then_resolves(scenario: dict[str, Any]) -> None:
    alerts = drift_alerts(scenario["alerts"], "abrupt")
    firing = [a for a in alerts if a.state == "firing"]
    assert {(a.rule, a.feature) for a in firing} == {("feature_drift", "x2")}
    drift_window = ABRUPT_AT // PER_WINDOW
    assert window_end(drift_window) <= firing[0].ts <= window_end(drift_window + 1)
    resolved = [a for a in alerts if a.state == "resolved"]
    assert [(a.feature, a.ts) for a in resolved] == [("x2", window_end(ABRUPT_UNTIL // PER_WINDOW))]


def test_gradual_drift_alerts_within_five_windows(scenario: dict[str, Any]) -> None:
    firing = [a for a in drift_alerts(scenario["alerts"], "gradual") if a.state == "firing"]
    assert {(a.rule, a.feature) for a in firing} == {("feature_drift", "plan")}
    start = GRADUAL_AT // PER_WINDOW
    assert window_end(start) <= firing[0].ts <= window_end(start + 4)


def test_stationary_stream_raises_no_drift_alert(scenario: dict[str, Any]) -> None:
    assert drift_alerts(scenario["alerts"], "steady") == []
    steady = [m for m in scenario["metrics"] if m.model == "steady" and m.metric == "wasserstein"]
    assert len(steady) == (STEADY_WINDOWS - 1) * 4  # x0, x1, x2 and the score, every window
    print(
        f"\nsteady: max normalised Wasserstein {max(m.value for m in steady):.3f} (threshold 0.1)"
    )
    assert [a for a in scenario["alerts"] if a.model == "steady"] == []


def test_version_without_reference(scenario: dict[str, Any]) -> None:
    noref = [m for m in scenario["metrics"] if m.model == "noref"]
    names = {m.metric for m in noref}
    assert {"count", "throughput", "latency_p50", "latency_p99", "missing_rate"} <= names
    assert not names & {"drift", "psi", "ks", "wasserstein", "drift_share", "out_of_range_rate"}
    assert len(scenario["log"].lines("noref v1 has no reference profile")) == 1
    throughput = [m.value for m in noref if m.metric == "throughput"]
    assert throughput == pytest.approx([PER_WINDOW / 60.0] * DRIFT_WINDOWS)


def test_performance_from_joined_outcomes(scenario: dict[str, Any]) -> None:
    accuracy = [
        m
        for m in scenario["metrics"]
        if m.model == "perf" and m.metric == "accuracy" and m.segment is None
    ]
    assert accuracy and max(m.value for m in accuracy) == 1.0
    drop = [a for a in scenario["alerts"] if a.model == "perf" and a.rule == "accuracy_drop"]
    assert drop and drop[0].state == "firing"
    assert (
        window_end(CONCEPT_AT // PER_WINDOW)
        <= drop[0].ts
        <= window_end(CONCEPT_AT // PER_WINDOW + 5)
    )
    assert drift_alerts(scenario["alerts"], "perf") == []


# -- restarts: 24 windows of 1,500 predictions, x2 drifting over windows 8 to 13 ----------

RESTART_WINDOWS, RESTART_PER_WINDOW = 24, 1500


def produce_drifting_stream(
    settings: Settings, model: str, seed: int
) -> tuple[Registry, list[dict]]:
    """`model` registered with its reference profile, and its predictions produced."""
    ensure_topics(settings)
    registry = Registry.from_settings(settings)
    register(registry, model)
    records = predictions(
        model,
        RESTART_WINDOWS,
        RESTART_PER_WINDOW,
        seed=seed,
        x2_shift=lambda i: np.where(
            (i >= 8 * RESTART_PER_WINDOW) & (i < 14 * RESTART_PER_WINDOW), 1.0, 0.0
        ),
    )
    produce(settings, settings.topic_predictions, "Prediction", records)
    return registry, records


def assert_each_window_once(settings: Settings) -> None:
    """Each window's metrics are read once, every event counted, x2's drift alert fired
    and resolved once."""
    metrics = [
        metric_from_avro(r) for r in read_topic(settings, settings.topic_metrics, "MonitorMetric")
    ]
    keys = Counter((m.key, m.window_start) for m in metrics)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]
    counts = {m.window_start: m.value for m in metrics if m.metric == "count"}
    assert len(counts) == RESTART_WINDOWS - 1
    assert set(counts.values()) == {float(RESTART_PER_WINDOW)}
    alerts = [alert_from_avro(r) for r in read_topic(settings, settings.topic_alerts, "Alert")]
    x2 = [(a.state, a.ts) for a in alerts if a.feature == "x2" and a.rule == "feature_drift"]
    assert x2 == [("firing", window_end(9)), ("resolved", window_end(14))]


def test_restart_mid_stream_loses_and_duplicates_nothing(
    module_settings: Callable[[], Settings],
) -> None:
    """The first lane dies mid-stream (its handler raises); a second one restores the last
    snapshot, seeks back to its offsets and finishes: each window once, every event counted."""
    settings = module_settings()
    registry, records = produce_drifting_stream(settings, "r", seed=21)
    options = MonitorSettings(snapshot_interval=3600.0, group_id=f"monitor-{uuid.uuid4().hex[:8]}")

    def lane() -> MonitorLane:
        monitor = Monitor(settings, options, registry=registry, notifier=Notifier([]))
        return MonitorLane(settings, options, monitor, max_batch=400)

    first = lane()
    real = first.monitor.process
    # Batches folded since the last one that carried a snapshot (one that closed a window):
    # the lane dies after at least one, so its offsets are past the snapshot's.
    since_snapshot = [0]

    def dies_mid_stream(messages: Sequence[Any]) -> Any:
        if first.monitor.counts["predictions"] >= len(records) // 2 and since_snapshot[0]:
            raise RuntimeError("killed")
        outputs = real(messages)
        snapshot = any(out.topic == first.monitor.state_topic for out in outputs)
        since_snapshot[0] = 0 if snapshot else since_snapshot[0] + 1
        return outputs

    first.monitor.process = dies_mid_stream  # type: ignore[method-assign]
    first.start()
    deadline = time.monotonic() + 60
    while not first.failed:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first.stop()
    snapshot = read_snapshot(settings, first.monitor.state_topic, options.group_id)
    assert snapshot is not None
    folded = sum(off for _, _, off in snapshot[1]["positions"])
    assert 0 < folded < len(records)
    # Batches that emitted nothing were committed after the snapshot, so on Apache Kafka
    # the group's offsets are ahead of it. (The embedded broker drops the offsets of a
    # transaction that produced nothing, so set them as Kafka would have.) Those messages
    # must be folded again from the snapshot's offsets, not skipped.
    reached = {
        k: v for k, v in first.monitor.positions.items() if k[0] == settings.topic_predictions
    }
    assert sum(reached.values()) > folded
    probe = Consumer(settings.consumer_config(options.group_id))
    offsets = [TopicPartition(t, p, off) for (t, p), off in reached.items()]
    deadline = time.monotonic() + 20
    while True:
        try:
            probe.commit(offsets=offsets, asynchronous=False)
            break
        except KafkaException as err:
            # The dead lane's member leaves the group when its session times out.
            assert time.monotonic() < deadline, err
            time.sleep(0.5)
    parts = [TopicPartition(t, p) for t, p in reached]
    assert sum(tp.offset for tp in probe.committed(parts, timeout=10)) == sum(reached.values())
    probe.close()

    second = lane()
    second.start()
    try:
        wait_until(lambda: second.stats.consumed >= len(records) - folded, 60, second)
    finally:
        second.stop()
    assert second.monitor.counts["skipped_seen"] == 0
    assert_each_window_once(settings)


# A monitor worker that kills itself, from its transaction number argv[1] on, in the
# first that emits windows, before it sends its state (tests/dying.py): the metrics and
# alerts it sent are readable on the embedded broker, its snapshot is not. argv[2] is
# its group.
DYING_MONITOR = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from dying import dying
    from monitors.notify import Notifier
    from streams.config import load_settings
    from streams.roles.monitor import Monitor, MonitorLane, MonitorSettings
    from streams.models import Registry

    settings = load_settings()
    options = MonitorSettings(snapshot_interval=3600.0, group_id=sys.argv[2])
    registry = Registry.from_settings(settings)
    monitor = Monitor(settings, options, registry=registry, notifier=Notifier([]))
    lane = dying(MonitorLane, int(sys.argv[1]), monitor.state_topic)
    lane(settings, options, monitor, max_batch=400).run()
    """
)


def test_sigkill_before_a_commit_neither_stalls_nor_repeats_a_window(
    module_settings: Callable[[], Settings], tmp_path: Path
) -> None:
    """A monitor worker is killed inside a transaction, after its metrics and before its
    snapshot. The next one fences it (the state topic is readable again), restores the
    last committed snapshot, replays, and skips the metrics and alerts the killed one
    left readable."""
    settings = module_settings()
    registry, records = produce_drifting_stream(settings, "k", seed=22)
    group = f"monitor-{uuid.uuid4().hex[:8]}"
    script = DYING_MONITOR.format(tests=str(Path(__file__).resolve().parents[2]))
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        dead = subprocess.run(
            [sys.executable, "-c", script, "40", group],
            env={**os.environ, **settings_env(settings)},
            stderr=log,
            timeout=180,
        )
    assert dead.returncode == -9, log_path.read_text()[-3000:]
    visible = read_topic(settings, settings.topic_metrics, "MonitorMetric")
    assert visible, "the killed worker emitted no window: kill it later"

    options = MonitorSettings(snapshot_interval=3600.0, group_id=group)
    monitor = Monitor(settings, options, registry=registry, notifier=Notifier([]))
    lane = MonitorLane(settings, options, monitor, max_batch=400)
    lane.start()
    try:
        wait_until(
            lambda: (
                len(read_topic(settings, settings.topic_metrics, "MonitorMetric")) >= len(visible)
                and monitor.counts["predictions"] > 0
                and not lane._lagging()
            ),
            120,
            lane,
        )
        time.sleep(2.0)
    finally:
        lane.stop()
    assert_each_window_once(settings)
