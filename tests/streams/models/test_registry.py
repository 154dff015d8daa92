"""The model registry: versions on disk, integrity, and one scoring interface for both flavors."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import linear_model, preprocessing, tree

from streams.models import (
    ArtifactIntegrityError,
    FeatureProblem,
    LoadedModel,
    ModelNotFoundError,
    Registry,
    RegistryError,
    VersionNotFoundError,
    check_features,
    label_str,
)

ROOT = Path(__file__).resolve().parents[3]


def rows_and_labels(n: int = 400, seed: int = 0) -> tuple[list[dict], list[bool]]:
    rng = np.random.default_rng(seed)
    rows = [
        {"a": float(rng.normal()), "b": float(rng.uniform(0, 10)), "n": int(rng.integers(0, 5))}
        for _ in range(n)
    ]
    labels = [r["a"] + 0.2 * r["b"] - 1.0 > 0 for r in rows]
    return rows, labels


def river_model(rows: list[dict], labels: list[bool]) -> object:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in zip(rows, labels, strict=True):
        model.learn_one(x, y)
    return model


class TinyLogit:
    """A scikit-learn-shaped classifier: predict_proba over a matrix, classes_."""

    def __init__(self, weights: list[float], bias: float) -> None:
        self.w = np.asarray(weights)
        self.b = bias
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-(np.asarray(X, dtype=float) @ self.w + self.b)))
        return np.column_stack([1 - p, p])


class TinyRegressor:
    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float).sum(axis=1)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


def test_river_round_trip(registry: Registry) -> None:
    rows, labels = rows_and_labels()
    model = river_model(rows, labels)
    mv = registry.register(
        "fraud", model, "river", reference_rows=rows, metrics={"auc": 0.9}, registered_by="t@h"
    )
    assert mv.version == 1
    meta = registry.get("fraud", 1).meta
    assert meta["flavor"] == "river" and meta["task"] == "classification"
    assert meta["labels"] == [False, True] and meta["positive_label"] == "1"
    assert [f["name"] for f in meta["features"]] == ["a", "b", "n"]
    assert {f["type"] for f in meta["features"]} == {"number"}
    assert meta["reference_profile"]["n"] == len(rows)
    assert meta["reference_profile"]["score"] is not None  # the model's scores: a baseline
    assert meta["metrics"] == {"auc": 0.9} and meta["registered_by"] == "t@h"
    assert meta["parent"] is None and meta["created_at"].endswith("Z")
    assert len(meta["sha256"]) == 64

    loaded = registry.load("fraud", 1)
    for row in rows[:50]:
        score, label = loaded.predict_one(row)
        assert score == pytest.approx(model.predict_proba_one(row)[True])
        assert label == label_str(model.predict_one(row))


def test_python_round_trip(registry: Registry) -> None:
    model = TinyLogit([1.0, -0.5], 0.1)
    mv = registry.register("churn", model, "python", features=["a", "b"])
    assert (mv.task, mv.labels, mv.positive_label) == ("classification", ["0", "1"], "1")
    loaded = registry.load("churn", mv.version)
    score, label = loaded.predict_one({"a": 2.0, "b": 0.0})
    assert score == pytest.approx(1 / (1 + np.exp(-2.1)))
    assert label == "1"
    with pytest.raises(RegistryError, match="does not learn online"):
        loaded.learn_one({"a": 1.0, "b": 1.0}, 1)

    reg = registry.register("price", TinyRegressor(), "python", features=["a", "b"])
    assert reg.task == "regression"
    assert registry.load("price", 1).predict_many([{"a": 1, "b": 2}]) == [(3.0, "")]


def test_python_flavor_needs_features(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="feature names"):
        registry.register("churn", TinyLogit([1.0], 0.0), "python")


def test_register_from_pickle_file(registry: Registry, tmp_path: Path) -> None:
    rows, labels = rows_and_labels(100)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(river_model(rows, labels)))
    mv = registry.register("fraud", str(path), "river", features=["a", "b", "n"])
    assert mv.artifact.read_bytes() == path.read_bytes()
    with pytest.raises(RegistryError, match="needs a River estimator"):
        registry.register("fraud", TinyRegressor(), "river")


def test_versions_numbered_and_immutable(registry: Registry) -> None:
    rows, labels = rows_and_labels(100)
    model = river_model(rows, labels)
    first = registry.register("fraud", model, "river", features=["a", "b", "n"])
    meta_before = (first.path / "meta.json").read_bytes()
    for _ in range(2):
        model.learn_one(rows[0], labels[0])
        registry.register("fraud", model, "river", features=["a", "b", "n"], parent=1)
    assert [v.version for v in registry.versions("fraud")] == [1, 2, 3]
    assert registry.models() == ["fraud"]
    assert (first.path / "meta.json").read_bytes() == meta_before
    mode = (first.path / "model.pkl").stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert registry.get("fraud", 3).parent == 1
    with pytest.raises(VersionNotFoundError, match="no version 9"):
        registry.get("fraud", 9)
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        registry.get("nope", 1)
    with pytest.raises(VersionNotFoundError):
        registry.register("fraud", model, "river", parent=7)
    with pytest.raises(RegistryError, match="not valid"):
        registry.register("../evil", model, "river")


def test_concurrent_registration_from_two_processes(registry: Registry) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from river import linear_model
        from streams.models import Registry
        reg = Registry(sys.argv[1])
        start = float(sys.argv[2])
        while time.time() < start:
            time.sleep(0.001)
        print(" ".join(
            str(reg.register("m", linear_model.LinearRegression(), "river", features=["x"],
                             registered_by=sys.argv[3]).version)
            for _ in range(6)
        ))
        """
    )
    start = time.time() + 2.0  # both interpreters are up and importing by then
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(registry.root), str(start), f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    got = [int(v) for out, _ in outs for v in out.split()]
    assert sorted(got) == list(range(1, 13))
    by = {v.version: v.registered_by for v in registry.versions("m")}
    assert set(by.values()) == {"p0", "p1"}
    assert not list(registry.root.joinpath("m").glob(".tmp-*"))


