"""Rolling model performance from outcomes joined to their predictions.

Labels arrive late (a churn is known weeks after the score), so performance is a
rolling window over the last `window_size` *joined outcomes* per model version, computed
with River's metrics wrapped in ``utils.Rolling`` (``RollingROCAUC`` for AUC), and the
label delay (outcome time minus prediction time) is tracked as a rolling median.

Classification is binary: `proba` is the probability of `pos_val`; with more classes
only accuracy (and log loss on the `pos_val`-vs-rest probability, if given) applies.

State is River objects: pickle-safe, see :meth:`PerformanceMonitor.to_bytes`.

"""

from __future__ import annotations

import math
import pickle
from typing import Any, Literal

from river import metrics, stats, utils

from monitors.events import MetricValue

__all__ = ["PerformanceMonitor", "RollingPerformance"]

Task = Literal["classification", "regression"]


class RollingPerformance:
    """Rolling metrics of one model version over its last `window_size` outcomes.

    >>> perf = RollingPerformance("classification", window_size=4)
    >>> for y, p, t in [(True, 0.9, 1), (False, 0.2, 2), (True, 0.4, 3), (False, 0.1, 4)]:
    ...     perf.update(y, proba=p, prediction_time=0.0, outcome_time=float(t))
    >>> {k: round(v, 3) for k, v in perf.get().items()}
    {'accuracy': 0.75, 'log_loss': 0.338, 'roc_auc': 1.0, 'label_delay_p50': 2.5}
    >>> reg = RollingPerformance("regression", window_size=2)
    >>> for y, yhat in [(1.0, 2.0), (3.0, 3.0), (5.0, 1.0)]:
    ...     reg.update(y, yhat)
    >>> reg.get()
    {'mae': 2.0, 'rmse': 2.8284271247461903}

    """

    def __init__(
        self,
        task: Task = "classification",
        window_size: int = 1000,
        pos_val: Any = True,
        threshold: float = 0.5,
    ) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
        self.task = task
        self.window_size = window_size
        self.pos_val = pos_val
        self.threshold = threshold
        self.n = 0
        self._delays = 0
        self._probas = 0
        if task == "classification":
            self.metrics: dict[str, Any] = {
                "accuracy": utils.Rolling(metrics.Accuracy, window_size=window_size),
                "log_loss": utils.Rolling(metrics.LogLoss, window_size=window_size),
                "roc_auc": metrics.RollingROCAUC(window_size=window_size, pos_val=True),
            }
        else:
            self.metrics = {
                "mae": utils.Rolling(metrics.MAE, window_size=window_size),
                "rmse": utils.Rolling(metrics.RMSE, window_size=window_size),
            }
        self.label_delay = stats.RollingQuantile(0.5, window_size)
        # AUC is undefined until the window holds both classes (River would say 0).
        self._positive_rate = utils.Rolling(stats.Mean, window_size=window_size)

    def update(
        self,
        y_true: Any,
        y_pred: Any = None,
        *,
        proba: float | dict[Any, float] | None = None,
        prediction_time: float | None = None,
        outcome_time: float | None = None,
    ) -> None:
        """Add one joined outcome.

        Classification: `y_pred` is the predicted label; when missing it is `pos_val`
        if ``proba >= threshold``. Regression: `y_pred` is the predicted value.
        """
        self.n += 1
        if self.task == "classification":
            if isinstance(proba, dict):
                proba = proba.get(self.pos_val, 0.0)
            positive = y_true == self.pos_val
            if proba is not None:
                self._probas += 1
                self.metrics["log_loss"].update(positive, float(proba))
                self.metrics["roc_auc"].update(positive, float(proba))
                self._positive_rate.update(float(positive))
                if y_pred is None:
                    self.metrics["accuracy"].update(positive, float(proba) >= self.threshold)
                else:
                    self.metrics["accuracy"].update(y_true, y_pred)
            else:
                self.metrics["accuracy"].update(y_true, y_pred)
        else:
            self.metrics["mae"].update(float(y_true), float(y_pred))
            self.metrics["rmse"].update(float(y_true), float(y_pred))
        if prediction_time is not None and outcome_time is not None:
            self._delays += 1
            self.label_delay.update(outcome_time - prediction_time)

    def get(self) -> dict[str, float]:
        """Current values; metrics with nothing to go on are left out."""
        if self.n == 0:
            return {}
        out = {}
        for name, metric in self.metrics.items():
            if name in ("log_loss", "roc_auc") and not self._probas:
                continue
            if name == "roc_auc" and self._positive_rate.get() in (0.0, 1.0):
                continue
            out[name] = float(metric.get())
        if self._delays:
            out["label_delay_p50"] = float(self.label_delay.get())
        return out

    @property
    def window_n(self) -> int:
        """Outcomes the rolling values are over."""
        return min(self.n, self.window_size)


class PerformanceMonitor:
    """A :class:`RollingPerformance` per (model, version[, segment]), reported per window.

    The role feeds every joined outcome with :meth:`update`; when a monitor window
    closes, :meth:`collect` turns the keys that had outcomes since the last collect into
    metric values for that window.

    >>> mon = PerformanceMonitor("classification", window_size=100)
    >>> mon.update(("churn", "3"), True, proba=0.8)
    >>> [(m.metric, m.value) for m in mon.collect(0.0, 60.0)]
    [('accuracy', 1.0), ('log_loss', 0.2231435513142097)]
    >>> mon.collect(60.0, 120.0)
    []

    """

    def __init__(self, task: Task = "classification", window_size: int = 1000, **kwargs: Any):
        self.task = task
        self.window_size = window_size
        self.kwargs = kwargs
        self.trackers: dict[tuple[Any, ...], RollingPerformance] = {}
        self._dirty: set[tuple[Any, ...]] = set()

    def update(self, key: tuple[Any, ...], y_true: Any, y_pred: Any = None, **kwargs: Any) -> None:
        tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.trackers[key] = RollingPerformance(
                self.task, self.window_size, **self.kwargs
            )
        tracker.update(y_true, y_pred, **kwargs)
        self._dirty.add(key)

    def collect(self, window_start: float, window_end: float) -> list[MetricValue]:
        out = []
        for key in [k for k in self.trackers if k in self._dirty]:
            tracker = self.trackers[key]
            model, version, *rest = key
            for metric, value in tracker.get().items():
                if math.isnan(value):
                    continue
                out.append(
                    MetricValue(
                        model=model,
                        version=version,
                        window_start=window_start,
                        window_end=window_end,
                        metric=metric,
                        feature=None,
                        value=value,
                        segment=rest[0] if rest else None,
                        n=tracker.window_n,
                    )
                )
        self._dirty.clear()
        return out

    def to_bytes(self) -> bytes:
        return pickle.dumps(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformanceMonitor:
        obj = pickle.loads(data)
        if not isinstance(obj, cls):
            raise TypeError("not a pickled PerformanceMonitor")
        return obj
