"""What the monitor would have written during the dashboard's synthetic run
(bench/dashboard.py): a window of metrics per minute per model version, and the alerts."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.dashboard_models import CHURN_FEATURES, FRAUD_FEATURES

if TYPE_CHECKING:
    from bench.dashboard_fill import Run

DRIFTED = ("fraud", "age")  # after the drift point, age is shifted by +15 years
WINDOW_S = 60


def metric_rows(run: Run) -> pd.DataFrame:
    """What the monitor would have written: a window per minute per model version."""
    rng = np.random.default_rng(3)
    starts = pd.date_range(run.start, run.end - dt.timedelta(seconds=WINDOW_S), freq=f"{WINDOW_S}s")
    keys = [
        ("fraud", 1, FRAUD_FEATURES),
        ("fraud", 2, FRAUD_FEATURES),
        ("churn", 1, CHURN_FEATURES),
    ]
    out: dict[str, list] = {
        c: [] for c in ("model", "version", "metric", "feature", "value", "n", "window_start")
    }

    def add(model: str, version: int, metric: str, feature: str, values: Any, n: Any) -> None:
        k = len(starts)
        out["model"] += [model] * k
        out["version"] += [version] * k
        out["metric"] += [metric] * k
        out["feature"] += [feature] * k
        out["value"] += list(np.asarray(values, dtype=float))
        out["n"] += list(np.broadcast_to(np.asarray(n, dtype=np.int64), (k,)))
        out["window_start"] += list(starts)

    after = np.asarray(starts >= pd.Timestamp(run.drift_at), dtype=float)
    k = len(starts)
    for model, version, features in keys:
        n = np.full(k, 60 if version == 2 else 300)
        drifted_any = np.zeros(k)
        for feature in (*features, "__score__"):
            shifted = model == DRIFTED[0] and feature in (DRIFTED[1], "__score__")
            base = rng.uniform(0.01, 0.05, k)
            wass = base + (0.3 + rng.uniform(0, 0.1, k)) * after if shifted else base
            psi = wass * 1.5 + rng.uniform(0, 0.02, k)
            js = wass * 0.6
            pval = np.where(wass > 0.1, rng.uniform(0, 0.001, k), rng.uniform(0.1, 0.9, k))
            drift = (wass >= 0.1).astype(float)
            add(model, version, "wasserstein", feature, wass, n)
            add(model, version, "psi", feature, psi, n)
            add(model, version, "jensen_shannon", feature, js, n)
            add(model, version, "ks_p_value", feature, pval, n)
            add(model, version, "drift", feature, drift, n)
            if feature != "__score__":
                drifted_any += drift
                add(model, version, "missing_rate", feature, rng.uniform(0, 0.01, k), n)
        add(model, version, "drift_share", "", drifted_any / len(features), n)
        add(model, version, "count", "", n, n)
        add(model, version, "throughput", "", n / WINDOW_S, n)
        add(model, version, "latency_p50", "", rng.uniform(0.004, 0.006, k), n)
        add(model, version, "latency_p99", "", rng.uniform(0.03, 0.05, k), n)
        acc0 = 0.88 if version == 2 else (0.85 if model == "fraud" else 0.8)
        drop = 0.15 if (model == "fraud" and version == 1) else 0.0
        accuracy = acc0 - drop * after + rng.normal(0, 0.01, k)
        add(model, version, "accuracy", "", accuracy, n)
        add(model, version, "log_loss", "", 0.7 - accuracy * 0.5, n)
        add(model, version, "roc_auc", "", accuracy + 0.05, n)
        add(model, version, "label_delay_p50", "", np.full(k, 300.0), n)
    for model in ("fraud", "churn"):
        add(model, 0, "dead_letter_rate", "", rng.uniform(0, 0.004, k), 300)
    frame = pd.DataFrame(out)
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    frame["window_end"] = frame["window_start"] + pd.Timedelta(seconds=WINDOW_S)
    frame["ts"] = frame["window_end"]
    frame["segment"] = ""
    frame["kafka_partition"] = 0
    frame["kafka_offset"] = np.arange(len(frame), dtype=np.uint64)
    return frame


def alert_rows(run: Run) -> pd.DataFrame:
    from monitors.events import AlertEvent

    def at(t: dt.datetime, minutes: int) -> float:
        return (t + dt.timedelta(minutes=minutes)).timestamp()

    d = run.drift_at
    # Each alert's (model, version, kind, metric, feature); its events below.
    age_drift = partial(AlertEvent, "fraud", "1", "drift", "drift", "age")
    score_drift = partial(AlertEvent, "fraud", "1", "drift", "drift", "__score__")
    accuracy = partial(AlertEvent, "fraud", "1", "performance", "accuracy", None)
    latency = partial(AlertEvent, "churn", "1", "latency", "latency_p99", None)
    dead_letters = partial(AlertEvent, "fraud", "*", "quality", "dead_letter_rate", None)
    events = [
        age_drift(1.0, 0.5, "warning", "firing", "feature_drift", at(d, 2)),
        score_drift(1.0, 0.5, "warning", "firing", "score_drift", at(d, 3)),
        accuracy(0.68, 0.7, "critical", "firing", "accuracy_drop", at(d, 12)),
        latency(1.3, 1.0, "warning", "firing", "latency_p99", at(run.start, 20)),
        latency(0.6, 0.8, "warning", "resolved", "latency_p99", at(run.start, 35)),
        dead_letters(0.02, 0.01, "warning", "firing", "dead_letters", at(d, 1)),
        dead_letters(0.002, 0.005, "warning", "resolved", "dead_letters", at(d, 9)),
    ]
    rows = []
    for i, a in enumerate(events):
        rows.append(
            {
                "alert_id": a.alert_id,
                "model": a.model,
                "version": int(a.version) if a.version.isdigit() else 0,
                "kind": a.kind,
                "metric": a.metric,
                "feature": a.feature or "",
                "state": a.state,
                "value": a.value,
                "threshold": a.threshold,
                "severity": a.severity,
                "rule": a.rule,
                "ts": dt.datetime.fromtimestamp(a.ts, dt.UTC),
                "message": a.message,
                "kafka_partition": 0,
                "kafka_offset": i,
            }
        )
    return pd.DataFrame(rows)
