"""The partitioned monitor through the embedded broker: two workers in one group give
the metrics and alerts one monitor gives on the same stream.

The stream comes in phases (two windows of predictions, then their outcomes), each read
to its end by every monitor before the next is produced, so that what a closing window
reports of the outcomes does not depend on how the fetches interleave the topics (it
would not be the same between two runs of one monitor either). Within a phase one of
the two workers routes later than the other, as a slow router would: an owner that did
not hold its watermark for the slow router's partitions would close windows before
their events came and drop them as late.

Sketch sizes (200 events a window and key) keep the quantile sketches exact, the rolling
performance covers one phase's outcomes, and the change detectors are off: otherwise
they depend on the order events arrive in, which differs between any two runs,
partitioned or not. Values are compared up to float rounding (sums in another order).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Message, Producer
from monitor_traffic import CODEC, T0_MS, WINDOW_MS, predictions, register
from test_monitor_broker import produce, read_topic

from monitors.notify import Notifier
from streams.config import Settings, load_settings
from streams.kafka.lane import BatchLane, Output
from streams.kafka.partitioning import model_partition
from streams.kafka.topics import ensure_topics
from streams.models import Registry
from streams.records import alert_from_avro, metric_from_avro
from streams.roles.monitor import Monitor, MonitorLane, MonitorSettings
from streams.roles.monitor.owner import PartitionOwner
from streams.roles.monitor.partitioned import PartitionedMonitorLane

PER_WINDOW = 200
PHASES = 6  # two windows each
DRIFT_FROM, DRIFT_UNTIL = 4, 8  # windows of the "drift" model with x2 shifted
CONCEPT_FROM = 6  # from this window on, the "perf" model's outcomes are noise
# One model in each of the 3 repartition partitions at least (model_partition):
# versions -> 0 (with "*", the dead-letter rate of all models), noref -> 1, drift and perf -> 2.
MODELS = ("versions", "noref", "drift", "perf")


@pytest.fixture(scope="module")
def settings_pair(
    broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], tuple[Settings, Settings]]:
    """Makes settings for one monitor and for a partitioned group: topics of their own,
    one registry."""

    def make_pair() -> tuple[Settings, Settings]:
        base = tmp_path_factory.mktemp("partitioned")

        def make(name: str) -> Settings:
            suffix = uuid.uuid4().hex[:8]
            defaults = load_settings(env={}, toml_path=None)
            topics = {f"topic_{role}": f"{n}.{suffix}" for role, n in defaults.topics.items()}
            return load_settings(
                env={},
                toml_path=None,
                kafka_port=broker.port,
                data_dir=base / name,
                registry=str(base / "registry"),
                **topics,
            )

        return make("one"), make("group")

    return make_pair


@pytest.fixture(scope="module")
def two_settings(settings_pair: Callable[[], tuple[Settings, Settings]]) -> tuple[Settings, ...]:
    return settings_pair()


def stream() -> tuple[list[list[dict]], list[list[dict]], list[list[dict]]]:
    """Per phase: predictions (event-time order), dead letters, then outcomes."""
    n = 2 * PHASES
    drift_at, drift_until = DRIFT_FROM * PER_WINDOW, DRIFT_UNTIL * PER_WINDOW
    records = predictions("versions", n, PER_WINDOW, seed=31)
    records += predictions("versions", n, PER_WINDOW, seed=32, version=2)
    records += predictions("noref", n, PER_WINDOW, seed=33)
    records += predictions(
        "drift",
        n,
        PER_WINDOW,
        seed=34,
        x2_shift=lambda i: np.where((i >= drift_at) & (i < drift_until), 1.5, 0.0),
    )
    perf = predictions("perf", n, PER_WINDOW, seed=35)
    records += perf
    rng = np.random.default_rng(36)
    outcomes = [
        {
            "request_id": r["request_id"],
            "model": "perf",
            "label": r["label"] if i < CONCEPT_FROM * PER_WINDOW else str(rng.integers(0, 2)),
            "value": None,
            "event_time": r["event_time"] + 20_000,
        }
        for i, r in enumerate(perf)
    ]
    letters = [
        dead_letter(w, i, "drift" if i % 3 else None) for w in range(n) for i in range(6 + w % 3)
    ]

    def phase(rows: list[dict], k: int, time_of: Callable[[dict], int]) -> list[dict]:
        lo, hi = T0_MS + 2 * k * WINDOW_MS, T0_MS + (2 * k + 2) * WINDOW_MS
        return sorted((r for r in rows if lo <= time_of(r) < hi), key=time_of)

    def event(r: dict) -> int:
        return r["event_time"]

    def scored(r: dict) -> int:
        return r["ts"]

    def predicted(r: dict) -> int:
        return r["event_time"] - 20_000

    return (
        [phase(records, k, event) for k in range(PHASES)],
        [phase(letters, k, scored) for k in range(PHASES)],
        [phase(outcomes, k, predicted) for k in range(PHASES)],
    )


def dead_letter(window: int, i: int, model: str | None) -> dict[str, Any]:
    return {
        "original_key": None,
        "original_value": b"x",
        "original_headers": [],
        "source_topic": "scoring.requests",
        "source_partition": 0,
        "source_offset": window * 100 + i,
        "source_timestamp": None,
        "stage": "score",
        "error": "bad",
        "error_type": "model_error",
        "ts": T0_MS + window * WINDOW_MS + i * 7_000 + 3,
        "worker": None,
        "model": model,
    }


class SlowRouter(PartitionedMonitorLane):
    """A worker whose routing lags the other's: half a second before each batch with inputs."""

    def process(self, messages: Sequence[Message]) -> list[Output]:
        if any(m.topic() != self.repartition_topic for m in messages):
            time.sleep(0.5)
        return super().process(messages)


