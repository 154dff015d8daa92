"""The monitor role: unit tests of its handler, and simulated streams through the embedded broker.

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
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from monitors.events import AlertEvent, MetricValue
from monitors.notify import Notifier
from monitors.state import chunk_header, decode_snapshot
from schemas.codec import Codec
from streams.config import Settings, load_settings, settings_env
from streams.kafka.topics import ensure_topics
from streams.models import Registry, fit_reference_profile
from streams.records import alert_from_avro, alert_to_avro, metric_from_avro, metric_to_avro
from streams.roles.monitor import (
    Monitor,
    MonitorLane,
    MonitorSettings,
    read_snapshot,
)

T0_MS = 1_700_000_040_000  # a whole minute: window w is [T0 + 60 w, T0 + 60 (w + 1)) s
WINDOW_MS = 60_000
FEATURES = ["x0", "x1", "x2", "plan"]
PLAN_REFERENCE = (0.5, 0.3, 0.2)
PLAN_DRIFTED = (0.1, 0.3, 0.6)
CODEC = Codec()


class LinearModel:
    """A python-flavor classifier: P(1) = sigmoid(x0 - x1). x2 and plan do not matter,
    so drifting them leaves the score alone."""

    classes_ = [0, 1]

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=object)
        p = 1.0 / (1.0 + np.exp(-(X[:, 0].astype(float) - X[:, 1].astype(float))))
        return np.column_stack([1.0 - p, p])


def feature_rows(
    rng: np.random.Generator, n: int, x2_shift: Any = 0.0, plan_mix: Any = 0.0
) -> list[dict[str, Any]]:
    """Rows of the reference distribution; `x2_shift` and `plan_mix` (per row) drift them."""
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    x2 = rng.normal(size=n) + np.broadcast_to(x2_shift, (n,))
    ref = rng.choice(["a", "b", "c"], size=n, p=PLAN_REFERENCE)
    drifted = rng.choice(["a", "b", "c"], size=n, p=PLAN_DRIFTED)
    plan = np.where(rng.random(n) < np.broadcast_to(plan_mix, (n,)), drifted, ref)
    return [
        {"x0": float(a), "x1": float(b), "x2": float(c), "plan": str(d)}
        for a, b, c, d in zip(x0, x1, x2, plan, strict=True)
    ]


def register(registry: Registry, model: str, reference: bool = True, seed: int = 3) -> int:
    rows = feature_rows(np.random.default_rng(seed), 5000) if reference else None
    return registry.register(
        model, LinearModel(), "python", features=FEATURES, reference_rows=rows
    ).version


def predictions(
    model: str,
    windows: int,
    per_window: int,
    seed: int,
    version: int = 1,
    x2_shift: Callable[[np.ndarray], np.ndarray] | None = None,
    plan_mix: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Prediction records, `per_window` events evenly spread over each window; the drift
    functions take the event index and return the shift / the drifted share per event."""
    rng = np.random.default_rng(seed)
    n = windows * per_window
    idx = np.arange(n)
    rows = feature_rows(
        rng,
        n,
        0.0 if x2_shift is None else x2_shift(idx),
        0.0 if plan_mix is None else plan_mix(idx),
    )
    times = T0_MS + (idx // per_window) * WINDOW_MS + (idx % per_window) * WINDOW_MS // per_window
    latency = rng.gamma(2.0, 4.0, size=n)
    out = []
    for i, row in enumerate(rows):
        score = 1.0 / (1.0 + np.exp(-(row["x0"] - row["x1"])))
        t = int(times[i])
        out.append(
            {
                "request_id": f"{model}-{seed}-{i}",
                "model": model,
                "version": version,
                "variant": "champion",
                "score": float(score),
                "label": "1" if score >= 0.5 else "0",
                "features": row,
                "event_time": t,
                "scored_time": t + 5,
                "latency_ms": float(latency[i]),
            }
        )
    return out


def window_end(w: int) -> float:
    """End of window `w`, in seconds (what alerts carry as ts, after mapping back)."""
    return (T0_MS + (w + 1) * WINDOW_MS) / 1000.0


class FakeMessage:
    """What the handler reads of a confluent-kafka Message."""

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        headers: Any,
        key: Any = None,
        timestamp: int = 0,
    ) -> None:
        self._v = (topic, partition, offset, value, headers, key, timestamp)

    def topic(self) -> str:
        return self._v[0]

    def partition(self) -> int:
        return self._v[1]

    def offset(self) -> int:
        return self._v[2]

    def value(self) -> bytes | None:
        return self._v[3]

    def headers(self) -> Any:
        return self._v[4]

    def key(self) -> Any:
        return self._v[5]

    def timestamp(self) -> tuple[int, int]:
        return (1, self._v[6])

    def error(self) -> None:
        return None


