"""The learner role: its handler without Kafka, then through the embedded broker.

Offline, :class:`Harness` plays Kafka for one :class:`~streams.roles.learner.Learner`: topics are
lists, every batch "commits" at once, and a crash throws the learner away and builds a new
one from the committed changelog records only. Through the broker: concept drift that the
online model recovers from and the frozen champion does not, a SIGKILL mid-stream that
changes nothing in the learned model, and the join's dead letters.
"""

from __future__ import annotations

import collections
import functools
import os
import random
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas import Codec
from streams.config import Settings, load_settings, settings_env
from streams.kafka.held_message import HeldMessage
from streams.kafka.topics import ensure_topics, read_to_end
from streams.local.demo_models import train_demo_model
from streams.local.simulate import simulated_events, stream_rows
from streams.models import ControlPlane, ModelTable, Registry, make_event
from streams.roles.learner import (
    SEGMENT_FROZEN,
    SEGMENT_ONLINE,
    Learner,
    LearnerLane,
    LearnerSettings,
    ensure_learner_topics,
)
from streams.roles.learner.envelope import bundle_items, model_partition
from streams.roles.learner.prequential_window import PrequentialWindow
from streams.roles.learner.restore import state_from_records

CODEC = Codec()
PARTITIONS = 3


# -- records --------------------------------------------------------------------------------


def prediction(request: dict[str, Any], version: int = 1, variant: str = "champion") -> dict:
    """The Prediction a scorer would have produced for a simulated request."""
    return {
        "request_id": request["request_id"],
        "model": request["model"],
        "version": version,
        "variant": variant,
        "score": 0.5,
        "label": "1",
        "features": request["features"],
        "event_time": request["event_time"],
        "scored_time": request["event_time"] + 3,
        "latency_ms": 1.0,
        "entity_id": request.get("entity_id"),
    }


def traffic(
    model: str, stream: str, count: int, label_delay: float, seed: int = 1, **options: Any
) -> list[tuple[str, bytes, bytes, list | None]]:
    """Simulated traffic as ``(topic role, key, value, headers)`` in send order:
    Avro predictions, JSON outcomes (as users send them)."""
    out = []
    for e in simulated_events(
        model=model,
        stream=stream,
        count=count,
        label_delay=label_delay,
        rate=1000,
        seed=seed,
        start_ms=1_700_000_000_000,
        **options,
    ):
        assert e.record is not None
        if e.kind == "request":
            value, headers = CODEC.encode("Prediction", prediction(e.record))
            out.append(("predictions", e.record["request_id"].encode(), value, headers))
        else:
            out.append(("outcomes", e.key, e.value, None))
    return out


#: What the handler reads of a confluent-kafka Message, stamped at one time.
FakeMessage = functools.partial(HeldMessage, timestamp=1_700_000_000_000)


# -- the harness: Kafka in lists -----------------------------------------------------------------


