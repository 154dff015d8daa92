"""The job every competitor of bench/scoring.py does: the requests, the model, the answer.

JSON scoring requests with 10 numeric features, a River ``StandardScaler |
LogisticRegression`` trained briefly on synthetic data, and the prediction the baselines
(Faust, Quix, the hand-written loop) send back for each request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

FEATURES = [f"f{i}" for i in range(10)]
MODEL = "bench"


def train_model(rows: int = 2000, seed: int = 7) -> Any:
    """StandardScaler | LogisticRegression, trained briefly on a noisy linear concept."""
    from river import linear_model, preprocessing

    rng = np.random.default_rng(seed)
    weights = rng.normal(0.0, 1.0, len(FEATURES))
    x = rng.normal(0.0, 1.0, (rows, len(FEATURES)))
    y = (x @ weights + rng.normal(0.0, 0.5, rows)) > 0
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for row, label in zip(x.tolist(), y.tolist(), strict=True):
        model.learn_one(dict(zip(FEATURES, row, strict=True)), bool(label))
    return model


def make_requests(n: int, prefix: str, seed: int) -> list[dict]:
    """``n`` scoring requests with random features, keyed by entity ``e<i>``."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 1.0, (n, len(FEATURES))).round(4).tolist()
    now = int(time.time() * 1000)
    return [
        {
            "request_id": f"{prefix}{i}",
            "model": MODEL,
            "features": dict(zip(FEATURES, row, strict=True)),
            "event_time": now,
            "entity_id": f"e{i}",
        }
        for i, row in enumerate(matrix)
    ]


def request_encoder(fmt: str) -> Callable[[dict], tuple[bytes, list | None]]:
    """(value, headers) of a request: JSON, or lastmile Avro (header format)."""
    if fmt == "json":
        return lambda record: (orjson.dumps(record), None)
    from schemas import Codec

    codec = Codec()
    return lambda record: codec.encode("ScoringRequest", record)


def score_one(model: Any, request: dict) -> dict:
    """What the Faust and Quix jobs answer: the fields of lastmile's Prediction, as JSON."""
    proba = model.predict_proba_one(request["features"])
    return answer(request, float(proba.get(True, 0.0)), int(time.time() * 1000))


def answer(request: dict, score: float, now: int) -> dict:
    """The prediction of the baselines (and the ceiling) for a request and its score."""
    return {
        "request_id": request["request_id"],
        "model": request["model"],
        "version": 1,
        "variant": "champion",
        "score": score,
        "label": "1" if score >= 0.5 else "0",
        "features": request["features"],
        "event_time": request["event_time"],
        "scored_time": now,
        "latency_ms": float(max(0, now - request["event_time"])),
        "entity_id": request.get("entity_id"),
    }
