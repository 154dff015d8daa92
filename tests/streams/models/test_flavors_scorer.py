"""Every flavor end to end on the embedded broker: register, promote, score over Kafka
through the scorer, and get what the model's own runtime predicts on the same rows."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from flavor_models import (
    FEATURES,
    data,
    lgb_classifier,
    onnx_from_lightgbm,
    pyfunc_doubler,
    rows,
    sklearn_pipeline,
    xgb_classifier,
)
from numpy.testing import assert_allclose

from schemas import Codec
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


def read_predictions(settings: Settings, expect: int, timeout: float = 120) -> list[dict]:
    """Every committed prediction, waiting until ``expect`` arrived (or the time is up)."""
    codec = Codec.from_settings(settings)
    consumer = Consumer(settings.consumer_config("reader", **{"isolation.level": "read_committed"}))
    topic = settings.topic_predictions
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for m in consumer.consume(5000, 0.2):
            if m.error() is None:
                out.append(codec.decode(m.value(), m.headers(), "Prediction", topic))
    consumer.close()
    return out


def test_every_flavor_scores_over_kafka_as_its_runtime_does(fresh_settings, tmp_path: Path):
    import mlflow
    import onnxruntime
    from sklearn.ensemble import GradientBoostingRegressor

    settings = fresh_settings()
    ensure_topics(settings)
    X, y, target = data(300, seed=1)
    frame = pd.DataFrame(X, columns=FEATURES)
    xgb, lgb, pipeline = xgb_classifier(X, y), lgb_classifier(X, y), sklearn_pipeline(X, y)
    gbr = GradientBoostingRegressor(n_estimators=10).fit(X, target)
    onnx_graph = onnx_from_lightgbm(lgb)
    pyfunc_dir = tmp_path / "doubler"
    mlflow.pyfunc.save_model(str(pyfunc_dir), python_model=pyfunc_doubler())
    lgb_text = tmp_path / "lgb.txt"
    lgb_text.write_text(lgb.booster_.model_to_string())

    session = onnxruntime.InferenceSession(onnx_graph.SerializeToString())
    onnx_probs = session.run(None, {"input": X.astype(np.float32)})[1]
    pyfunc_values = mlflow.pyfunc.load_model(str(pyfunc_dir)).predict(frame)
    cases = {  # model name: (what is registered, its flavor, what its runtime predicts)
        "xgb": (xgb, "xgboost", xgb.predict_proba(X)[:, 1]),
        "lgb": (str(lgb_text), "lightgbm", lgb.predict_proba(X)[:, 1]),
        "onnx": (onnx_graph, "onnx", onnx_probs[:, 1]),
        "skl": (pipeline, "sklearn", pipeline.predict_proba(frame)[:, 1]),
        "pkl": (gbr, "python", gbr.predict(X)),
        "mlf": (str(pyfunc_dir), "mlflow", pyfunc_values),
    }

    with ControlPlane(settings) as control:
        for name, (model, flavor, _) in cases.items():
            declared = "python" if flavor == "python" else None  # the rest are inferred
            mv = control.register_and_publish(name, model, declared, features=FEATURES)
            assert mv.flavor == flavor
            control.promote(name, mv.version)
        # A refused registration writes nothing: version 1 keeps serving.
        with pytest.raises(FlavorMismatchError, match="LightGBM"):
            control.register_and_publish("xgb", str(lgb_text), "xgboost", features=FEATURES)
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
    for name, (_, flavor, expected) in cases.items():
        got = by_model[name]
        assert sorted(got) == list(range(len(X))), name
        assert {(p["version"], p["variant"]) for p in got.values()} == {(1, "champion")}
        scores = np.array([got[i]["score"] for i in range(len(X))])
        assert_allclose(scores, expected, rtol=1e-6, err_msg=f"{name} ({flavor})")
