"""Rolling performance against direct numpy/scipy computations over the same window."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitors.performance import PerformanceMonitor, RollingPerformance


def auc(y, p):
    # Mann-Whitney form of ROC AUC, ties counted as half.
    ranks = stats.rankdata(p)
    pos = y.sum()
    neg = y.size - pos
    return (ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg)


def test_classification_matches_direct_computation_over_last_window():
    rng = np.random.default_rng(0)
    n, window = 3000, 500
    y = rng.random(n) < 0.3
    p = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.2, n), 0.01, 0.99)
    pred_t = np.arange(n, dtype=float)
    out_t = pred_t + rng.exponential(60, n)
    perf = RollingPerformance("classification", window_size=window)
    for i in range(n):
        perf.update(bool(y[i]), proba=float(p[i]), prediction_time=pred_t[i], outcome_time=out_t[i])
    got = perf.get()
    yw, pw = y[-window:], p[-window:]
    assert got["accuracy"] == pytest.approx(np.mean((pw >= 0.5) == yw), abs=1e-12)
    logloss = -np.mean(np.where(yw, np.log(pw), np.log(1 - pw)))
    assert got["log_loss"] == pytest.approx(logloss, abs=1e-9)
    assert got["roc_auc"] == pytest.approx(auc(yw, pw), abs=1e-9)
    assert got["label_delay_p50"] == pytest.approx(np.median((out_t - pred_t)[-window:]), rel=1e-9)
    assert perf.window_n == window


def test_classification_with_labels_and_single_class_window():
    perf = RollingPerformance("classification", window_size=10, pos_val="churn")
    for y, yhat in [("churn", "churn"), ("stay", "churn"), ("stay", "stay")]:
        perf.update(y, yhat)
    assert perf.get() == {"accuracy": pytest.approx(2 / 3)}
    one_class = RollingPerformance(window_size=10)
    one_class.update(True, proba=0.9)
    assert "roc_auc" not in one_class.get()  # undefined with one class


def test_regression_matches_numpy():
    rng = np.random.default_rng(1)
    y, yhat = rng.normal(size=1200), rng.normal(size=1200)
    perf = RollingPerformance("regression", window_size=1000)
    for a, b in zip(y, yhat, strict=True):
        perf.update(float(a), float(b))
    err = (y - yhat)[-1000:]
    got = perf.get()
    assert got["mae"] == pytest.approx(np.mean(np.abs(err)), abs=1e-9)
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), abs=1e-9)


def test_monitor_per_version_and_persistence():
    mon = PerformanceMonitor("regression", window_size=100)
    mon.update(("m", "1"), 1.0, 2.0)
    mon.update(("m", "2", "eu"), 1.0, 1.0)
    values = {(v.version, v.segment, v.metric): v.value for v in mon.collect(0.0, 60.0)}
    assert values == {
        ("1", None, "mae"): 1.0,
        ("1", None, "rmse"): 1.0,
        ("2", "eu", "mae"): 0.0,
        ("2", "eu", "rmse"): 0.0,
    }
    restored = PerformanceMonitor.from_bytes(mon.to_bytes())
    restored.update(("m", "1"), 1.0, 1.0)
    assert [(v.metric, v.value, v.n) for v in restored.collect(60.0, 120.0)] == [
        ("mae", 0.5, 2),
        ("rmse", pytest.approx(np.sqrt(0.5)), 2),
    ]
    with pytest.raises(ValueError):
        RollingPerformance("ranking")