def test_sha256_mismatch_refused_before_unpickling(registry: Registry, tmp_path: Path) -> None:
    mv = registry.register("fraud", linear_model.LinearRegression(), "river", features=["x"])
    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    mv.artifact.chmod(0o644)
    mv.artifact.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ArtifactIntegrityError) as err:
        registry.load("fraud", 1)
    message = str(err.value)
    assert "fraud v1" in message and "sha256" in message and "refusing" in message
    assert mv.sha256 in message
    assert not marker.exists()  # the pickle never ran


def test_predict_many_equals_predict_one(registry: Registry) -> None:
    rows, labels = rows_and_labels(600)
    registry.register("vec", river_model(rows, labels), "river", reference_rows=rows)
    vec = registry.load("vec", 1)
    many = vec.predict_many(rows)
    assert vec.vectorised  # StandardScaler | LogisticRegression has predict_proba_many
    one = [vec.predict_one(r) for r in rows]
    assert [label for _, label in many] == [label for _, label in one]
    np.testing.assert_allclose([s for s, _ in many], [s for s, _ in one], rtol=1e-9, atol=1e-12)
    # A small batch (low rates) goes row by row: the very same answers.
    assert vec.predict_many(rows[:10]) == one[:10]
    # Rows the scorer checked (all-number features, ints among them) go as one float
    # matrix: the same answers as the frame built row by row.
    invalid, matrix = vec.check_many(rows)
    assert invalid == {} and matrix is not None
    as_matrix = vec.predict_many(rows, matrix=matrix)
    assert [label for _, label in as_matrix] == [label for _, label in many]
    np.testing.assert_allclose([s for s, _ in as_matrix], [s for s, _ in many], rtol=1e-12)

    # A Hoeffding tree has no predict_proba_many: per-event fallback, same answers.
    ht = tree.HoeffdingTreeClassifier(grace_period=50)
    for x, y in zip(rows, labels, strict=True):
        ht.learn_one(x, y)
    registry.register("tree", ht, "river", reference_rows=rows)
    slow = registry.load("tree", 1)
    assert slow.predict_many(rows) == [slow.predict_one(r) for r in rows]
    assert not slow.vectorised

    registry.register("py", TinyLogit([1.0, 0.2, 0.0], -1.0), "python", features=["a", "b", "n"])
    py = registry.load("py", 1)
    np.testing.assert_allclose(
        [s for s, _ in py.predict_many(rows)], [py.predict_one(r)[0] for r in rows], rtol=1e-12
    )


