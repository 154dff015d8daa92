"""Data quality read off a window's sketches."""

from __future__ import annotations

import numpy as np
import pytest

from monitors.aggregate import PredictionBatch, PredictionSketch
from monitors.profile import ReferenceProfile
from monitors.quality import (
    DeadLetterCounter,
    dead_letter_rate,
    quality_metrics,
    throughput,
)


@pytest.fixture
def reference():
    rng = np.random.default_rng(0)
    return ReferenceProfile.fit_columns(
        {
            "x": rng.uniform(0, 10, 5000),
            "c": rng.choice(["a", "b", "c"], 5000).astype(object),
        }
    )


def test_quality_metrics_of_a_window(reference):
    x = np.array([1.0, 2.0, np.nan, -5.0, 11.0, 12.0, 5.0, np.nan, 3.0, 4.0])
    c = np.array(["a", "b", None, "new", "new", "a", "c", "b", "a", None], dtype=object)
    latency = np.linspace(0.001, 0.1, 10)
    window = PredictionSketch(reference)
    window.update_many(PredictionBatch({"x": x, "c": c}, np.full(10, 0.5), latency))
    got = {(m.metric, m.feature): m.value for m in quality_metrics(window, reference, 0.0, 5.0)}
    assert got[("missing_rate", "x")] == 0.2
    assert got[("out_of_range_rate", "x")] == 3 / 8  # -5, 11, 12 outside [min, max]
    assert got[("missing_rate", "c")] == 0.2
    assert got[("unseen_category_rate", "c")] == 2 / 8
    assert got[("count", None)] == 10 and got[("throughput", None)] == 2.0
    # Exact on small windows (the sketch holds the values): inverted-CDF quantiles.
    assert got[("latency_p50", None)] == pytest.approx(
        np.quantile(latency, 0.5, method="inverted_cdf")
    )
    assert got[("latency_p99", None)] == pytest.approx(
        np.quantile(latency, 0.99, method="inverted_cdf")
    )


def test_latency_quantiles_on_large_windows_within_tolerance(reference):
    rng = np.random.default_rng(1)
    latency = rng.lognormal(-4, 1, 100_000)
    window = PredictionSketch(reference)
    for chunk in np.array_split(latency, 100):
        window.update_many(PredictionBatch({}, None, chunk))
    got = {m.metric: m.value for m in quality_metrics(window, reference, 0.0, 100.0)}
    for q in (50, 99):
        rank = np.mean(latency <= got[f"latency_p{q}"])
        assert abs(rank - q / 100) < 0.01


def test_dead_letters():
    c = DeadLetterCounter()
    c.update_many([{"stage": "decode"}, {"stage": "score"}, "decode", {}])
    d = DeadLetterCounter.from_dict(c.to_dict())
    assert c.merge(d).counts == {"decode": 4, "score": 2, "unknown": 2}
    assert dead_letter_rate(c.n, 92) == 0.08
    assert np.isnan(dead_letter_rate(0, 0)) and np.isnan(throughput(5, 1.0, 1.0))