def as_messages(
    topic: str,
    schema: str,
    records: Sequence[dict[str, Any]],
    partitions: int = 1,
    offsets: dict[int, int] | None = None,
) -> list[FakeMessage]:
    """Encode records as messages, round-robin over `partitions` (offsets per partition)."""
    offsets = offsets if offsets is not None else defaultdict(int)
    out = []
    for i, r in enumerate(records):
        p = i % partitions
        value, headers = CODEC.encode(schema, r)
        out.append(FakeMessage(topic, p, offsets[p], value, headers, r.get("request_id")))
        offsets[p] += 1
    return out


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, text: str) -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]


def decode_outputs(outputs: Sequence[Any], settings: Settings) -> tuple[list, list]:
    metrics = [
        metric_from_avro(CODEC.decode(o.value, o.headers, "MonitorMetric"))
        for o in outputs
        if o.topic == settings.topic_metrics
    ]
    alerts = [
        alert_from_avro(CODEC.decode(o.value, o.headers, "Alert"))
        for o in outputs
        if o.topic == settings.topic_alerts
    ]
    return metrics, alerts


def run_batches(monitor: Monitor, messages: Sequence[Any], size: int) -> list[Any]:
    """Feed messages in batches as the lane would, committing each."""
    outputs: list[Any] = []
    for i in range(0, len(messages), size):
        outputs += monitor.process(messages[i : i + size])
        monitor.committed()
    return outputs


# -- units: settings, mapping, the handler without Kafka -------------------------------------


def test_settings_from_env() -> None:
    s = MonitorSettings.from_env(
        {
            "LASTMILE_MONITOR_WINDOW": "2m",
            "LASTMILE_MONITOR_STEP": "30s",
            "LASTMILE_MONITOR_ALLOWED_LATENESS": "5",
            "LASTMILE_MONITOR_WEBHOOKS": "http://a/hook, http://b/hook",
            "LASTMILE_MONITOR_SEGMENTS": "plan,variant",
            "LASTMILE_MONITOR_DETECTORS": "",
            "LASTMILE_MONITOR_JOIN_CAPACITY": "10",
        }
    )
    assert (s.window, s.step, s.allowed_lateness, s.tumbling) == (120.0, 30.0, 5.0, False)
    assert s.webhooks == ("http://a/hook", "http://b/hook")
    assert s.segments == ("plan", "variant") and s.detectors == () and s.join_capacity == 10
    assert MonitorSettings.from_env({}).tumbling
    settings = load_settings(env={}, toml_path=None, topic_metrics="monitor.metrics.x1")
    assert MonitorSettings().state_topic_for(settings) == "monitor.state.x1"
    with pytest.raises(ValueError, match="detector"):
        MonitorSettings(detectors=("score:nope",))


