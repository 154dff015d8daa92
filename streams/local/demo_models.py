"""The demo models: one River model per demo stream, trained on other seeds than the
traffic ``lastmile simulate`` sends, so the model has not seen what it scores."""

from __future__ import annotations

from typing import Any

from streams.local.simulate import stream_rows

__all__ = ["DEMO_MODELS", "TRAIN_SEED_OFFSET", "train_demo_model"]


DEMO_MODELS = {"fraud": "agrawal", "churn": "hyperplane"}
# Training samples come from other seeds than `simulate`'s default: the demo model
# has not seen the traffic it scores (the concept is the same).
TRAIN_SEED_OFFSET = 1_000_003


def train_demo_model(
    stream: str, n: int = 5000, seed: int = 0
) -> tuple[Any, list[dict[str, Any]], dict[str, float]]:
    """A River ``StandardScaler | LogisticRegression`` trained on ``n`` rows of ``stream``.

    Returns the model, its training rows (the reference sample) and progressive
    validation metrics (each row predicted before it is learned). Agrawal's coded
    columns (elevel, car, zipcode) stay numeric: under the demo concept (function 6,
    an income rule) one-hot encoding them gained nothing, and it would cost the
    vectorised ``predict_proba_many`` path (River's Discard/OneHotEncoder union).
    """
    from river import linear_model, metrics, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    accuracy, auc, logloss = metrics.Accuracy(), metrics.ROCAUC(), metrics.LogLoss()
    rows: list[dict[str, Any]] = []
    for x, y in stream_rows(stream, seed + TRAIN_SEED_OFFSET, n):
        y = bool(y)
        proba = model.predict_proba_one(x)
        accuracy.update(y, proba.get(True, 0.0) >= 0.5)
        auc.update(y, proba)
        logloss.update(y, proba)
        model.learn_one(x, y)
        rows.append(x)
    scores = {
        "accuracy": round(float(accuracy.get()), 4),
        "roc_auc": round(float(auc.get()), 4),
        "log_loss": round(float(logloss.get()), 4),
        "train_rows": float(n),
    }
    return model, rows, scores
