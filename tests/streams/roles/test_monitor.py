"""The monitor role: unit tests of its handler, without Kafka (through the embedded
broker: test_monitor_broker.py).

Event times are set by the tests (aligned on minutes from ``T0``), never the wall clock,
so which window an event lands in, and when windows close, is deterministic.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitor_traffic import (
    CODEC,
    FEATURES,
    T0_MS,
    feature_rows,
    predictions,
    register,
)

from monitors.events import AlertEvent, MetricValue
from monitors.notify import Notifier
from monitors.state import chunk_header, decode_snapshot
from streams.config import Settings, load_settings
from streams.models import Registry, fit_reference_profile
from streams.records import alert_from_avro, alert_to_avro, metric_from_avro, metric_to_avro
from streams.roles.monitor import (
    Monitor,
    MonitorSettings,
)


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
    s = load_settings(
        env={
            "LASTMILE_MONITOR_WINDOW": "2m",
            "LASTMILE_MONITOR_STEP": "30s",
            "LASTMILE_MONITOR_ALLOWED_LATENESS": "5",
            "LASTMILE_MONITOR_WEBHOOKS": "http://a/hook, http://b/hook",
            "LASTMILE_MONITOR_SEGMENTS": "plan,variant",
            "LASTMILE_MONITOR_DETECTORS": "",
            "LASTMILE_MONITOR_JOIN_CAPACITY": "10",
        },
        toml_path=None,
    ).monitor
    assert (s.window, s.step, s.allowed_lateness, s.tumbling) == (120.0, 30.0, 5.0, False)
    assert s.webhooks == ("http://a/hook", "http://b/hook")
    assert s.segments == ("plan", "variant") and s.detectors == () and s.join_capacity == 10
    assert load_settings(env={}, toml_path=None).monitor.tumbling
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
