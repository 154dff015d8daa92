"""The metrics a comparison can be on, each as a mean of per-outcome values.

A confidence sequence is for a mean, so each metric is written as one: accuracy is the
mean of ``prediction == truth``, log loss of ``-log p(truth)``, MAE of ``|y - yhat|``,
RMSE the square root of the mean squared error (the sequence is on the MSE). ROC AUC is
no mean of per-outcome values (it ranks pairs across outcomes) and has no sequential
test here: it is reported per arm, and the decision is made on log loss, which the
comparison says in ``decided_on``.

>>> import numpy as np
>>> y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.1])
>>> observe("accuracy", y, proba=p).tolist()
[1.0, 1.0, 0.0, 1.0]
>>> METRICS["rmse"].report(observe("rmse", np.array([1.0, 3.0]), np.array([2.0, 3.0])).mean())
0.7071067811865476
>>> round(roc_auc(y, p), 3)
1.0

"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CLASSIFICATION", "METRICS", "REGRESSION", "MetricSpec", "observe", "roc_auc"]

#: Probabilities are clipped to keep one confident miss from being an infinite loss.
EPS = 1e-15


class MetricSpec(NamedTuple):
    """What a metric is: its task, the mean it is decided on, and which way that mean
    is better (for ``roc_auc`` the mean is log loss: lower is better)."""

    name: str
    task: str
    higher_is_better: bool
    #: The per-outcome quantity whose mean is compared (another metric's for ROC AUC).
    decided_on: str
    #: From the mean of the per-outcome values to the metric's value.
    report: Callable[[float], float]


def _same(x: float) -> float:
    return float(x)


METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec("accuracy", "classification", True, "accuracy", _same),
    "log_loss": MetricSpec("log_loss", "classification", False, "log_loss", _same),
    "roc_auc": MetricSpec("roc_auc", "classification", False, "log_loss", _same),
    "mae": MetricSpec("mae", "regression", False, "mae", _same),
    "rmse": MetricSpec("rmse", "regression", False, "mse", lambda m: math.sqrt(max(m, 0.0))),
}
#: The metric a comparison is on when none is asked for.
CLASSIFICATION, REGRESSION = "accuracy", "mae"


def spec(metric: str) -> MetricSpec:
    """The metric's spec, or a ValueError naming the ones there are."""
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}") from None


def observe(metric: str, y_true: Any, y_pred: Any = None, *, proba: Any = None) -> np.ndarray:
    """The per-outcome values whose mean the comparison of `metric` is on.

    Classification: `y_true` is 1/True for the positive class, `proba` the positive
    class's probability, `y_pred` the predicted label (``proba >= 0.5`` without it).
    Regression: `y_pred` the predicted value.
    """
    quantity = spec(metric).decided_on
    y = np.asarray(y_true, dtype=float)
    if quantity == "accuracy":
        pred = np.asarray(proba, dtype=float) >= 0.5 if y_pred is None else np.asarray(y_pred)
        return (pred.astype(float) == y).astype(float)
    if quantity == "log_loss":
        if proba is None:
            raise ValueError(f"{metric} needs probabilities (scores)")
        p = np.clip(np.asarray(proba, dtype=float), EPS, 1.0 - EPS)
        return -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    err = y - np.asarray(y_pred, dtype=float)
    return np.abs(err) if quantity == "mae" else err * err


def roc_auc(y_true: Any, score: Any) -> float:
    """Exact ROC AUC (the Mann-Whitney statistic, ties counted half); NaN with one class."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(score, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    # Average ranks over ties: each run of equal scores gets its mean rank.
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    run_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(run_rank, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