def test_avro_mapping_round_trips() -> None:
    m = MetricValue("churn", "3", 1_700_000_040.0, 1_700_000_100.0, "psi", "age", 0.25, "plan=a", 7)
    record = metric_to_avro(m, ts_ms=123)
    assert (record["version"], record["window_start"], record["ts"]) == (3, 1_700_000_040_000, 123)
    value, headers = CODEC.encode("MonitorMetric", record)
    assert metric_from_avro(CODEC.decode(value, headers, "MonitorMetric")) == m
    whole = MetricValue("*", "*", 0.0, 60.0, "dead_letter_rate", None, 0.5)
    assert metric_to_avro(whole, 0)["version"] is None
    assert metric_from_avro(metric_to_avro(whole, 0)) == whole
    a = AlertEvent("churn", "3", "drift", "drift", "age", 1.0, 0.5, "warning", rule="r", ts=120.0)
    record = alert_to_avro(a)
    assert (record["alert_id"], record["ts"], record["version"]) == (a.alert_id, 120_000, 3)
    assert record["message"] == a.message
    value, headers = CODEC.encode("Alert", record)
    assert alert_from_avro(CODEC.decode(value, headers, "Alert")) == a


def test_registry_reference_profile_loads_as_reference_profile() -> None:
    from monitors.profile import ReferenceProfile

    rows = feature_rows(np.random.default_rng(1), 300)
    raw = fit_reference_profile(rows, scores=[0.5] * 300)
    profile = ReferenceProfile.from_dict(raw)
    assert set(profile.features) == set(FEATURES) and profile.score is not None
    assert profile.features["plan"].kind == "categorical"


@pytest.fixture
def offline(tmp_path: Path) -> tuple[Settings, Registry]:
    settings = load_settings(
        env={}, toml_path=None, data_dir=tmp_path / "data", registry=str(tmp_path / "registry")
    )
    registry = Registry.from_settings(settings)
    register(registry, "m")
    return settings, registry


def new_monitor(settings: Settings, registry: Registry, **options: Any) -> Monitor:
    return Monitor(settings, MonitorSettings(**options), registry=registry, notifier=Notifier([]))


@pytest.mark.parametrize(
    "window", [{}, {"window": 120.0, "step": 60.0}], ids=["tumbling", "sliding"]
)
def test_snapshot_restore_continues_exactly(
    offline: tuple[Settings, Registry], window: dict[str, float]
) -> None:
    """Stop after any batch, restore the snapshot into a new monitor, continue: the
    metrics are those of a monitor that never stopped, each window once."""
    settings, registry = offline
    drift = lambda i: np.where(i >= 6 * 800, 1.5, 0.0)  # noqa: E731
    records = predictions("m", 12, 800, seed=3, x2_shift=drift)
    messages = as_messages(settings.topic_predictions, "Prediction", records, partitions=3)
    straight = new_monitor(settings, registry, **window)
    expected, expected_alerts = decode_outputs(run_batches(straight, messages, 500), settings)

    first = new_monitor(settings, registry, **window)
    split = 3900  # the batch [3500, 3900) closes no window
    head = run_batches(first, messages[:split], 500)
    chunks = [o.value for o in head if o.topic == first.state_topic]
    assert chunks, "a batch that emits writes a snapshot"
    # The newest snapshot is the one of the last batch that produced one.
    last_sid = max(chunk_header(c)[0] for c in chunks)
    newest = decode_snapshot([c for c in chunks if chunk_header(c)[0] == last_sid])
    second = new_monitor(settings, registry, **window)
    second.restore(newest)
    # The last batches emitted nothing, so wrote no snapshot: they are folded again.
    assert 0 < sum(second.positions.values()) < split
    # Replay from the snapshot's offsets, as the lane's seek does.
    rest = [m for m in messages if m.offset() >= second.positions[(m.topic(), m.partition())]]
    tail = run_batches(second, rest, 500)
    got, got_alerts = decode_outputs(head + tail, settings)
    key = lambda m: (m.key, m.window_start)  # noqa: E731
    assert Counter(map(key, got)) == Counter(map(key, expected))
    assert all(v == 1 for v in Counter(map(key, got)).values())
    counts = {m.window_start: m.value for m in got if m.metric == "count" and m.segment is None}
    assert counts == {
        m.window_start: m.value for m in expected if m.metric == "count" and m.segment is None
    }
    assert [(a.rule, a.feature, a.state, a.ts) for a in got_alerts] == [
        (a.rule, a.feature, a.state, a.ts) for a in expected_alerts
    ]
    assert any(a.feature == "x2" and a.state == "firing" for a in got_alerts)