class Harness:
    """One learner over in-memory topics. Every :meth:`step` is a committed transaction;
    :meth:`crash` keeps only what was committed (the changelog, the logs) and starts a new
    learner from it. Inputs are read in a seeded random interleaving of their partitions."""

    def __init__(
        self,
        settings: Settings,
        options: LearnerSettings,
        registry: Registry,
        control: ControlPlane,
        table: ModelTable,
        now: list[float],
        logs: dict[tuple[str, int], list[HeldMessage]] | None = None,
        seed: int = 0,
    ) -> None:
        self.settings, self.options, self.registry = settings, options, registry
        self.control, self.table = control, table
        self.now = now  # the learner's clock: tests move it
        self.logs: dict[tuple[str, int], list[HeldMessage]] = (
            logs if logs is not None else collections.defaultdict(list)
        )
        self.changelog: dict[int, list[tuple[bytes, bytes | None]]] = collections.defaultdict(list)
        self.positions: dict[tuple[str, int], int] = collections.defaultdict(int)
        self.metrics: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []
        self.rng = random.Random(seed)
        self.learner = self._start()

    def _start(self) -> Learner:
        learner = Learner(
            self.settings,
            self.options,
            self.registry,
            self.control,
            self.table,
            clock=lambda: self.now[0],
            restore=self._restore,
        )
        learner.partitions = PARTITIONS
        offsets = learner.assign(range(PARTITIONS))
        topic = learner.repartition_topic
        for p, offset in offsets.items():
            self.positions[(topic, p)] = offset or 0
        return learner

    def _restore(self, parts: Sequence[int]) -> dict[int, Any]:
        return {p: state_from_records(p, self.changelog[p]) for p in parts}

    def send(self, role: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        topic = self.settings.topics[role]
        part = zlib.crc32(key) % PARTITIONS if key is not None else 0  # reproducible
        log = self.logs[(topic, part)]
        log.append(FakeMessage(topic, part, len(log), key, value, headers))

    def send_all(self, events: Iterable[tuple[str, bytes, bytes, Any]]) -> None:
        for role, key, value, headers in events:
            self.send(role, key, value, headers)

    def _topics(self) -> list[str]:
        topics = [self.learner.repartition_topic]
        if self.options.route:
            topics += [self.settings.topic_predictions, self.settings.topic_outcomes]
        return topics

    def step(self, max_batch: int = 500) -> int:
        """One batch: a random share of each partition's unread messages, in order."""
        batch: list[HeldMessage] = []
        sources = [(t, p) for t in self._topics() for p in range(PARTITIONS)]
        self.rng.shuffle(sources)
        for source in sources:
            log = self.logs.get(source, [])
            start = self.positions[source]
            take = min(len(log) - start, self.rng.randint(0, max_batch))
            batch += log[start : start + take]
            self.positions[source] = start + take
        outputs = self.learner.process(batch)
        self._commit(outputs)
        return len(batch)

    def _commit(self, outputs: Sequence[Any]) -> None:
        s = self.settings
        for out in outputs:
            if out.topic == self.learner.state_topic:
                self.changelog[out.partition].append((out.key, out.value))
            elif out.topic == self.learner.repartition_topic:
                log = self.logs[(out.topic, out.partition)]
                log.append(FakeMessage(out.topic, out.partition, len(log), out.key, out.value))
            elif out.topic == s.topic_metrics:
                self.metrics.append(CODEC.decode(out.value, out.headers, "MonitorMetric"))
            elif out.topic == s.topic_dlq:
                self.dead.append(CODEC.decode(out.value, out.headers, "DeadLetter"))
            else:
                raise AssertionError(f"unexpected output topic {out.topic}")
        self.learner.committed()
        refresh(self.control, self.table)

    def idle(self) -> None:
        """An empty batch, as the lane runs when it has nothing to read."""
        if self.learner.wants_flush():
            self._commit(self.learner.process([]))

    def pending_input(self) -> int:
        return sum(
            len(self.logs.get((t, p), [])) - self.positions[(t, p)]
            for t in self._topics()
            for p in range(PARTITIONS)
        )

    def run(self, max_batch: int = 500, steps: int | None = None) -> None:
        done = 0
        while self.pending_input() and (steps is None or done < steps):
            self.step(max_batch)
            done += 1

    def settle(self, max_batch: int = 500) -> None:
        """Read everything (routed records too), then let a checkpoint interval pass and
        flush, as an idle lane does."""
        for _ in range(3):
            self.run(max_batch)
            self.now[0] += self.options.checkpoint_interval
            self.idle()

    def crash(self) -> None:
        """Lose everything not committed and start again from the changelog."""
        self.learner = self._start()


def refresh(control: ControlPlane, table: ModelTable) -> None:
    """What ModelWatcher would do: apply every model's current state."""
    for state in control.states():
        table.apply(make_event("announced", state))


def parameters(model: Any) -> dict[str, Any]:
    """River StandardScaler | LogisticRegression, as plain numbers."""
    scaler, lr = model["StandardScaler"], model["LogisticRegression"]
    return {
        "means": dict(scaler.means),
        "vars": dict(scaler.vars),
        "counts": dict(scaler.counts),
        "weights": dict(lr.weights),
        "intercept": lr.intercept,
    }


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = load_settings(
        env={}, toml_path=None, data_dir=tmp_path / "data", registry=str(tmp_path / "registry")
    )
    control = ControlPlane(settings, publish=False)
    table = ModelTable()
    now = [1_700_000_000.0]
    yield {
        "settings": settings,
        "control": control,
        "registry": control.registry,
        "table": table,
        "now": now,
    }


def publish_demo_champion(settings: Settings, n_rows: int) -> None:
    """The topics, and a hyperplane model trained on `n_rows` rows as model m's champion,
    published on the control topic (for a learner on the real broker)."""
    ensure_topics(settings)
    model, rows, _ = train_demo_model("hyperplane", n_rows)
    with ControlPlane(settings) as control:
        control.promote(
            "m",
            control.register_and_publish(
                "m", model, "river", reference_rows=rows, labels=[False, True]
            ).version,
        )


def champion(
    control: ControlPlane,
    table: ModelTable,
    name: str,
    model: Any,
    rows: Sequence[dict],
) -> int:
    version = control.register_and_publish(
        name, model, "river", reference_rows=rows, labels=[False, True]
    ).version
    control.promote(name, version)
    refresh(control, table)
    return version


def harness(offline: dict[str, Any], **options: Any) -> Harness:
    options.setdefault("policy", "manual")
    options.setdefault("snapshot_every", 0)
    options.setdefault("snapshot_interval", 0)
    opts = LearnerSettings(**options)
    return Harness(
        offline["settings"],
        opts,
        offline["registry"],
        offline["control"],
        offline["table"],
        offline["now"],
    )


# -- units ------------------------------------------------------------------------------------


def test_settings_from_env_and_defaults() -> None:
    s = load_settings(
        env={
            "LASTMILE_LEARNER_POLICY": "auto",
            "LASTMILE_LEARNER_SNAPSHOT_EVERY": "5000",
            "LASTMILE_LEARNER_SNAPSHOT_INTERVAL": "10m",
            "LASTMILE_LEARNER_JOIN_TTL": "2d",
            "LASTMILE_LEARNER_OUTCOME_WAIT": "30s",
            "LASTMILE_LEARNER_ROUTE": "false",
            "LASTMILE_LEARNER_GROUP": "g1",
        },
        toml_path=None,
    ).learner
    assert (s.policy, s.snapshot_every, s.snapshot_interval) == ("auto", 5000, 600.0)
    assert (s.join_ttl, s.outcome_wait, s.route, s.group_id) == (172800.0, 30.0, False, "g1")
    d = LearnerSettings()
    assert (d.policy, d.join_ttl, d.outcome_wait) == ("challenger", 7 * 86400.0, 600.0)
    settings = load_settings(env={}, toml_path=None)
    assert d.repartition_topic_for(settings) == "scoring.learner.input"
    assert d.state_topic_for(settings) == "scoring.learner.state"
    with pytest.raises(ValueError, match="policy"):
        load_settings(env={"LASTMILE_LEARNER_POLICY": "sometimes"}, toml_path=None)
    with pytest.raises(ValueError, match="LASTMILE_LEARNER_WINDOW"):
        load_settings(env={"LASTMILE_LEARNER_WINDOW": "many"}, toml_path=None)


def test_prequential_window_equals_river_rolling_metrics() -> None:
    from monitors.performance import RollingPerformance

    rng = random.Random(3)
    for task, binary in (("classification", True), ("classification", False), ("regression", True)):
        window = PrequentialWindow(task, 300, binary)
        river = RollingPerformance(task, 300)
        for i in range(2000):
            if task == "regression":
                y, yhat = rng.gauss(0, 1), rng.gauss(0, 1)
                window.update(y, yhat)
                river.update(y, yhat)
            elif binary:
                y, p = rng.random() < 0.3, rng.random()
                p = 0.0 if i % 97 == 0 else p  # clamped by log loss
                window.update(y, p)
                river.update(y, proba=p)
            else:
                y, guess = rng.choice("abc"), rng.choice("abc")
                window.update(y, guess)
                river.update(y, guess)
            if i % 250 == 0 or i == 1999:
                ours, theirs = window.get(), river.get()
                assert ours.keys() == theirs.keys(), (task, binary)
                for name, value in theirs.items():
                    assert ours[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_routing_puts_a_model_in_one_partition_and_skips_shadows(offline) -> None:
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    h = harness(offline)
    requests = [
        e.record
        for e in simulated_events("m", "hyperplane", count=50, label_delay=None, start_ms=0)
    ]
    for r in requests:
        for variant in ("champion", "shadow"):
            value, headers = CODEC.encode("Prediction", prediction(r, variant=variant))
            h.send("predictions", r["request_id"].encode(), value, headers)
    value, headers = CODEC.encode("Prediction", prediction({**requests[0], "model": "other"}))
    h.send("predictions", b"x", value, headers)
    h.send("predictions", b"y", b"not avro", CODEC.headers_for("Prediction"))
    h.step(max_batch=1000)
    topic = h.learner.repartition_topic
    routed = {
        p: sum(len(list(bundle_items(m.value()))) for m in h.logs.get((topic, p), []))
        for p in range(PARTITIONS)
    }
    assert routed[model_partition("m", PARTITIONS)] == 50 and sum(routed.values()) == 50
    counts = h.learner.counts
    assert (counts["shadow_skipped"], counts["unlearnable"], counts["undecodable"]) == (50, 1, 1)


def test_outcome_before_its_prediction_is_learned_and_orphans_are_dead_lettered(offline) -> None:
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    h = harness(offline, outcome_wait=60.0, join_ttl=3600.0)
    requests = [
        e.record for e in simulated_events("m", "hyperplane", count=3, label_delay=None, start_ms=0)
    ]
    outcome = {"request_id": requests[0]["request_id"], "model": "m", "label": "1", "event_time": 5}
    orphan = {"request_id": "never-scored", "model": "m", "label": "0", "event_time": 5}
    h.send("outcomes", b"k-early", orjson.dumps(outcome), [("trace", b"t1")])
    h.send("outcomes", b"k-orphan", orjson.dumps(orphan))
    h.settle()
    assert h.learner.learned() == 0
    value, headers = CODEC.encode("Prediction", prediction(requests[0]))
    h.send("predictions", b"k", value, headers)
    h.settle()
    assert h.learner.learned() == 1
    assert h.dead == []
    # A minute of routed-at time later (a tick, as the lane writes when idle), the orphan
    # has waited long enough.
    offline["now"][0] += 61.0
    for state in h.learner.states.values():
        state.last_input_wall -= 61.0
    h.idle()
    h.settle()
    assert len(h.dead) == 1
    letter = h.dead[0]
    assert letter["stage"] == "learn" and letter["error_type"] == "no_prediction"
    assert letter["original_key"] == b"k-orphan" and letter["model"] == "m"
    assert orjson.loads(letter["original_value"]) == orphan
    assert letter["source_topic"] == offline["settings"].topic_outcomes
    assert "never-scored" in letter["error"] and "1m" in letter["error"]
    assert h.learner.learned() == 1


def test_an_outcome_the_model_cannot_learn_is_dead_lettered(offline) -> None:
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    h = harness(offline)
    requests = [
        e.record for e in simulated_events("m", "hyperplane", count=3, label_delay=None, start_ms=0)
    ]
    for r in requests:
        value, headers = CODEC.encode("Prediction", prediction(r))
        h.send("predictions", r["request_id"].encode(), value, headers)
    labels = ["maybe", None, "1"]  # not a class of the model; no label at all; fine
    for r, label in zip(requests, labels, strict=True):
        outcome = {"request_id": r["request_id"], "model": "m", "label": label, "event_time": 9}
        h.send("outcomes", r["request_id"].encode(), orjson.dumps(outcome))
    h.settle()
    assert h.learner.learned() == 1
    assert [(d["error_type"], d["stage"]) for d in h.dead] == [("bad_label", "learn")] * 2
    errors = sorted(d["error"] for d in h.dead)
    assert "'maybe' is not one of the model's labels (0, 1)" in errors[0]
    assert "neither a label nor a value" in errors[1]


def test_a_prediction_waits_join_ttl_then_is_dropped(offline) -> None:
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    h = harness(offline, join_ttl=100.0)
    events = traffic("m", "hyperplane", 10, label_delay=None)
    h.send_all(events)
    h.settle()
    state = h.learner.states[model_partition("m", PARTITIONS)]
    assert len(state.pending) == 10
    offline["now"][0] += 101.0
    for s in h.learner.states.values():
        s.last_input_wall -= 101.0
    h.idle()
    h.settle()
    assert len(state.pending) == 0 and state.counts["predictions_expired"] == 10
    assert h.dead == []


def messy(events: Sequence[Any], seed: int) -> list[Any]:
    """`events` with some sent twice, right away or much earlier (an outcome before its
    prediction, a prediction again after its outcome)."""
    rng = random.Random(seed)
    out: list[Any] = []
    for event in events:
        out.append(event)
        if rng.random() < 0.1:
            out.append(event)
        if rng.random() < 0.05:
            out.insert(rng.randrange(len(out)), event)
    return out


def learned_model(h: Harness, name: str) -> dict[str, Any]:
    line = h.learner.line(name)
    assert line is not None
    return parameters(line.online)


def test_crash_anywhere_learns_the_same_model_as_no_crash(offline) -> None:
    """Different batching, several crashes, any number of routed-but-unlearned records,
    duplicates and outcomes before predictions: the model equals, parameter for parameter,
    one uninterrupted pass over the same log."""
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    events = messy(traffic("m", "hyperplane", 3000, label_delay=0.2), seed=1)
    crashed = harness(offline, checkpoint_interval=5.0)
    crashed.send_all(events)
    crashes = 0
    while crashed.pending_input():
        crashed.step(max_batch=300)
        offline["now"][0] += 1.0  # a checkpoint every five batches
        if crashed.rng.random() < 0.15:
            crashed.crash()
            crashes += 1
    assert crashes >= 3
    learned = crashed.learner.learned()
    assert learned >= 3000
    # The same repartitioned log, learned in one go by a learner that never stopped.
    logs = {k: v for k, v in crashed.logs.items() if k[0] == crashed.learner.repartition_topic}
    straight = Harness(
        offline["settings"],
        LearnerSettings(route=False, policy="manual", snapshot_every=0, snapshot_interval=0),
        offline["registry"],
        offline["control"],
        offline["table"],
        offline["now"],
        logs=collections.defaultdict(list, logs),
        seed=9,
    )
    straight.settle(max_batch=5000)
    assert straight.learner.learned() == learned
    assert learned_model(crashed, "m") == learned_model(straight, "m")
    # The prequential trackers replayed the same way too.
    a, b = crashed.learner.line("m"), straight.learner.line("m")
    assert a is not None and b is not None and a.perf.get() == b.perf.get()


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_the_changelog_restores_exactly_the_join_state_it_was_written_from(
    offline, seed: int
) -> None:
    """Duplicates, outcomes before predictions, predictions re-added after their outcome:
    whenever a checkpoint is committed, reading the changelog back gives the live state."""
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    h = harness(offline, checkpoint_interval=2.0)
    h.send_all(messy(traffic("m", "hyperplane", 1500, label_delay=0.3), seed))
    checked = 0
    while h.pending_input():
        h.step(max_batch=100)
        offline["now"][0] += 1.0
        for p, live in h.learner.states.items():
            if live.dirty:
                continue
            restored = state_from_records(p, h.changelog[p])
            assert list(restored.pending.items()) == list(live.pending.items())
            assert list(restored.waiting.items()) == list(live.waiting.items())
            assert restored.offset == live.offset
            checked += 1
    assert checked > 10
    state = h.learner.states[model_partition("m", PARTITIONS)]
    assert state.counts["duplicate_predictions"] > 0 and state.counts["outcomes_waited"] > 0


def test_snapshots_have_parents_metrics_and_follow_the_policy(offline) -> None:
    control, registry = offline["control"], offline["registry"]
    model, rows, _ = train_demo_model("hyperplane", 300)
    v1 = champion(control, offline["table"], "m", model, rows)
    h = harness(offline, policy="challenger", snapshot_every=1000, window=200)
    h.send_all(traffic("m", "hyperplane", 3500, label_delay=0.05))
    h.settle()
    learner = registry.versions("m")[1:]
    assert [v.version for v in learner] == [2, 3, 4]
    assert [v.parent for v in learner] == [v1, 2, 3]
    assert {v.registered_by for v in learner} == {"learner"}
    assert [v.metrics["learned"] for v in learner] == [1000, 2000, 3000]
    assert {"accuracy", "log_loss", "champion_accuracy"} <= set(learner[0].metrics)
    assert learner[0].reference_profile is not None
    state = control.state("m")
    assert state.champion == v1 and state.aliases["challenger"] == 4
    assert state.split == {"champion": 90.0, "challenger": 10.0}
    line = h.learner.line("m")
    assert line is not None and line.head == 4 and line.origin == v1
    # The snapshot is the online model as it was after its 3000th outcome.
    loaded = registry.load("m", 4)
    assert loaded.model.__class__ is line.online.__class__
    # Metrics: both evaluators, per version, every `metrics_every` outcomes.
    online = [m for m in h.metrics if m["segment"] == SEGMENT_ONLINE and m["metric"] == "accuracy"]
    frozen = [m for m in h.metrics if m["segment"] == SEGMENT_FROZEN and m["metric"] == "accuracy"]
    assert len(online) == len(frozen) == 3
    # The version the online model grew from, as registered when the metrics were taken.
    versions = [m["version"] for m in online]
    assert versions[0] == v1 and versions == sorted(versions) and set(versions) <= {1, 2, 3}
    assert {m["version"] for m in frozen} == {v1}
    assert all(m["feature"] is None and m["n"] == 200 for m in online)
    assert all(m["window_start"] < m["window_end"] for m in online)


def test_auto_promotes_a_better_snapshot_and_manual_does_not(offline) -> None:
    control = offline["control"]
    # A champion trained on another concept: the online model soon beats it.
    model, rows, _ = train_demo_model("sea", 300)
    sea_rows = [{f"x{i}": r[f"x{i}"] / 10.0 for i in range(3)} for r in rows]
    for r in sea_rows:
        r.update({f"x{i}": 0.5 for i in range(3, 10)})
    v1 = champion(control, offline["table"], "m", model, sea_rows)
    h = harness(offline, policy="auto", snapshot_every=1500, window=500)
    h.send_all(traffic("m", "hyperplane", 3000, label_delay=0.05))
    h.settle()
    state = control.state("m")
    assert state.champion is not None and state.champion > v1
    assert control.registry.get("m", state.champion).registered_by == "learner"
    assert h.learner.counts["promoted"] >= 1

    manual = harness(offline, policy="manual", snapshot_every=1000)
    control.promote("m", v1)
    refresh(control, offline["table"])
    manual.send_all(traffic("m", "hyperplane", 1000, label_delay=0.05, seed=2))
    manual.settle()
    assert control.state("m").champion == v1


def test_a_snapshot_published_before_a_crash_is_not_registered_twice(offline) -> None:
    control, registry = offline["control"], offline["registry"]
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(control, offline["table"], "m", model, rows)
    h = harness(offline, policy="manual", snapshot_every=1000)
    h.send_all(traffic("m", "hyperplane", 1200, label_delay=0.05))
    # Publish, then die before the checkpoint that records the new head is written.
    real = h.learner.committed

    def commit_then_die() -> None:
        real()
        if h.learner.counts["published"]:
            raise RuntimeError("killed")

    h.learner.committed = commit_then_die  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        h.settle(max_batch=300)
    assert [v.version for v in registry.versions("m")] == [1, 2]
    h.crash()
    h.settle()
    assert [v.version for v in registry.versions("m")] == [1, 2]
    line = h.learner.line("m")
    assert line is not None and line.head == 2 and line.learned == 1200


def test_a_challenger_snapshot_gets_traffic_again_after_its_predecessor_was_shed(
    offline,
) -> None:
    control = offline["control"]
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(control, offline["table"], "m", model, rows)
    shed = control.register_and_publish("m", model, "river", reference_rows=rows).version
    control.promote("m", shed, "challenger")
    control.split("m", {"champion": 100, "challenger": 0})  # what the operator's shed leaves
    refresh(control, offline["table"])
    h = harness(offline, policy="challenger", snapshot_every=300)
    h.send_all(traffic("m", "hyperplane", 300, label_delay=0.05))
    h.settle()
    state = control.state("m")
    assert state.aliases["challenger"] > shed
    assert state.split == {"champion": 90.0, "challenger": 10.0}


def test_a_snapshot_request_is_answered_once_across_a_crash(offline) -> None:
    control, registry = offline["control"], offline["registry"]
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(control, offline["table"], "m", model, rows)
    h = harness(offline, policy="manual")
    # A request made before the line exists is not for it.
    control.request_snapshot("m")
    h.send_all(traffic("m", "hyperplane", 400, label_delay=0.05))
    h.settle()
    assert [v.version for v in registry.versions("m")] == [1]

    control.request_snapshot("m", provenance={"alert_id": "a-1"})
    refresh(control, offline["table"])
    h.send_all(traffic("m", "hyperplane", 100, label_delay=0.05, seed=2))
    h.settle()
    versions = registry.versions("m")
    assert [v.version for v in versions] == [1, 2]
    assert "snapshot by requested" in versions[1].meta["description"]
    assert versions[1].metrics["learned"] >= 400

    # The request is still in the state: a restarted learner does not answer it again.
    h.crash()
    h.send_all(traffic("m", "hyperplane", 100, label_delay=0.05, seed=3))
    h.settle()
    assert [v.version for v in registry.versions("m")] == [1, 2]

    control.request_snapshot("m")
    refresh(control, offline["table"])
    h.send_all(traffic("m", "hyperplane", 50, label_delay=0.05, seed=4))
    h.settle()
    assert [v.version for v in registry.versions("m")] == [1, 2, 3]


def test_a_new_champion_from_outside_restarts_the_line(offline) -> None:
    control = offline["control"]
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(control, offline["table"], "m", model, rows)
    h = harness(offline)
    h.send_all(traffic("m", "hyperplane", 500, label_delay=0.05))
    h.settle()
    first = h.learner.line("m")
    assert first is not None and first.learned == 500
    other, other_rows, _ = train_demo_model("hyperplane", 200, seed=5)
    v2 = champion(control, offline["table"], "m", other, other_rows)
    h.send_all(traffic("m", "hyperplane", 300, label_delay=0.05, seed=3))
    h.settle()
    line = h.learner.line("m")
    assert line is not None and line.origin == v2 and line.learned == 300
    assert h.learner.counts["rebased"] == 1


# -- through the embedded broker ------------------------------------------------------------


def produce(settings: Settings, events: Iterable[tuple[str, bytes | None, bytes, Any]]) -> int:
    producer = Producer(settings.producer_config())
    n = 0
    for role, key, value, headers in events:
        while True:
            try:
                producer.produce(settings.topics[role], value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        n += 1
    assert producer.flush(30) == 0
    return n


def read_topic(settings: Settings, topic: str, schema: str | None = None) -> list[Any]:
    """Every committed record of a topic, in each partition's order: decoded, or the raw
    ``(key, value)``."""
    if schema is None:
        return [(m.key(), m.value()) for m in read_to_end(settings, topic)]
    return [CODEC.decode(m.value(), m.headers(), schema) for m in read_to_end(settings, topic)]


def wait_learned(lane: LearnerLane, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while lane.learner.learned() < n:
        assert not lane.failed, lane.stats.last_error
        assert time.monotonic() < deadline, (
            f"learned {lane.learner.learned()} of {n}; counts {dict(lane.learner.counts)}"
        )
        time.sleep(0.05)


def hat_on_agrawal() -> tuple[Any, list[dict]]:
    """A Hoeffding adaptive tree trained on Agrawal's first concept (the batch model)."""
    from river import tree

    model = tree.HoeffdingAdaptiveTreeClassifier(grace_period=50, seed=1)
    rows = []
    for x, y in stream_rows("agrawal", 1_000_003, 5000):
        model.learn_one(x, bool(y))
        rows.append(x)
    return model, rows


def test_online_model_recovers_from_concept_drift_and_the_frozen_one_does_not(
    fresh_settings: Callable[..., Settings],
) -> None:
    # One partition per topic: a backlog read from several partitions is learned in the
    # order it is fetched (partitions run ahead of each other by thousands of records),
    # which would mix outcomes from both sides of the drift into one window.
    settings = fresh_settings(topic_partitions=1)
    ensure_topics(settings)
    model, rows = hat_on_agrawal()
    with ControlPlane(settings) as control:
        v1 = control.register_and_publish(
            "fraud", model, "river", reference_rows=rows[:1000], labels=[False, True]
        ).version
        control.promote("fraud", v1)
    count, drift_at = 20_000, 6_000
    produce(settings, traffic("fraud", "agrawal", count, label_delay=0.05, drift_at=drift_at))
    options = LearnerSettings(
        policy="manual",
        snapshot_every=5000,
        snapshot_interval=0,
        window=1000,
        metrics_every=1000,
        group_id=f"learner-{uuid.uuid4().hex[:8]}",
    )
    lane = LearnerLane(settings, options)
    lane.start()
    try:
        wait_learned(lane, count, 120)
        registry = Registry.from_settings(settings)
        assert wait_for_versions(registry, "fraud", 5, 30)
        # Scorers hear of snapshots on models.events, as of any version.
        deadline = time.monotonic() + 10
        while len(lane.learner.table.get("fraud").versions) < 5:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        lane.stop()
    metrics = read_topic(settings, settings.topic_metrics, "MonitorMetric")

    def accuracy(segment: str) -> list[float]:
        return [
            m["value"] for m in metrics if m["segment"] == segment and m["metric"] == "accuracy"
        ]

    online, frozen = accuracy(SEGMENT_ONLINE), accuracy(SEGMENT_FROZEN)
    print(f"\nprequential accuracy per 1,000 outcomes\n  online {online}\n  frozen {frozen}")
    assert len(online) == len(frozen) == count // 1000
    before = drift_at // 1000 - 1  # the last window wholly before the drift
    assert online[before] > 0.85 and frozen[before] > 0.85
    assert max(online[before + 2 : before + 4]) < 0.8  # the drift hurts both
    assert min(online[-3:]) > 0.9, online  # the online model recovers ...
    assert max(frozen[-3:]) < 0.65, frozen  # ... the frozen one does not
    assert {m["version"] for m in metrics if m["segment"] == SEGMENT_FROZEN} == {v1}
    assert {"log_loss", "roc_auc", "learned"} <= {m["metric"] for m in metrics}
    versions = registry.versions("fraud")
    assert [v.version for v in versions] == [1, 2, 3, 4, 5]
    assert [v.parent for v in versions[1:]] == [1, 2, 3, 4]
    assert {v.registered_by for v in versions[1:]} == {"learner"}
    assert [v.metrics["learned"] for v in versions[1:]] == [5000, 10000, 15000, 20000]
    assert versions[-1].metrics["accuracy"] > versions[-1].metrics["champion_accuracy"] + 0.25
    assert ControlPlane(settings, publish=False).state("fraud").champion == v1  # manual


def wait_for_versions(registry: Registry, model: str, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(registry.version_numbers(model)) >= n:
            return True
        time.sleep(0.1)
    return False


def test_outcome_waits_for_a_late_prediction_and_an_orphan_is_dead_lettered(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings()
    publish_demo_champion(settings, 300)
    options = LearnerSettings(
        policy="manual",
        snapshot_every=0,
        snapshot_interval=0,
        outcome_wait=2.0,
        tick_interval=0.3,
        checkpoint_interval=0.2,
        group_id=f"learner-{uuid.uuid4().hex[:8]}",
    )
    request = next(e.record for e in simulated_events("m", "hyperplane", count=1, label_delay=None))
    early = {"request_id": request["request_id"], "model": "m", "label": "1", "event_time": 1}
    orphan = {"request_id": "never-scored", "model": "m", "label": "0", "event_time": 1}
    lane = LearnerLane(settings, options)
    lane.start()
    try:
        assert lane.wait_assigned(60)
        produce(
            settings,
            [
                ("outcomes", b"early", orjson.dumps(early), None),
                ("outcomes", b"orphan", orjson.dumps(orphan), [("trace", b"t")]),
            ],
        )
        time.sleep(1.0)  # the early outcome waits ...
        value, headers = CODEC.encode("Prediction", prediction(request))
        produce(settings, [("predictions", b"p", value, headers)])
        wait_learned(lane, 1, 60)  # ... and is learned when its prediction comes
        deadline = time.monotonic() + 60
        while not lane.learner.counts["dead_letters"]:  # the orphan, once a tick says so
            assert time.monotonic() < deadline, dict(lane.learner.counts)
            time.sleep(0.1)
        time.sleep(0.5)  # committed with the next checkpoint
    finally:
        lane.stop()
    letters = read_topic(settings, settings.topic_dlq, "DeadLetter")
    assert len(letters) == 1
    letter = letters[0]
    assert (letter["stage"], letter["error_type"], letter["model"]) == (
        "learn",
        "no_prediction",
        "m",
    )
    assert letter["original_key"] == b"orphan"
    assert orjson.loads(letter["original_value"]) == orphan
    assert [(h["key"], h["value"]) for h in letter["original_headers"]] == [("trace", b"t")]
    assert letter["source_topic"] == settings.topic_outcomes
    assert lane.learner.learned() == 1 and lane.learner.counts["ticks"] >= 1


WORKER = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from streams.config import load_settings
from streams.roles.learner import LearnerLane
lane = LearnerLane(load_settings(), max_batch=300)
lane.start()
while not lane.failed:
    time.sleep(0.2)
sys.exit(1)
"""


def test_sigkill_mid_stream_then_resume_learns_exactly_what_an_uninterrupted_run_learns(
    fresh_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """A learner (routing and learning) is killed with SIGKILL mid-routing, another after
    its first snapshot; two more resume from the last committed checkpoint. The model
    equals, parameter for parameter, the model of a learner that reads the same
    repartitioned log without stopping; every record is routed once, every snapshot is
    registered once."""
    settings = fresh_settings()
    publish_demo_champion(settings, 500)
    count = 40_000
    produce(settings, traffic("m", "hyperplane", count, label_delay=0.2))
    group = f"learner-{uuid.uuid4().hex[:8]}"
    learner_env = {
        "LASTMILE_LEARNER_POLICY": "challenger",
        "LASTMILE_LEARNER_SNAPSHOT_EVERY": "8000",
        "LASTMILE_LEARNER_SNAPSHOT_INTERVAL": "0",
        "LASTMILE_LEARNER_CHECKPOINT_INTERVAL": "0.3",
        "LASTMILE_LEARNER_GROUP": group,
    }
    env = {**os.environ, **settings_env(settings), **learner_env}
    options = load_settings(env=learner_env, toml_path=None).learner
    log_path = tmp_path / "worker.log"
    registry = Registry.from_settings(settings)
    probe = Consumer(settings.consumer_config("probe"))
    repartition = options.repartition_topic_for(settings)
    ensure_learner_topics(settings, options)

    def routing_started() -> bool:
        # High watermarks count records of open transactions too: routing is under way.
        return any(
            probe.get_watermark_offsets(TopicPartition(repartition, p), timeout=5)[1] > 0
            for p in range(PARTITIONS)
        )

    # Kill once mid-routing, once after the first snapshot (mid-learning).
    for moment in (routing_started, lambda: len(registry.version_numbers("m")) >= 2):
        with log_path.open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-c", WORKER], env=env, stdout=subprocess.DEVNULL, stderr=log
            )
            try:
                deadline = time.monotonic() + 90
                while not moment():
                    assert worker.poll() is None, log_path.read_text()[-3000:]
                    assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(0.01)
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
    probe.close()
    topic = options.state_topic_for(settings)
    from streams.roles.learner.restore import read_state

    states = read_state(settings, topic, range(PARTITIONS))
    at_kill = sum(line.learned for s in states.values() for line in s.lines.values())
    assert 8000 <= at_kill < count, "the worker finished before it was killed: raise count"

    # Two workers resume; the second joins mid-stream, and the rebalance hands partitions
    # (maybe the model's) from one to the other with uncommitted progress in memory.
    first = LearnerLane(settings, options)
    second = LearnerLane(settings, options, name="learner-2")  # its own transactional.id
    workers = [first, second]
    first.start()
    try:
        wait_learned(first, at_kill + 3000, 120)
        second.start()
        deadline = time.monotonic() + 120
        while (
            max((w.learner.line("m").learned if w.learner.line("m") else 0) for w in workers)
            < count
        ):
            assert not first.failed and not second.failed
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert wait_for_versions(registry, "m", 6, 30)
    finally:
        first.stop()
        second.stop()
    owners = [w for w in workers if w.learner.line("m") is not None]
    assert len(owners) == 1  # one owner of the model line at a time
    resumed = owners[0]
    straight_options = LearnerSettings(
        route=False,
        policy="manual",
        snapshot_every=0,
        snapshot_interval=0,
        group_id=f"learner-{uuid.uuid4().hex[:8]}",
        state_topic=f"{topic}.straight",
    )
    straight = LearnerLane(settings, straight_options)
    straight.start()
    try:
        wait_learned(straight, count, 120)
    finally:
        straight.stop()
    a, b = resumed.learner.line("m"), straight.learner.line("m")
    assert a is not None and b is not None
    assert parameters(a.online) == parameters(b.online)
    assert a.perf.get() == b.perf.get()
    # Every prediction and outcome reached the learning stage once. The bundles a killed
    # router left readable (the embedded broker shows a fenced transaction's records)
    # were routed again; each copy has its original's source offset and was dropped.
    routed = [
        item
        for _key, value in read_topic(settings, repartition)
        if value[:1] == b"B"
        for item in bundle_items(value)
    ]
    for kind in (b"P", b"O"):
        items = {(key, part, offset) for key, value, part, offset in routed if value[:1] == kind}
        assert len(items) == len({key for key, _part, _offset in items}) == count, kind
    dropped = sum(s.counts["routed_again"] for s in straight.learner.states.values())
    assert dropped == len(routed) - 2 * count
    # Snapshots every 8,000 outcomes, each registered once, each grown from the last.
    snapshots = registry.versions("m")[1:]
    assert [v.metrics["learned"] for v in snapshots] == [8000, 16000, 24000, 32000, 40000]
    assert [v.parent for v in snapshots] == [1, 2, 3, 4, 5]
    state = ControlPlane(settings, publish=False).state("m")
    assert state.champion == 1 and state.aliases["challenger"] == 6


# -- the lane without a broker: chunks and the rollback after an abort ----------------------


class FakeConsumer:
    """What LearnerLane.rewind asks of a consumer."""

    def __init__(self, assignment: list[TopicPartition]) -> None:
        self._assignment = assignment
        self.seeks: list[tuple[str, int, int]] = []

    def assignment(self) -> list[TopicPartition]:
        return self._assignment

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0) -> tuple[int, int]:
        return (0, 100)


def test_a_batch_is_cut_into_transactions_of_max_batch_items(offline) -> None:
    from streams.roles.learner.envelope import pack_bundles

    settings = offline["settings"]
    lane = LearnerLane(settings, LearnerSettings(), max_batch=8)
    topic = lane.learner.repartition_topic
    inputs = [FakeMessage(settings.topic_outcomes, 0, i, b"k", b"{}") for i in range(3)]
    bundles = [
        FakeMessage(topic, 0, i, None, pack_bundles(1, [(b"k", b"v", 0, i)] * 4)[0])
        for i in range(3)
    ]
    chunks = lane._chunks(bundles[:1] + inputs + bundles[1:])
    assert [[(m.topic(), m.offset()) for m in c] for c in chunks] == [
        [
            (settings.topic_outcomes, 0),
            (settings.topic_outcomes, 1),
            (settings.topic_outcomes, 2),
            (topic, 0),
        ],
        [(topic, 1), (topic, 2)],
    ]
    assert lane._chunks(inputs) == [inputs]


def test_an_aborted_transaction_rolls_the_learner_back_to_its_checkpoint(offline) -> None:
    model, rows, _ = train_demo_model("hyperplane", 300)
    champion(offline["control"], offline["table"], "m", model, rows)
    h = harness(offline, checkpoint_interval=1000.0)
    h.send_all(traffic("m", "hyperplane", 600, label_delay=0.05))
    h.settle()
    h.send_all(traffic("m", "hyperplane", 300, label_delay=0.05, seed=4))
    before = {k: len(v) for k, v in h.logs.items()}
    h.run()
    h.run()
    part = model_partition("m", PARTITIONS)
    committed = state_from_records(part, h.changelog[part])
    at_checkpoint = committed.lines["m"].learned
    assert h.learner.learned() > at_checkpoint  # learned past the last checkpoint
    lane = LearnerLane(offline["settings"], h.options, h.learner)
    topic = h.learner.repartition_topic
    consumer = FakeConsumer([TopicPartition(topic, p) for p in range(PARTITIONS)])
    batch = [m for (t, p), log in h.logs.items() for m in log[max(0, before[(t, p)] - 1) :]]
    lane.rewind(consumer, batch)  # type: ignore[arg-type]
    assert h.learner.learned() == at_checkpoint and not h.learner.states[part].dirty
    assert (topic, part, committed.offset) in consumer.seeks
    # Inputs go back to the first offset of the aborted batch.
    inputs = {(t, p, o) for t, p, o in consumer.seeks if t != topic}
    assert inputs == {
        (t, p, max(0, before[(t, p)] - 1)) for (t, p) in h.logs if t != topic and h.logs[(t, p)]
    }


def test_a_batch_cut_short_in_the_changelog_is_not_restored() -> None:
    """On the embedded broker a transaction cut short stays readable: its changelog
    entries without their checkpoint must not be restored over the last checkpoint."""
    from monitors.state import encode_snapshot
    from streams.roles.learner.envelope import join_key, pack_prediction
    from streams.roles.learner.partition_state import PartitionState

    committed = PartitionState(0)
    committed.offset = 5
    first, second = join_key("m", "r1"), join_key("m", "r2")
    records = [
        (first, pack_prediction(1, 1, 1, {"x": 1.0})),
        (b"c/0", encode_snapshot(committed.checkpoint(), 1)[0]),
        # The next batch: an entry and the first of two chunks, then the crash.
        (second, pack_prediction(2, 1, 2, {"x": 2.0})),
        (first, None),
        (b"c/0", encode_snapshot(committed.checkpoint(), 2, chunk_size=10)[0]),
    ]
    restored = state_from_records(0, records)
    assert list(restored.pending) == [first]
    assert restored.offset == 5 and restored.checkpoint_id == 1


def test_a_checkpoint_pickled_before_the_learner_moved_restores_its_state_classes() -> None:
    """A PrequentialWindow pickled as ``streams.learner_state.PrequentialWindow`` (the
    module of the release before the layout) restores as today's class."""
    import sys
    import types

    import streams.roles.learner  # noqa: F401  (registers the moved modules)
    from monitors.state import decode_snapshot, encode_snapshot
    from streams.roles.learner.prequential_window import PrequentialWindow

    window = PrequentialWindow("classification", 10)
    window.truth.append(1)
    old = types.ModuleType("streams.learner_state")
    old.PrequentialWindow = PrequentialWindow
    sys.modules[old.__name__] = old
    PrequentialWindow.__module__ = old.__name__
    try:
        chunks = encode_snapshot({"w": window}, snapshot_id=3)
    finally:
        PrequentialWindow.__module__ = "streams.roles.learner.prequential_window"
        del sys.modules[old.__name__]
    restored = decode_snapshot(chunks)[1]["w"]
    assert type(restored) is PrequentialWindow
    assert list(restored.truth) == [1]
