"""Prequential metrics over a window of recent outcomes."""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np
from river import metrics


class PrequentialWindow:
    """The last `size` (truth, prediction) pairs of one evaluator, and River's rolling
    metrics over them, computed when asked.

    :class:`monitors.performance.RollingPerformance` updates four River rolling metrics per
    outcome (~5 µs, twice per outcome here: a quarter of the learner's budget at 20,000
    outcomes/s). The values depend only on the window, so this keeps the window and
    computes the same definitions on demand: ``utils.Rolling(metrics.Accuracy)``,
    ``utils.Rolling(metrics.LogLoss)`` (probabilities clamped to [1e-15, 1 - 1e-15]),
    ``metrics.RollingROCAUC`` (left out while the window holds one class only), and
    ``utils.Rolling(metrics.MAE)`` / ``utils.Rolling(metrics.RMSE)`` for regressors.
    ``tests/streams/roles/test_learner.py`` checks the values against ``RollingPerformance``.

    Binary classifiers: ``update(truth, p)`` with truth a bool (the positive class) and p
    its probability (accuracy thresholds it at 0.5). Multi-class: ``update(label,
    predicted label)``, accuracy only. Regressors: ``update(y, y_hat)``.

    >>> w = PrequentialWindow("classification", 4)
    >>> for y, p in [(True, 0.9), (False, 0.2), (True, 0.4), (False, 0.1)]:
    ...     w.update(y, p)
    >>> {k: round(v, 3) for k, v in w.get().items()}
    {'accuracy': 0.75, 'log_loss': 0.338, 'roc_auc': 1.0}
    """

    def __init__(self, task: str, size: int, binary: bool = True) -> None:
        self.task = task
        self.size = size
        self.binary = binary
        self.truth: collections.deque[Any] = collections.deque(maxlen=size)
        self.pred: collections.deque[Any] = collections.deque(maxlen=size)

    def update(self, truth: Any, pred: Any) -> None:
        """Add one outcome (the oldest leaves a full window)."""
        self.truth.append(truth)
        self.pred.append(pred)

    @property
    def window_n(self) -> int:
        """How many outcomes the window holds."""
        return len(self.truth)

    def get(self) -> dict[str, float]:
        """The metrics over the window; {} while it is empty."""
        n = len(self.truth)
        if n == 0:
            return {}
        if self.task == "regression":
            err = np.fromiter(self.truth, float, n) - np.fromiter(self.pred, float, n)
            return {
                "mae": float(np.abs(err).mean()),
                "rmse": math.sqrt(float((err * err).mean())),
            }
        if not self.binary:
            hits = sum(1 for a, b in zip(self.truth, self.pred, strict=True) if a == b)
            return {"accuracy": hits / n}
        y = np.fromiter(self.truth, bool, n)
        p = np.fromiter(self.pred, float, n)
        out = {"accuracy": float(((p >= 0.5) == y).mean())}
        q = np.clip(p, 1e-15, 1 - 1e-15)
        out["log_loss"] = float(np.where(y, -np.log(q), -np.log1p(-q)).mean())
        positives = int(y.sum())
        if 0 < positives < n:
            auc = metrics.RollingROCAUC(window_size=self.size)
            for a, b in zip(self.truth, self.pred, strict=True):
                auc.update(a, b)
            out["roc_auc"] = float(auc.get())
        return out