def test_rollback_returns_to_the_committed_snapshot(offline: tuple[Settings, Registry]) -> None:
    settings, registry = offline
    records = predictions("m", 4, 500, seed=4)
    messages = as_messages(settings.topic_predictions, "Prediction", records)
    monitor = new_monitor(settings, registry, snapshot_interval=3600.0)
    monitor.assigned({(settings.topic_predictions, 0): 0})
    run_batches(monitor, messages[:700], 700)  # window 0 closes: committed with a snapshot
    committed = dict(monitor.positions)
    monitor.process(messages[700:900])
    monitor.committed()  # no output, no snapshot: offsets move on, the snapshot stays
    outputs = monitor.process(messages[900:1600])  # window 1 closes; the transaction aborts
    assert any(o.topic == settings.topic_metrics for o in outputs)
    seek = monitor.rolled_back()
    assert seek == committed
    # Folding the same messages again emits window 1 exactly as the first time.
    replayed = monitor.process(messages[700:900])
    assert {o.topic for o in replayed} <= {monitor.state_topic}  # a fresh snapshot, no output
    monitor.committed()
    again = monitor.process(messages[900:1600])
    assert decode_outputs(again, settings)[0] == decode_outputs(outputs, settings)[0]


def test_partition_skew_is_not_late(offline: tuple[Settings, Registry]) -> None:
    """Partition 0 is read ten windows ahead of partition 1: with the frontier, partition
    1's events still count; without it they would be dropped as late."""
    settings, registry = offline
    records = predictions("m", 10, 400, seed=5)
    messages = as_messages(settings.topic_predictions, "Prediction", records, partitions=2)
    p0 = [m for m in messages if m.partition() == 0]
    p1 = [m for m in messages if m.partition() == 1]
    monitor = new_monitor(settings, registry)
    pending = {0: len(p0), 1: len(p1)}
    monitor.lagging = lambda: [(settings.topic_predictions, p) for p, n in pending.items() if n]
    outputs = []
    for part, msgs in ((0, p0), (1, p1)):
        for i in range(0, len(msgs), 300):
            batch = msgs[i : i + 300]
            pending[part] -= len(batch)
            outputs += monitor.process(batch)
            monitor.committed()
    metrics, _ = decode_outputs(outputs, settings)
    counts = [m.value for m in metrics if m.metric == "count"]
    assert counts == [400.0] * 9  # the tenth window is still open
    assert not monitor.window.dropped_late


def test_dead_letters_quality_and_no_reference(
    offline: tuple[Settings, Registry], caplog: pytest.LogCaptureFixture
) -> None:
    settings, registry = offline
    monitor = new_monitor(settings, registry)
    records = predictions("unknown", 3, 200, seed=6)
    for r in records[::10]:
        r["features"]["x0"] = None
    messages = as_messages(settings.topic_predictions, "Prediction", records)
    garbage = FakeMessage(settings.topic_predictions, 1, 0, b"\x00garbage", None, b"k")
    dead = [
        {
            "original_key": None,
            "original_value": b"x",
            "original_headers": [],
            "source_topic": settings.topic_requests,
            "source_partition": 0,
            "source_offset": i,
            "source_timestamp": None,
            "stage": "decode",
            "error": "bad",
            "error_type": "undecodable",
            "ts": T0_MS + i * 1000,
            "worker": None,
            "model": "unknown",
        }
        for i in range(12)
    ]
    dlq = as_messages(settings.topic_dlq, "DeadLetter", dead)
    with caplog.at_level(logging.WARNING, logger="lastmile.monitor"):
        outputs = run_batches(monitor, [garbage, *dlq, *messages], 150)
    assert len([r for r in caplog.records if "no reference profile" in r.getMessage()]) == 1
    letters = [o for o in outputs if o.topic == settings.topic_dlq]
    assert len(letters) == 1 and letters[0].key == b"k"
    letter = CODEC.decode(letters[0].value, letters[0].headers, "DeadLetter")
    assert (letter["source_partition"], letter["stage"]) == (1, "decode")
    metrics, _ = decode_outputs(outputs, settings)
    mine = [m for m in metrics if m.model == "unknown" and m.window_start == T0_MS / 1000]
    by_metric = {(m.metric, m.feature): m.value for m in mine}
    assert not any(m.metric in ("drift", "psi", "wasserstein", "drift_share") for m in metrics)
    assert by_metric[("count", None)] == 200
    assert by_metric[("missing_rate", "x0")] == pytest.approx(0.1)
    assert 0 < by_metric[("latency_p50", None)] < by_metric[("latency_p99", None)] < 0.1
    assert ("out_of_range_rate", "x0") not in by_metric  # needs a reference
    rates = {m.model: m.value for m in metrics if m.metric == "dead_letter_rate"}
    assert rates["unknown"] == pytest.approx(12 / 212) and rates["*"] == rates["unknown"]


