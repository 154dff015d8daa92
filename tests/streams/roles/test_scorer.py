"""The scorer on the embedded broker: every request answered once, by the right version."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from constant_model import tiny_model
from topic_reading import read_messages, read_records

from schemas import Codec
from streams.config import Settings, settings_env
from streams.kafka.topics import ensure_topics
from streams.local.demo_models import train_demo_model
from streams.local.processes import free_port, wait_for
from streams.local.simulate import simulated_events
from streams.models import ControlPlane, ModelTable, ModelWatcher
from streams.roles.scorer import Scorer, ScorerLane

FEATURES = ["x"]


@pytest.fixture
def stack(fresh_settings) -> Iterator[tuple[Settings, ControlPlane]]:
    yield from open_stack(fresh_settings())


@pytest.fixture
def at_least_once_stack(fresh_settings) -> Iterator[tuple[Settings, ControlPlane]]:
    yield from open_stack(fresh_settings(scorer_exactly_once=False))


def open_stack(settings: Settings) -> Iterator[tuple[Settings, ControlPlane]]:
    ensure_topics(settings)
    with ControlPlane(settings) as control:
        yield settings, control


def register(control: ControlPlane, name: str, bias: float) -> int:
    mv = control.register_and_publish(
        name, tiny_model(bias), "river", features=FEATURES, labels=[False, True]
    )
    return mv.version


def produce_requests(
    settings: Settings, n: int, model: str = "m", start: int = 0, key: Callable | None = None
) -> list[str]:
    producer = Producer(settings.producer_config())
    ids = []
    for i in range(start, start + n):
        rid = f"r{i}"
        entity = key(i) if key else f"e{i}"
        value = orjson.dumps(
            {
                "request_id": rid,
                "model": model,
                "features": {"x": float(i % 7)},
                "event_time": int(time.time() * 1000),
                "entity_id": entity,
            }
        )
        producer.produce(settings.topic_requests, value, entity.encode())
        producer.poll(0)
        ids.append(rid)
    assert producer.flush(30) == 0
    return ids


def run_lane(settings: Settings) -> ScorerLane:
    lane = ScorerLane(settings)
    lane.start()
    return lane


def test_every_request_gets_exactly_one_prediction_from_the_champion(stack) -> None:
    settings, control = stack
    v1 = register(control, "m", -3.0)
    control.promote("m", v1)
    lane = run_lane(settings)
    try:
        ids = produce_requests(settings, 10_000)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 10_000)
    finally:
        lane.stop()
    assert sorted(p["request_id"] for p in predictions) == sorted(ids)
    assert {(p["version"], p["variant"]) for p in predictions} == {(v1, "champion")}
    p = predictions[0]
    assert p["model"] == "m" and 0 < p["score"] < 0.1 and p["label"] == "0"
    assert p["scored_time"] >= p["event_time"] and p["latency_ms"] >= 0
    assert p["features"] == {"x": float(int(p["request_id"][1:]) % 7)}


def test_at_least_once_scorer_answers_every_request_and_commits_its_offsets(
    at_least_once_stack,
) -> None:
    settings, control = at_least_once_stack
    control.promote("m", register(control, "m", -3.0))
    lane = run_lane(settings)
    try:
        assert not lane.exactly_once
        ids = produce_requests(settings, 3000)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 3000)
    finally:
        lane.stop()
    assert sorted(p["request_id"] for p in predictions) == sorted(ids)
    # The offsets were committed after the predictions: a new worker starts past them.
    lane = run_lane(settings)
    try:
        ids += produce_requests(settings, 10, start=3000)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 3010)
    finally:
        lane.stop()
    assert sorted(p["request_id"] for p in predictions) == sorted(ids)


def scored_across_a_switch(
    settings: Settings,
    switch: Callable[[ScorerLane], None],
    consumed_first: int,
    poll: float = 0.1,
) -> tuple[list[str], list[str], list[dict]]:
    """5,000 requests, then ``switch`` (a promotion, a pause) once the lane consumed
    ``consumed_first`` of them, then 5,000 more: the ids before and after the switch and
    every prediction, each request answered exactly once (asserted here)."""
    lane = run_lane(settings)
    try:
        first = produce_requests(settings, 5000)
        assert wait_for(lambda: lane.stats.consumed >= consumed_first, 60, poll)
        switch(lane)
        second = produce_requests(settings, 5000, start=5000)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 10_000)
    finally:
        lane.stop()
    by_id = collections.Counter(p["request_id"] for p in predictions)
    assert set(by_id) == set(first + second) and max(by_id.values()) == 1
    return first, second, predictions


def test_promotion_mid_stream_switches_versions_without_loss_or_duplicate(stack) -> None:
    settings, control = stack
    v1, v2 = register(control, "m", -3.0), register(control, "m", 3.0)
    control.promote("m", v1)

    def promote_v2(_lane: ScorerLane) -> None:
        control.promote("m", v2)
        time.sleep(1.0)  # the contract: a promotion takes effect within a second

    first, second, predictions = scored_across_a_switch(settings, promote_v2, 5000)
    version = {p["request_id"]: p["version"] for p in predictions}
    assert {version[r] for r in first} == {v1}
    assert {version[r] for r in second} == {v2}
    # The score agrees with the version that claims it: no half-loaded model answered.
    assert all((p["score"] > 0.5) == (p["version"] == v2) for p in predictions)


def test_split_is_90_10_and_sticky_and_shadow_scores_beside(stack) -> None:
    settings, control = stack
    v1, v2, v3 = (register(control, "m", b) for b in (-3.0, 3.0, 0.0))
    control.promote("m", v1)
    control.promote("m", v2, alias="challenger")
    control.split("m", {"champion": 90, "challenger": 10})
    control.shadow("m", v3)
    lane = run_lane(settings)
    try:
        # 20k requests from 2k entities, 10 requests each.
        produce_requests(settings, 20_000, key=lambda i: f"customer-{i % 2000}")
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 40_000)
    finally:
        lane.stop()
    answers = [p for p in predictions if p["variant"] != "shadow"]
    shadows = [p for p in predictions if p["variant"] == "shadow"]
    assert len(answers) == 20_000 and len(shadows) == 20_000
    share = sum(p["variant"] == "challenger" for p in answers) / len(answers)
    assert abs(share - 0.10) <= 0.02, share
    variants_per_entity = collections.defaultdict(set)
    for p in answers:
        variants_per_entity[p["entity_id"]].add(p["variant"])
    assert all(len(v) == 1 for v in variants_per_entity.values())
    assert {p["version"] for p in shadows} == {v3}
    assert {p["request_id"] for p in shadows} == {p["request_id"] for p in answers}


def test_bad_requests_become_dead_letters_and_the_rest_is_scored(stack) -> None:
    settings, control = stack
    control.promote("m", register(control, "m", 0.0))
    producer = Producer(settings.producer_config())
    bad = {
        b"not json at all": "decode",
        orjson.dumps(
            {"request_id": "u1", "model": "nope", "features": {"x": 1.0}, "event_time": 1}
        ): "route",
        orjson.dumps(
            {"request_id": "f1", "model": "m", "features": {"y": 1.0}, "event_time": 1}
        ): "score",
        orjson.dumps(
            {"request_id": "t1", "model": "m", "features": {"x": "high"}, "event_time": 1}
        ): "score",
        orjson.dumps({"model": "m", "features": {}}): "validate",
    }
    for value in bad:
        producer.produce(settings.topic_requests, value, b"k", headers=[("trace", b"t-1")])
    producer.flush(10)
    produce_requests(settings, 100)
    lane = run_lane(settings)
    try:
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 100)
        letters = read_records(settings, settings.topic_dlq, "DeadLetter", len(bad))
    finally:
        lane.stop()
    assert len(predictions) == 100
    assert len(letters) == len(bad)
    by_value = {bytes(d["original_value"]): d for d in letters}
    assert set(by_value) == set(bad)
    for value, stage in bad.items():
        letter = by_value[value]
        assert letter["stage"] == stage, letter
        assert letter["source_topic"] == settings.topic_requests
        assert letter["source_offset"] >= 0 and letter["original_key"] == b"k"
        assert letter["error"]
        assert ("trace", b"t-1") in [(h["key"], h["value"]) for h in letter["original_headers"]]
    assert "unknown model 'nope'" in by_value[list(bad)[1]]["error"]
    assert by_value[list(bad)[2]]["error_type"] == "feature_missing"
    assert "'x'" in by_value[list(bad)[2]]["error"]
    assert by_value[list(bad)[3]]["error_type"] == "feature_type"
    assert lane.scorer.counts["dlq.route"] == 1


def test_a_large_batch_with_bad_rows_answers_each_request_with_its_own_score(stack) -> None:
    # A batch big enough for the matrix path, with rows that fail the feature check
    # among the good ones: the bad rows become dead letters, and the float matrix of the
    # rows left lines up with their requests. Scorer.process on the broker's messages.
    settings, control = stack
    sloped = tiny_model(0.0)
    sloped._weights["x"] = 0.7  # a score that differs from one request to the next
    mv = control.register_and_publish("m", sloped, "river", features=FEATURES, labels=[False, True])
    control.promote("m", mv.version)
    producer = Producer(settings.producer_config())
    for i, features in enumerate([{"y": 1.0}, {"x": "high"}, {"x": True}]):
        request = {"request_id": f"bad{i}", "model": "m", "features": features, "event_time": 1}
        producer.produce(settings.topic_requests, orjson.dumps(request), b"k")
    producer.flush(10)
    produce_requests(settings, 600)
    messages = read_messages(settings, settings.topic_requests, 603)
    table = ModelTable()
    watcher = ModelWatcher(settings, table).start()
    try:
        assert watcher.wait_caught_up(20)
    finally:
        watcher.stop()
    scorer = Scorer(settings, table, control.registry)
    outputs = scorer.process(messages)

    codec = Codec.from_settings(settings)
    by_topic = collections.defaultdict(list)
    for o in outputs:
        schema = "Prediction" if o.topic == settings.topic_predictions else "DeadLetter"
        by_topic[schema].append(codec.decode(o.value, o.headers, schema))
    predictions, letters = by_topic["Prediction"], by_topic["DeadLetter"]
    assert sorted(d["error_type"] for d in letters) == [
        "feature_missing",
        "feature_type",
        "feature_type",
    ]
    assert sorted(p["request_id"] for p in predictions) == sorted(f"r{i}" for i in range(600))
    model = control.registry.load("m", 1)
    for p in predictions:
        assert p["score"] == pytest.approx(model.predict_one(p["features"])[0], rel=1e-9)


def test_a_tampered_artifact_is_refused_and_the_previous_version_keeps_serving(stack) -> None:
    settings, control = stack
    v1, v2 = register(control, "m", -3.0), register(control, "m", 3.0)
    control.promote("m", v1)
    lane = run_lane(settings)
    try:
        produce_requests(settings, 100)
        assert wait_for(lambda: lane.stats.consumed >= 100, 60)
        artifact = Path(control.registry.get("m", v2).artifact)
        artifact.write_bytes(artifact.read_bytes() + b"tampered")
        # promote refuses a version whose sha256 does not match ...
        with pytest.raises(Exception, match="sha256"):
            control.promote("m", v2)
        produce_requests(settings, 100, start=100)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 200)
    finally:
        lane.stop()
    assert len(predictions) == 200 and {p["version"] for p in predictions} == {v1}


def test_one_scorer_serves_a_hundred_models(stack) -> None:
    settings, control = stack
    for i in range(100):
        control.promote(f"m{i:03d}", register(control, f"m{i:03d}", float(i % 5) - 2))
    producer = Producer(settings.producer_config())
    for i in range(2000):
        value = orjson.dumps(
            {
                "request_id": f"r{i}",
                "model": f"m{i % 100:03d}",
                "features": {"x": 1.0},
                "event_time": 1,
            }
        )
        producer.produce(settings.topic_requests, value, str(i).encode())
    producer.flush(10)
    lane = run_lane(settings)
    try:
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 2000)
    finally:
        lane.stop()
    assert len(predictions) == 2000
    assert len({p["model"] for p in predictions}) == 100
    assert len(lane.scorer.cache) == 100


def test_sigkill_mid_stream_loses_and_duplicates_nothing(stack, tmp_path: Path) -> None:
    """Three workers are killed mid-stream; each next one takes the killed one's
    transactional.id slot, fences its open transaction instead of stalling behind it,
    and skips what that transaction left visible on the embedded broker."""
    settings, control = stack
    ids, predictions = kill_workers_then_read(settings, control, tmp_path)
    counts = collections.Counter(p["request_id"] for p in predictions)
    assert set(counts) == set(ids), (tmp_path / "worker.log").read_text()[-2000:]
    assert max(counts.values()) == 1


def test_sigkill_at_least_once_loses_nothing(at_least_once_stack, tmp_path: Path) -> None:
    """At least once, a killed worker's batch is scored again (a duplicate is allowed)
    but no request goes without its prediction."""
    settings, control = at_least_once_stack
    ids, predictions = kill_workers_then_read(settings, control, tmp_path, kills=1)
    counts = collections.Counter(p["request_id"] for p in predictions)
    assert set(counts) == set(ids), (tmp_path / "worker.log").read_text()[-2000:]


def kill_workers_then_read(
    settings: Settings, control: ControlPlane, tmp_path: Path, kills: int = 3, n: int = 60_000
) -> tuple[list[str], list[dict]]:
    """Score ``n`` requests with a worker SIGKILLed mid-stream ``kills`` times, then one
    left to finish: the request ids, and every committed prediction."""
    model, rows, _ = train_demo_model("sea", n=2000)
    control.promote(
        "sea",
        control.register_and_publish(
            "sea", model, "river", reference_rows=rows, labels=[False, True]
        ).version,
    )
    producer = Producer(settings.producer_config())
    ids = []
    for event in simulated_events(model="sea", stream="sea", count=n, label_delay=None):
        if event.kind == "request":
            producer.produce(settings.topic_requests, event.value, event.key)
            producer.poll(0)
            ids.append(event.request_id)
    producer.flush(30)

    env = worker_env(settings)
    worker = [sys.executable, "-m", "streams.cli.main", "worker", "--roles", "scorer"]
    log_path = tmp_path / "worker.log"
    progress = []
    for _ in range(kills):
        before = produced_so_far(settings)
        proc = subprocess.Popen(
            worker, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("a")
        )
        # Kill it mid-stream: once it has committed something, while work remains.
        try:
            assert wait_for(lambda b=before: produced_so_far(settings) > b, 120, 0.02)
            time.sleep(0.05)  # a batch of 5,000 takes ~70 ms: mostly killed inside one
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        progress.append(produced_so_far(settings))
    assert progress[-1] < n, "the stream ended before the last kill: raise n"
    proc = subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("a"))
    try:
        predictions = read_records(
            settings, settings.topic_predictions, "Prediction", n, timeout=120
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return ids, predictions


def produced_so_far(settings: Settings) -> int:
    """Messages in the predictions topic (committed or not): progress a test can see."""
    consumer = Consumer(settings.consumer_config("progress"))
    total = 0
    for p in range(settings.topic_partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(settings.topic_predictions, p), timeout=5
        )
        total += high
    consumer.close()
    return total


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process running with these settings."""
    return {**os.environ, **settings_env(settings), "LASTMILE_WEB_PORT": str(free_port())}


def test_a_huge_bad_message_is_dead_lettered_truncated_and_scoring_goes_on(stack) -> None:
    settings, control = stack
    control.promote("m", register(control, "m", 0.0))
    producer = Producer(settings.producer_config(**{"message.max.bytes": 4_000_000}))
    huge = b'{"request_id": "' + b"x" * 2_000_000 + b'"}'
    producer.produce(settings.topic_requests, huge, b"huge")
    assert producer.flush(30) == 0
    produce_requests(settings, 50)
    lane = run_lane(settings)
    try:
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 50)
        letters = read_records(settings, settings.topic_dlq, "DeadLetter", 1)
    finally:
        lane.stop()
    assert len(predictions) == 50 and len(letters) == 1
    assert "truncated" in letters[0]["error"] and len(letters[0]["original_value"]) < 1_000_000