def test_predict_many_returns_errors_per_row(registry: Registry) -> None:
    rows, labels = rows_and_labels(50)
    registry.register("vec", river_model(rows, labels), "river", reference_rows=rows)
    loaded = registry.load("vec", 1)
    batch = [rows[0], {"a": "oops", "b": 1.0, "n": 1}, rows[1]]
    out = loaded.predict_many(batch, return_errors=True)
    assert out[0] == loaded.predict_one(rows[0]) and out[2] == loaded.predict_one(rows[1])
    assert isinstance(out[1], Exception)
    with pytest.raises(Exception):  # noqa: B017 - whatever the model raises
        loaded.predict_many(batch)


def test_learn_one_accepts_outcome_labels(registry: Registry) -> None:
    rows, labels = rows_and_labels(200)
    registry.register("fraud", river_model(rows, labels), "river", reference_rows=rows)
    loaded = registry.load("fraud", 1)
    assert loaded.can_learn
    before = loaded.predict_one(rows[0])[0]
    for _ in range(30):
        loaded.learn_one(rows[0], "0")  # outcomes arrive as strings
    assert loaded.predict_one(rows[0])[0] < before
    assert loaded.coerce_label("1") is True and loaded.coerce_label(0) is False


def test_regression_river(registry: Registry) -> None:
    model = linear_model.LinearRegression()
    for i in range(200):
        model.learn_one({"x": float(i % 10)}, 2.0 * (i % 10))
    registry.register("price", model, "river", features=["x"])
    loaded = registry.load("price", 1)
    assert loaded.task == "regression"
    rows = [{"x": float(i)} for i in range(10)]
    many = loaded.predict_many(rows)
    assert all(label == "" for _, label in many)
    np.testing.assert_allclose([s for s, _ in many], [loaded.predict_one(r)[0] for r in rows])
    loaded.learn_one({"x": 1.0}, "2.0")


def test_check_features() -> None:
    meta = {
        "features": [
            {"name": "age", "type": "number"},
            {"name": "city", "type": "string"},
            {"name": "vip", "type": "bool"},
        ]
    }
    ok = {"age": 3, "city": "Oslo", "vip": False, "extra": [1]}

    def problem(features: object, meta: dict = meta) -> tuple[str, str | None, str]:
        found = check_features(features, meta)
        assert isinstance(found, FeatureProblem)
        return found.kind, found.feature, found.reason

    assert check_features(ok, meta) is None
    assert check_features({**ok, "age": 3.5}, meta) is None
    missing, typed = "feature_missing", "feature_type"
    assert problem({"city": "Oslo", "vip": True}) == (missing, "age", "missing feature 'age'")
    assert problem({**ok, "age": None}) == (missing, "age", "feature 'age' is null")
    assert problem({**ok, "age": True}) == (
        typed,
        "age",
        "feature 'age' should be a number, got bool",
    )
    assert problem({**ok, "city": 1}) == (
        typed,
        "city",
        "feature 'city' should be a string, got int",
    )
    assert problem({**ok, "vip": 1}) == (typed, "vip", "feature 'vip' should be a bool, got int")
    assert problem({**ok, "age": float("nan")}) == (
        typed,
        "age",
        "feature 'age' is not a finite number",
    )
    assert problem([1, 2]) == (typed, None, "features should be an object, got list")
    assert check_features({}, {"features": []}) is None


