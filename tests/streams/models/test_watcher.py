"""The model watcher's idle pause and catch-up on the embedded broker: a paused watcher
learns of an event published after it paused within the catch-up call, a catch-up about
a message older than the last confirmation asks nothing, and the scorer and the learner
catch up before they call a model unknown or unlearnable."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from river import linear_model

from streams.config import Settings
from streams.kafka.held_message import HeldMessage
from streams.kafka.topics import ensure_topics
from streams.models import ControlPlane, ModelTable, ModelWatcher
from streams.roles.learner.handler import Learner
from streams.roles.scorer import Scorer

# The watcher's own asks for the ends never come within a test: only a catch-up wakes it.
NEVER_S = 300.0


def register(plane: ControlPlane, name: str) -> None:
    plane.register_and_publish(name, linear_model.LinearRegression(), "river", features=["x"])
    plane.promote(name, 1)


@pytest.fixture
def paused(
    fresh_settings: Callable[..., Settings],
) -> Iterator[tuple[Settings, ControlPlane, ModelTable, ModelWatcher]]:
    """A watcher caught up with one model ("fraud"), then idle-paused with no ask for the
    ends due for minutes: what it learns from now on, a catch-up made it fetch."""
    settings = fresh_settings()
    ensure_topics(settings)
    with ControlPlane(settings) as plane:
        register(plane, "fraud")
        table = ModelTable()
        watcher = ModelWatcher(settings, table)
        assert watcher.idle is not None  # on by default on the embedded broker
        watcher.idle.after_s = 0.3
        watcher.idle.interval_s = NEVER_S
        with watcher:
            assert watcher.wait_caught_up(15)
            deadline = time.monotonic() + 15
            while not watcher.idle.paused:
                assert time.monotonic() < deadline, "the watcher never paused"
                time.sleep(0.02)
            yield settings, plane, table, watcher


def test_idle_watcher_pauses_and_sees_promotion(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings()
    with ControlPlane(settings) as plane:
        register(plane, "fraud")
        plane.register_and_publish("fraud", linear_model.LinearRegression(), "river")
        table = ModelTable()
        watcher = ModelWatcher(settings, table)
        assert watcher.idle is not None
        watcher.idle.after_s = 0.5
        with watcher:
            assert watcher.wait_caught_up(15)
            deadline = time.monotonic() + 15
            while not watcher.idle.paused:
                assert time.monotonic() < deadline, "the watcher never paused"
                time.sleep(0.05)
            start = time.monotonic()
            plane.promote("fraud", 2)
            while table.route("fraud", "k") != [(2, "champion")]:
                # One ask interval (0.25 s) and a fetch; slack for a busy host.
                assert time.monotonic() - start < 1.5, "promotion not seen within 1.5 s"
                time.sleep(0.005)
            assert watcher.idle.resumes >= 1
            assert watcher.errors == 0


def test_catch_up_applies_an_event_published_while_paused(paused) -> None:
    _settings, plane, table, watcher = paused
    register(plane, "churn")
    time.sleep(0.3)  # a fetching watcher would have it by now
    assert table.get("churn") is None, "the paused watcher fetched"
    start = time.monotonic()
    assert table.catch_up(5.0)
    took = time.monotonic() - start
    assert table.route("churn", "k") == [(1, "champion")]
    assert watcher.asks == 1
    assert took < 2.0, f"the catch-up took {took:.2f} s"
    assert watcher.errors == 0


def test_catch_up_skips_the_broker_for_a_message_older_than_its_confirmation(paused) -> None:
    _settings, plane, table, watcher = paused
    assert watcher.confirmed_ms == 0
    assert table.catch_up(5.0)  # nothing new: confirmed without a fetch
    assert watcher.asks == 1
    confirmed = watcher.confirmed_ms
    assert confirmed > 0
    for _ in range(100):
        assert table.catch_up(5.0, since_ms=confirmed - 1)
    assert watcher.asks == 1
    # Not older than the confirmation: an event may have come in that same ms.
    register(plane, "churn")
    assert table.catch_up(5.0, since_ms=int(time.time() * 1000))
    assert watcher.asks == 2
    assert table.get("churn") is not None


def test_a_stopped_watcher_does_not_make_its_table_wait(paused) -> None:
    _settings, _plane, table, watcher = paused
    watcher.stop()
    start = time.monotonic()
    assert not table.catch_up(5.0)
    assert time.monotonic() - start < 0.5


def test_after_a_catch_up_runs_out_of_time_the_next_ones_do_not_wait(
    paused, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of requests for unknown models must not wait out the timeout once a request:
    # while the thread cannot catch up, callers decide at once; once it has, they wait again.
    _settings, _plane, table, watcher = paused
    applied_to = watcher._applied_to
    monkeypatch.setattr(watcher, "_applied_to", lambda *_args: False)  # as if never applied
    start = time.monotonic()
    assert not table.catch_up(0.3)
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    for _ in range(10):
        assert not table.catch_up(5.0)
    assert time.monotonic() - start < 0.5
    monkeypatch.setattr(watcher, "_applied_to", applied_to)
    deadline = time.monotonic() + 5
    while watcher.confirmed_ms == 0:  # the thread goes on with the catch-up it was asked
        assert time.monotonic() < deadline, "the watcher never caught up"
        time.sleep(0.01)
    asks = watcher.asks
    assert table.catch_up(5.0)
    assert watcher.asks == asks + 1


def request(settings: Settings, model: str, ts: int) -> HeldMessage:
    value = {"request_id": "r1", "model": model, "features": {"x": 1.0}, "event_time": ts}
    return HeldMessage(settings.topic_requests, 0, 0, b"k", orjson.dumps(value), None, ts)


def test_the_scorer_catches_up_before_calling_a_model_unknown(paused) -> None:
    settings, plane, table, watcher = paused
    scorer = Scorer(settings, table, plane.registry)
    register(plane, "churn")
    now = int(time.time() * 1000)
    time.sleep(0.002)  # the requests were made before the scorer reads them
    outputs = scorer.process([request(settings, "churn", now), request(settings, "nope", now)])
    assert [o.topic for o in outputs] == [settings.topic_dlq, settings.topic_predictions]
    assert dict(scorer.counts) == {"dlq.route": 1, "champion": 1}
    assert watcher.asks == 1  # one catch-up for the batch


def test_the_learner_catches_up_before_calling_a_model_unlearnable(paused) -> None:
    settings, plane, table, watcher = paused
    learner = Learner(settings, registry=plane.registry, control=plane, table=table)
    learner.partitions = settings.topic_partitions
    register(plane, "churn")
    now = int(time.time() * 1000)
    prediction = {
        "request_id": "r1",
        "model": "churn",
        "version": 1,
        "variant": "champion",
        "event_time": now,
        "features": {"x": 1.0},
        "score": 0.5,
        "label": "1",
        "scored_time": now,
        "latency_ms": 1.0,
        "entity_id": None,
    }
    value, headers = learner.codec.encode("Prediction", prediction)
    message = HeldMessage(settings.topic_predictions, 0, 0, b"r1", value, headers, now)
    outputs = learner.route([message], [], now)
    assert learner.counts["routed_predictions"] == 1
    assert learner.counts["unlearnable"] == 0
    assert len(outputs) == 1
    assert watcher.asks == 1
