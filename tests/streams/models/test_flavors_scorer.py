"""Every flavor end to end on the embedded broker: register, promote, score over Kafka
through the scorer, and get what the model's own runtime predicts on the same rows."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest
from confluent_kafka import Producer
from flavor_models import (
    FEATURES,
    data,
    flavor_cases,
    read_predictions,
    register_and_promote,
    rows,
)
from numpy.testing import assert_allclose

from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.models import ControlPlane
from streams.models.flavors import FlavorMismatchError
from streams.roles.scorer import ScorerLane


def produce(settings: Settings, model: str, X: np.ndarray) -> None:
    producer = Producer(settings.producer_config())
    for i, features in enumerate(rows(X)):
        request = {
            "request_id": f"{model}-{i}",
            "model": model,
            "features": features,
            "event_time": int(time.time() * 1000),
            "entity_id": f"e{i}",
        }
        producer.produce(settings.topic_requests, orjson.dumps(request), f"e{i}".encode())
        producer.poll(0)
    assert producer.flush(30) == 0


def test_every_flavor_scores_over_kafka_as_its_runtime_does(fresh_settings, tmp_path: Path):
    settings = fresh_settings()
    ensure_topics(settings)
    X, y, target = data(300, seed=1)
    cases = flavor_cases(X, y, target, tmp_path)

    with ControlPlane(settings) as control:
        register_and_promote(control, cases)
        # A refused registration writes nothing: version 1 keeps serving.
        with pytest.raises(FlavorMismatchError, match="LightGBM"):
            control.register_and_publish("xgb", cases["lgb"].model, "xgboost", features=FEATURES)
        assert control.state("xgb").aliases["champion"] == 1
        assert [v.version for v in control.registry.versions("xgb")] == [1]

    lane = ScorerLane(settings)
    lane.start()
    try:
        for name in cases:
            produce(settings, name, X)
        predictions = read_predictions(settings, len(cases) * len(X))
    finally:
        lane.stop()

    assert len(predictions) == len(cases) * len(X)
    by_model: dict[str, dict[int, dict]] = {}
    for p in predictions:
        by_model.setdefault(p["model"], {})[int(p["request_id"].rsplit("-", 1)[1])] = p
    for name, case in cases.items():
        got = by_model[name]
        assert sorted(got) == list(range(len(X))), name
        assert {(p["version"], p["variant"]) for p in got.values()} == {(1, "champion")}
        scores = np.array([got[i]["score"] for i in range(len(X))])
        assert_allclose(scores, case.expected, rtol=1e-6, err_msg=f"{name} ({case.flavor})")