def test_a_problem_is_filed_by_what_went_wrong_not_by_the_feature_name() -> None:
    # The scorer once picked the dead letter's kind by looking for "missing" or "null" in
    # the reason: a string given for a number feature named null_ratio was "missing".
    meta = {"features": [{"name": "null_ratio", "type": "number"}, {"name": "x", "type": "number"}]}
    found = check_features({"null_ratio": "high", "x": 1.0}, meta)
    assert found == FeatureProblem(
        "feature_type", "null_ratio", "feature 'null_ratio' should be a number, got str"
    )
    loaded = LoadedModel(None, {"flavor": "river", **meta})
    assert loaded.check_features({"null_ratio": "high", "x": 1.0}) == found
    rows = [{"null_ratio": 0.5, "x": 1.0}, {"null_ratio": "high", "x": 1.0}, {"x": 1.0}]
    invalid, matrix = loaded.check_many(rows)
    assert invalid == {
        1: found,
        2: FeatureProblem("feature_missing", "null_ratio", "missing feature 'null_ratio'"),
    }
    np.testing.assert_array_equal(matrix, [[0.5, 1.0]])


feature_values = (
    st.floats()
    | st.integers(-(2**70), 2**70)
    | st.booleans()
    | st.none()
    | st.text(max_size=3)
    | st.sampled_from([1e308, -1e308, float("inf")])
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.dictionaries(st.sampled_from(["a", "b", "c", "other"]), feature_values),
    width=st.integers(1, 3),
)
def test_a_loaded_model_checks_features_as_check_features_does(values, width) -> None:
    # The version's compiled check (a fast path for all-number features) says the same
    # as the plain function, for every mix of present, absent and odd values.
    meta = {"flavor": "river", "features": [{"name": n, "type": "number"} for n in "abc"[:width]]}
    assert LoadedModel(None, meta).check_features(values) == check_features(values, meta)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c", "other"]), feature_values)
        | st.sampled_from([{"a": 1.0, "b": 2, "c": -3.5}, [1.0], "a"]),
        max_size=8,
    ),
    width=st.integers(1, 3),
)
def test_a_loaded_model_checks_a_batch_as_check_features_does_each_row(rows, width) -> None:
    # The batch check (all rows at once in C) names exactly the rows check_features
    # refuses, with its reasons: a bad row among good ones is never let through. The
    # rows that pass come as a float matrix, in their order, columns in feature order.
    names = list("abc"[:width])
    meta = {"flavor": "river", "features": [{"name": n, "type": "number"} for n in names]}
    expected = {i: r for i, row in enumerate(rows) if (r := check_features(row, meta)) is not None}
    invalid, matrix = LoadedModel(None, meta).check_many(rows)
    assert invalid == expected
    passed = [row for i, row in enumerate(rows) if i not in expected]
    assert (matrix is not None) == (passed != [])
    if matrix is not None:
        np.testing.assert_array_equal(matrix, [[float(row[n]) for n in names] for row in passed])


def test_a_batch_check_gives_no_matrix_for_an_int_beyond_any_double() -> None:
    # check_features lets a huge int through; a float matrix cannot hold it, so the rows
    # go to the model as they are instead of failing the batch.
    lm = LoadedModel(None, {"flavor": "river", "features": [{"name": "a", "type": "number"}]})
    assert lm.check_many([{"a": 10**400}, {"a": "x"}]) == (
        {1: FeatureProblem("feature_type", "a", "feature 'a' should be a number, got str")},
        None,
    )


def test_loaded_model_positive_class_and_labels() -> None:
    class Fixed:
        classes_ = np.array(["no", "yes"])

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.tile([0.3, 0.7], (len(X), 1))

    lm = LoadedModel(
        Fixed(),
        {
            "flavor": "python",
            "task": "classification",
            "labels": ["no", "yes"],
            "positive_label": "yes",
            "features": [{"name": "x", "type": "number"}],
        },
    )
    assert lm.predict_many([{"x": 1}, {"x": 2}]) == [(0.7, "yes"), (0.7, "yes")]
    lm.positive_label = "no"
    assert lm.predict_one({"x": 1}) == (pytest.approx(0.3), "yes")
