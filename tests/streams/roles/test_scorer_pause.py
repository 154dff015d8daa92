"""The kill switch on the embedded broker: a paused model's every request is answered by
its fallback, once, and resume gives it back to the champion."""

from __future__ import annotations

import collections
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import Producer
from test_scorer import (
    open_stack,
    produce_requests,
    register,
    run_lane,
    scored_across_a_switch,
)
from topic_reading import read_records

from streams.config import Settings
from streams.local.processes import wait_for
from streams.models import FALLBACK, FALLBACK_CONSTANT, ControlPlane
from streams.roles.scorer import ScorerLane

# The contract is a second; this is what a loaded test machine is allowed.
SWITCH_S = 5.0


@pytest.fixture
def stack(fresh_settings) -> Iterator[tuple[Settings, ControlPlane]]:
    yield from open_stack(fresh_settings())


def paused_in(lane: ScorerLane, model: str, paused: bool = True) -> bool:
    state = lane.table.get(model)
    return state is not None and (state.pause is not None) == paused


def produce_bad_features(settings: Settings, n: int, model: str = "m") -> list[str]:
    """Requests the champion would dead-letter (a missing and a mistyped feature)."""
    producer = Producer(settings.producer_config())
    ids = []
    for i in range(n):
        features = {"y": 1.0} if i % 2 else {"x": "high"}
        request = {"request_id": f"bad{i}", "model": model, "features": features, "event_time": 1}
        producer.produce(settings.topic_requests, orjson.dumps(request), f"b{i}".encode())
        ids.append(f"bad{i}")
    assert producer.flush(30) == 0
    return ids


def by_request(predictions: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = collections.defaultdict(list)
    for p in predictions:
        out[p["request_id"]].append(p)
    return out


def test_pause_answers_every_request_with_the_fallback_and_resume_restores(stack) -> None:
    settings, control = stack
    v1, v2 = register(control, "m", -3.0), register(control, "m", 3.0)
    control.promote("m", v1)
    control.shadow("m", v2)
    control.promote("other", register(control, "other", 3.0))
    lane = run_lane(settings)
    try:
        before = produce_requests(settings, 1000)
        read_records(settings, settings.topic_predictions, "Prediction", 2000)  # all answered
        control.pause("m", fallback_score=0.5, fallback_label="unknown")
        assert wait_for(lambda: paused_in(lane, "m"), SWITCH_S, 0.01)
        paused = produce_requests(settings, 3000, start=1000)
        paused += produce_bad_features(settings, 20)
        others = produce_requests(settings, 500, model="other", start=10_000)
        read_records(settings, settings.topic_predictions, "Prediction", 2000 + 3020 + 500)
        control.resume("m")
        assert wait_for(lambda: paused_in(lane, "m", False), SWITCH_S, 0.01)
        after = produce_requests(settings, 1000, start=4000)
        expected = 2000 + 3020 + 500 + 2000
        predictions = read_records(settings, settings.topic_predictions, "Prediction", expected)
        letters = read_records(settings, settings.topic_dlq, "DeadLetter", 0, timeout=3)
    finally:
        lane.stop()
    assert len(predictions) == expected
    answers = by_request(predictions)
    assert set(answers) == set(before + paused + others + after)
    # paused: one answer each, the fallback's, bad features or not; no shadow, no dead letter
    for rid in paused:
        (p,) = answers[rid]
        assert (p["variant"], p["version"], p["score"], p["label"]) == (
            FALLBACK,
            FALLBACK_CONSTANT,
            0.5,
            "unknown",
        )
        assert p["model"] == "m" and p["latency_ms"] >= 0
    assert letters == []
    # before and after: the champion answers and the shadow scores beside
    for rid in before + after:
        assert sorted((p["variant"], p["version"]) for p in answers[rid]) == [
            ("champion", v1),
            ("shadow", v2),
        ]
        (champion,) = [p for p in answers[rid] if p["variant"] == "champion"]
        assert champion["score"] < 0.1
    # another model is not touched by the pause
    assert {(p["variant"], p["version"]) for rid in others for p in answers[rid]} == {
        ("champion", 1)
    }


def test_pause_mid_stream_to_a_fallback_version_loses_and_duplicates_nothing(stack) -> None:
    settings, control = stack
    v1, v2 = register(control, "m", -3.0), register(control, "m", 3.0)
    control.promote("m", v1)

    def pause_to_v2(lane: ScorerLane) -> None:
        control.pause("m", fallback_version=v2)  # while the stream is being scored
        assert wait_for(lambda: paused_in(lane, "m"), SWITCH_S, 0.01)

    _, second, predictions = scored_across_a_switch(settings, pause_to_v2, 2000, poll=0.01)
    answer = {p["request_id"]: p for p in predictions}
    assert {(answer[r]["variant"], answer[r]["version"]) for r in second} == {(FALLBACK, v2)}
    assert {(p["variant"], p["version"]) for p in predictions} <= {
        ("champion", v1),
        (FALLBACK, v2),
    }
    # the score agrees with the version that claims it: v2 answered the fallback's share
    assert all((p["score"] > 0.5) == (p["version"] == v2) for p in predictions)


def test_a_worker_restarted_while_paused_stays_paused(stack) -> None:
    settings, control = stack
    control.promote("m", register(control, "m", -3.0))
    control.pause("m", fallback_label="hold")
    lane = run_lane(settings)
    try:
        first = produce_requests(settings, 500)
        read_records(settings, settings.topic_predictions, "Prediction", 500)
    finally:
        lane.stop()
    # A new worker knows the model from the compacted topic alone: the replay says paused.
    lane = run_lane(settings)
    try:
        second = produce_requests(settings, 500, start=500)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 1000)
        control.resume("m")
        assert wait_for(lambda: paused_in(lane, "m", False), SWITCH_S, 0.01)
        third = produce_requests(settings, 200, start=1000)
        predictions = read_records(settings, settings.topic_predictions, "Prediction", 1200)
    finally:
        lane.stop()
    answer = {p["request_id"]: p for p in predictions}
    assert len(answer) == len(predictions) == 1200
    for rid in first + second:
        p = answer[rid]
        assert (p["variant"], p["version"], p["score"], p["label"]) == (
            FALLBACK,
            FALLBACK_CONSTANT,
            None,
            "hold",
        )
    assert {(answer[r]["variant"], answer[r]["version"]) for r in third} == {("champion", 1)}