def options(group: str, partitioned: bool) -> MonitorSettings:
    return MonitorSettings(
        group_id=group,
        partitioned=partitioned,
        # Segments by variant (one a model here): a segment's rolling performance then
        # holds one phase's outcomes too, as the model's does.
        segments=("variant",),
        detectors=(),
        # The outcomes of one phase: the rolling window then holds the same outcomes
        # whatever order the partitions were read in.
        performance_window=2 * PER_WINDOW,
    )


def folded(monitors: Sequence[Monitor]) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        sum(m.counts[name] for m in monitors)
        for name in ("predictions", "outcomes", "dead_letters")
    )


def settle(lanes: Sequence[BatchLane], monitors: Callable[[], list[Monitor]], want: tuple) -> None:
    """Until the monitors folded `want` (predictions, outcomes, dead letters) and the lanes
    have run no batch for a second."""
    deadline = time.monotonic() + 90
    while folded(monitors()) != want:
        for lane in lanes:
            assert not lane.failed, lane.stats.last_error
        assert time.monotonic() < deadline, (folded(monitors()), want)
        time.sleep(0.05)
    batches = [lane.stats.batches for lane in lanes]
    quiet = time.monotonic()
    while time.monotonic() - quiet < 1.0:
        time.sleep(0.1)
        now = [lane.stats.batches for lane in lanes]
        if now != batches:
            batches, quiet = now, time.monotonic()
        assert time.monotonic() < deadline


@pytest.fixture(scope="module")
def runs(two_settings: tuple[Settings, Settings]) -> Iterator[dict[str, Any]]:
    """The stream through one monitor and through two partitioned workers."""
    one, group = two_settings
    for s in (one, group):
        ensure_topics(s)
    registry = Registry.from_settings(one)
    for model in ("versions", "drift", "perf"):
        register(registry, model)
    register(registry, "versions", seed=4)  # v2, its own reference
    register(registry, "noref", reference=False)

    single_options = options(f"one-{uuid.uuid4().hex[:6]}", partitioned=False)
    single = MonitorLane(
        one,
        single_options,
        Monitor(one, single_options, registry=registry, notifier=Notifier([])),
    )
    group_options = options(f"group-{uuid.uuid4().hex[:6]}", partitioned=True)

    def owner() -> PartitionOwner:
        return PartitionOwner(group, group_options, registry=registry, notifier=Notifier([]))

    workers = [
        PartitionedMonitorLane(group, group_options, owner),
        SlowRouter(group, group_options, owner),
    ]
    lanes: list[BatchLane] = [single, *workers]
    for lane in lanes:
        lane.start()
    try:
        deadline = time.monotonic() + 60
        while not all(w.owners for w in workers) or sum(len(w.owners) for w in workers) != 3:
            assert time.monotonic() < deadline, [sorted(w.owners) for w in workers]
            for lane in lanes:
                assert not lane.failed, lane.stats.last_error
            time.sleep(0.1)
        owned = [sorted(w.owners) for w in workers]
        preds, letters, outs = stream()
        want = [0, 0, 0]
        for k in range(PHASES):
            for s in (one, group):
                produce(s, s.topic_predictions, "Prediction", preds[k])
                produce_letters(s, letters[k])
            want[0] += len(preds[k])
            want[2] += len(letters[k])
            settle([single], lambda: [single.monitor], tuple(want))
            settle(workers, lambda: owners(workers), tuple(want))
            for s in (one, group):
                produce(s, s.topic_outcomes, "Outcome", outs[k])
            want[1] += len(outs[k])
            settle([single], lambda: [single.monitor], tuple(want))
            settle(workers, lambda: owners(workers), tuple(want))
        yield {
            "windows_closed": (
                dict(single.monitor.tally.windows_closed),
                [closed_windows(w.monitor.families()) for w in workers],
            ),
            "owned": owned,
            "routed": [dict(w.router.counts) for w in workers if w.router is not None],
            "one": read_outputs(one),
            "group": read_outputs(group),
            "dropped": {
                "one": dict(single.monitor.window.dropped_late),
                "group": {
                    k: n
                    for w in workers
                    for o in w.owners.values()
                    for k, n in o.window.dropped_late.items()
                },
            },
        }
    finally:
        for lane in lanes:
            lane.stop()


