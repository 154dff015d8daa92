"""Reference profiles: what is stored, and that it survives JSON."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from monitors.aggregate import PredictionBatch, PredictionSketch
from monitors.profile import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    quantile_edges,
)
from monitors.sketches import OTHER, CategoryCounter, NumericSketch


def rows(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        yield {
            "age": float(rng.normal(40, 10)) if i % 50 else None,
            "visits": int(rng.integers(0, 4)),
            "plan": str(rng.choice(["free", "gold", "pro"], p=[0.6, 0.3, 0.1])),
            "vip": bool(i % 7 == 0),
        }


def test_fit_numeric_continuous():
    ref = ReferenceProfile.fit(rows(), scores=np.linspace(0, 1, 2000), bins=10)
    age = ref.features["age"]
    assert isinstance(age, NumericProfile)
    assert len(age.edges) == 11 and len(age.counts) == 12
    assert age.counts[0] == age.counts[-1] == 0
    assert sum(age.counts) == age.n == 2000 - 40
    assert age.missing == 40 and age.missing_rate == pytest.approx(0.02)
    assert age.edges[0] == age.min and age.edges[-1] == age.max
    # Equal-frequency bins: each holds about a tenth.
    assert max(age.counts[1:-1]) - min(age.counts[1:-1]) <= 2
    assert len(age.sample) == 1000 and age.sample == sorted(age.sample)
    values = np.array([r["age"] for r in rows() if r["age"] is not None])
    assert age.mean == pytest.approx(values.mean()) and age.std == pytest.approx(values.std())
    assert ref.score is not None and ref.score.n == 2000 and ref.n == 2000


def test_fit_discrete_numeric_gets_one_bin_per_value():
    ref = ReferenceProfile.fit(rows(), bins=10)
    visits = ref.features["visits"]
    assert visits.edges == [0.0, 0.5, 1.5, 2.5, 3.0]
    assert sum(visits.counts) == 2000
    assert quantile_edges(np.array([7.0, 7.0])).tolist() == [7.0, 7.0]


def test_fit_categorical_and_bool():
    ref = ReferenceProfile.fit(rows())
    plan, vip = ref.features["plan"], ref.features["vip"]
    assert isinstance(plan, CategoricalProfile) and isinstance(vip, CategoricalProfile)
    assert set(plan.counts) == {"free", "gold", "pro", OTHER} and plan.counts[OTHER] == 0
    assert list(plan.counts)[0] == "free"  # most frequent first
    assert vip.counts["true"] == 286 and vip.counts["false"] == 1714


def test_top_k_folds_the_rest_into_other():
    p = CategoricalProfile.fit([f"c{i % 10}" for i in range(1000)] + ["c0"] * 5, top_k=3)
    assert p.categories == ["c0", "c1", "c2"]
    assert p.counts[OTHER] == 700 and p.n == 1005


def test_sample_is_seeded():
    x = np.random.default_rng(0).normal(size=10_000)
    a = NumericProfile.fit(x, seed=1)
    assert a.sample == NumericProfile.fit(x, seed=1).sample
    assert a.sample != NumericProfile.fit(x, seed=2).sample


def test_json_roundtrip():
    ref = ReferenceProfile.fit(rows(), scores=np.random.default_rng(1).uniform(size=2000))
    text = json.dumps(ref.to_dict())
    assert ReferenceProfile.from_dict(json.loads(text)) == ref


def test_fit_columns_matches_fit_rows():
    data = list(rows(500))
    cols = {k: [r[k] for r in data] for k in data[0]}
    assert ReferenceProfile.fit_columns(cols) == ReferenceProfile.fit(data)


def test_profile_from_window_keeps_edges_and_counts():
    ref = ReferenceProfile.fit(rows(), scores=np.linspace(0, 1, 2000))
    window = PredictionSketch(ref)
    records = [{"features": r, "score": 0.5, "latency": 0.01} for r in rows(3000, seed=5)]
    window.update_many(PredictionBatch.from_records(records, ref))
    prof = ReferenceProfile.from_window(window)
    assert prof.n == 3000
    age = prof.features["age"]
    assert age.edges == ref.features["age"].edges
    assert age.counts == window.features["age"].histogram.counts.tolist()
    assert age.sample_weights is not None and sum(age.sample_weights) == age.n == age.sample_n
    assert prof.features["plan"].counts["free"] == window.features["plan"].counts["free"]
    assert ReferenceProfile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof


def test_a_profile_is_cut_from_any_window_of_sketches_and_imports_no_aggregate():
    # from_window takes the WindowSketches protocol (features, score, n), not the class
    # PredictionSketch: monitors.profile imports monitors.aggregate nowhere (that imports it)
    class Window:
        features = {"x": NumericSketch([0.0, 1.0, 2.0]), "c": CategoryCounter()}
        score = None
        n = 2

    Window.features["x"].update_many(np.array([0.5, 1.5]))
    Window.features["c"].update("a")
    prof = ReferenceProfile.from_window(Window())
    assert prof.n == 2 and prof.score is None and prof.features["x"].n == 2
    tree = ast.parse(Path(__file__).parents[2].joinpath("monitors", "profile.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "monitors.aggregate" not in imported