def test_outcomes_join_and_accuracy(offline: tuple[Settings, Registry]) -> None:
    settings, registry = offline
    monitor = new_monitor(settings, registry, segments=("variant",))
    records = predictions("m", 4, 500, seed=8)
    rng = np.random.default_rng(9)
    outcomes = []
    for i, r in enumerate(records):
        truth = r["label"] if i < 1000 else rng.choice(["0", "1"])  # concept drift at 1000
        outcomes.append(
            {
                "request_id": r["request_id"],
                "model": "m",
                "label": truth,
                "value": None,
                "event_time": r["event_time"] + 1000,
            }
        )
    pred_msgs = as_messages(settings.topic_predictions, "Prediction", records)
    out_msgs = as_messages(settings.topic_outcomes, "Outcome", outcomes)
    # The first outcome arrives before its prediction: it waits in the buffer.
    batches = [out_msgs[:1], pred_msgs[:500], out_msgs[1:500], pred_msgs[500:1000]]
    batches += [out_msgs[500:1000], pred_msgs[1000:1500], out_msgs[1000:1500], pred_msgs[1500:]]
    outputs = []
    for b in batches:
        outputs += monitor.process(b)
        monitor.committed()
    metrics, _ = decode_outputs(outputs, settings)
    assert monitor.counts["joined"] == 1500
    accuracy = [m for m in metrics if m.metric == "accuracy" and m.segment is None]
    assert accuracy and accuracy[0].value == 1.0
    assert any(m.segment == "variant=champion" for m in metrics if m.metric == "accuracy")
    later = [m.value for m in metrics if m.metric == "accuracy" and m.segment is None]
    assert later[-1] < 0.8
    # ADWIN on the error stream (the default detector) sees the concept change.
    changes = [m for m in metrics if m.metric == "error_change"]
    assert changes and changes[0].window_end >= outcomes[1000]["event_time"] / 1000


def test_score_change_detector(offline: tuple[Settings, Registry]) -> None:
    settings, registry = offline
    monitor = new_monitor(settings, registry, detectors=("score:page_hinkley",))
    records = predictions("m", 2, 500, seed=10)
    for i, r in enumerate(records):
        r["score"] = 0.2 if i < 500 else 0.8
    outputs = run_batches(
        monitor, as_messages(settings.topic_predictions, "Prediction", records), 200
    )
    changes = [m for m in decode_outputs(outputs, settings)[0] if m.metric == "score_change"]
    assert changes and records[500]["event_time"] / 1000 <= changes[0].window_end


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

    def dies_mid_stream(messages: Sequence[Any]) -> Any:
        if first.monitor.counts["predictions"] >= len(records) // 2:
            raise RuntimeError("killed")
        return real(messages)

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
            lambda: len(read_topic(settings, settings.topic_metrics, "MonitorMetric"))
            >= len(visible) and monitor.counts["predictions"] > 0
            and not lane._lagging(),
            120,
            lane,
        )
        time.sleep(2.0)
    finally:
        lane.stop()
    assert_each_window_once(settings)
