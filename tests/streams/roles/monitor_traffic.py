"""Traffic for the monitor tests: a registered model, prediction records with event
times aligned on minutes from ``T0``, and a log recorder. Shared by test_monitor.py (the
handler without Kafka) and test_monitor_broker.py (through the embedded broker)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from schemas import Codec
from streams.models import Registry

T0_MS = 1_700_000_040_000  # a whole minute: window w is [T0 + 60 w, T0 + 60 (w + 1)) s
WINDOW_MS = 60_000
FEATURES = ["x0", "x1", "x2", "plan"]
PLAN_REFERENCE = (0.5, 0.3, 0.2)
PLAN_DRIFTED = (0.1, 0.3, 0.6)
CODEC = Codec()


class LinearModel:
    """A python-flavor classifier: P(1) = sigmoid(x0 - x1). x2 and plan do not matter,
    so drifting them leaves the score alone."""

    classes_ = [0, 1]

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=object)
        p = 1.0 / (1.0 + np.exp(-(X[:, 0].astype(float) - X[:, 1].astype(float))))
        return np.column_stack([1.0 - p, p])


def feature_rows(
    rng: np.random.Generator, n: int, x2_shift: Any = 0.0, plan_mix: Any = 0.0
) -> list[dict[str, Any]]:
    """Rows of the reference distribution; `x2_shift` and `plan_mix` (per row) drift them."""
    x0, x1 = rng.normal(size=n), rng.normal(size=n)
    x2 = rng.normal(size=n) + np.broadcast_to(x2_shift, (n,))
    ref = rng.choice(["a", "b", "c"], size=n, p=PLAN_REFERENCE)
    drifted = rng.choice(["a", "b", "c"], size=n, p=PLAN_DRIFTED)
    plan = np.where(rng.random(n) < np.broadcast_to(plan_mix, (n,)), drifted, ref)
    return [
        {"x0": float(a), "x1": float(b), "x2": float(c), "plan": str(d)}
        for a, b, c, d in zip(x0, x1, x2, plan, strict=True)
    ]


def register(registry: Registry, model: str, reference: bool = True, seed: int = 3) -> int:
    rows = feature_rows(np.random.default_rng(seed), 5000) if reference else None
    return registry.register(
        model, LinearModel(), "python", features=FEATURES, reference_rows=rows
    ).version


def predictions(
    model: str,
    windows: int,
    per_window: int,
    seed: int,
    version: int = 1,
    x2_shift: Callable[[np.ndarray], np.ndarray] | None = None,
    plan_mix: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Prediction records, `per_window` events evenly spread over each window; the drift
    functions take the event index and return the shift / the drifted share per event."""
    rng = np.random.default_rng(seed)
    n = windows * per_window
    idx = np.arange(n)
    rows = feature_rows(
        rng,
        n,
        0.0 if x2_shift is None else x2_shift(idx),
        0.0 if plan_mix is None else plan_mix(idx),
    )
    times = T0_MS + (idx // per_window) * WINDOW_MS + (idx % per_window) * WINDOW_MS // per_window
    latency = rng.gamma(2.0, 4.0, size=n)
    out = []
    for i, row in enumerate(rows):
        score = 1.0 / (1.0 + np.exp(-(row["x0"] - row["x1"])))
        t = int(times[i])
        out.append(
            {
                "request_id": f"{model}-{seed}-{i}",
                "model": model,
                "version": version,
                "variant": "champion",
                "score": float(score),
                "label": "1" if score >= 0.5 else "0",
                "features": row,
                "event_time": t,
                "scored_time": t + 5,
                "latency_ms": float(latency[i]),
            }
        )
    return out


def window_end(w: int) -> float:
    """End of window `w`, in seconds (what alerts carry as ts, after mapping back)."""
    return (T0_MS + (w + 1) * WINDOW_MS) / 1000.0


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, text: str) -> list[str]:
        return [r.getMessage() for r in self.records if text in r.getMessage()]