def closed_windows(families: list[Any]) -> dict[tuple[str, str], float]:
    """The windows closed per (model, version), from a worker's Prometheus families."""
    (family,) = [f for f in families if f.name == "lastmile_monitor_windows_closed"]
    return {
        (s.labels["model"], s.labels["version"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }


def owners(workers: Sequence[PartitionedMonitorLane]) -> list[Monitor]:
    return [o for w in workers for o in w.owners.values()]


def produce_letters(settings: Settings, letters: Sequence[dict]) -> None:
    producer = Producer(settings.producer_config())
    for i, r in enumerate(letters):
        value, headers = CODEC.encode("DeadLetter", r)
        producer.produce(settings.topic_dlq, value, f"dead-{r['ts']}-{i}", headers=headers)
    assert producer.flush(30) == 0


def read_outputs(settings: Settings) -> dict[str, list]:
    metrics = [
        metric_from_avro(r) for r in read_topic(settings, settings.topic_metrics, "MonitorMetric")
    ]
    alerts = [alert_from_avro(r) for r in read_topic(settings, settings.topic_alerts, "Alert")]
    return {"metrics": metrics, "alerts": alerts}


def metric_rows(metrics: list) -> dict[tuple, tuple[float, int]]:
    rows: dict[tuple, tuple[float, int]] = {}
    for m in metrics:
        key = (m.model, m.version, m.segment, m.window_start, m.window_end, m.metric, m.feature)
        assert key not in rows, f"twice: {key}"
        rows[key] = (m.value, m.n)
    return rows


def test_both_workers_own_and_route_a_share(runs: dict[str, Any]) -> None:
    owned = runs["owned"]
    assert all(owned) and sorted(p for ps in owned for p in ps) == [0, 1, 2]
    assert all(r.get("routed.Prediction", 0) > 0 for r in runs["routed"]), runs["routed"]
    # The models are spread as the header says: each worker owns models of its own.
    parts = {m: model_partition(m, 3) for m in MODELS}
    assert set(parts.values()) == {0, 1, 2}, parts


def test_same_metrics_as_one_monitor(runs: dict[str, Any]) -> None:
    one, group = metric_rows(runs["one"]["metrics"]), metric_rows(runs["group"]["metrics"])
    assert one, "one monitor reported nothing"
    missing, extra = set(one) - set(group), set(group) - set(one)
    assert not missing and not extra, (sorted(map(str, missing))[:8], sorted(map(str, extra))[:8])
    for key, (value, n) in one.items():
        assert group[key][1] == n, key
        assert group[key][0] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert runs["dropped"] == {"one": {}, "group": {}}
    # The stream exercised what it should: versions, segments, performance, dead letters.
    names = {(k[0], k[1], k[5]) for k in one}
    assert {("versions", "1", "psi"), ("versions", "2", "psi"), ("perf", "1", "accuracy")} <= names
    assert any(k[0] == "*" and k[5] == "dead_letter_rate" for k in one)
    assert any(k[0] == "drift" and k[5] == "dead_letters" for k in one)
    assert any(k[2] is not None for k in one)
    counts = [v for k, (v, _n) in one.items() if k[5] == "count" and k[2] is None]
    assert set(counts) == {float(PER_WINDOW)}


def test_prometheus_counts_the_windows_one_monitor_counts(runs: dict[str, Any]) -> None:
    one, per_worker = runs["windows_closed"]
    assert all(per_worker)  # each worker reports its own models' windows
    summed: dict[tuple[str, str], float] = {}
    for closed in per_worker:
        for key, n in closed.items():
            summed[key] = summed.get(key, 0.0) + n
    assert summed == {key: float(n) for key, n in one.items()}


def test_same_alerts_as_one_monitor(runs: dict[str, Any]) -> None:
    def alerts(which: str) -> list[tuple]:
        return sorted(
            (a.rule, a.model, a.version, a.segment, a.metric, a.feature, a.state, a.ts)
            for a in runs[which]["alerts"]
        )

    one = alerts("one")
    assert alerts("group") == one
    rules = {(a[0], a[1], a[6]) for a in one}
    assert ("feature_drift", "drift", "firing") in rules
    # Performance is reported once a phase: two breaching reports, the rule that needs two.
    assert ("challenger_errors", "perf", "firing") in rules
