"""Models from MLflow: a local model directory, ``runs:/`` and ``models:/`` URIs against a
local SQLite tracking store (nothing is downloaded), kept in MLflow's own flavor where
lastmile has it, else run by pyfunc, with the source in meta.json."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flavor_models import (
    FEATURES,
    data,
    lgb_classifier,
    pyfunc_doubler,
    rows,
    sklearn_pipeline,
    xgb_classifier,
)
from numpy.testing import assert_allclose

from streams.models import Registry
from streams.models.flavors import CodeRefusedError, FlavorMismatchError, SourceNotFoundError

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A SQLite tracking store in a temporary directory, with two logged, registered models."""
    root = tmp_path_factory.mktemp("mlflow")
    previous = os.environ.get("MLFLOW_DISABLE_TELEMETRY")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    # Artifacts in the temporary directory too (MLflow's default is ./mlruns).
    artifacts = (root / "artifacts").as_uri()
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("t", artifact_location=artifacts))
    X, y, _ = data()
    xgb, lgb = xgb_classifier(X, y), lgb_classifier(X, y)
    with mlflow.start_run() as run:
        mlflow.xgboost.log_model(xgb, name="model", registered_model_name="fraud-xgb")
        mlflow.lightgbm.log_model(lgb, name="lgb", registered_model_name="fraud-lgb")
    try:
        yield {"run_id": run.info.run_id, "xgb": xgb, "lgb": lgb, "X": X}
    finally:
        mlflow.set_tracking_uri(None)
        if previous is None:
            os.environ.pop("MLFLOW_DISABLE_TELEMETRY", None)
        else:
            os.environ["MLFLOW_DISABLE_TELEMETRY"] = previous


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


def scores(registry: Registry, name: str, X: np.ndarray) -> np.ndarray:
    batch = rows(X)
    loaded = registry.load(name, registry.latest(name).version)
    _, matrix = loaded.check_many(batch)
    return np.array([s for s, _ in loaded.predict_many(batch, matrix=matrix)])


def test_runs_uri_keeps_the_xgboost_flavor(tracking, registry) -> None:
    uri = f"runs:/{tracking['run_id']}/model"
    mv = registry.register("fraud", uri, features=FEATURES)
    assert (mv.flavor, mv.artifact.name, mv.meta["executes_code"]) == (
        "xgboost",
        "model.json",
        False,
    )
    source = mv.meta["mlflow"]
    assert source["uri"] == uri and source["run_id"] == tracking["run_id"]
    assert source["loaded_as"] == "xgboost" and "xgboost" in source["flavors"]
    assert source["tracking_uri"].startswith("sqlite:///")
    X = tracking["X"]
    assert_allclose(scores(registry, "fraud", X), tracking["xgb"].predict_proba(X)[:, 1], 1e-6)


def test_models_uri_keeps_the_lightgbm_flavor(tracking, registry) -> None:
    mv = registry.register("fraud", "models:/fraud-lgb/1", features=FEATURES)
    assert mv.flavor == "lightgbm" and mv.meta["mlflow"]["uri"] == "models:/fraud-lgb/1"
    X = tracking["X"]
    assert_allclose(scores(registry, "fraud", X), tracking["lgb"].predict_proba(X)[:, 1], 1e-9)


def test_local_sklearn_directory_and_its_signature(tmp_path: Path, registry) -> None:
    X, y, _ = data()
    pipeline = sklearn_pipeline(X, y)
    path = tmp_path / "churn"
    mlflow.sklearn.save_model(pipeline, str(path))
    mv = registry.register("churn", str(path))  # features: the pipeline's own names
    assert (mv.flavor, mv.feature_names) == ("sklearn", FEATURES)
    assert mv.meta["mlflow"]["uri"] == str(path) and mv.meta["executes_code"] is True
    frame = pd.DataFrame(X, columns=FEATURES)
    assert_allclose(scores(registry, "churn", X), pipeline.predict_proba(frame)[:, 1], 1e-12)


def test_other_models_run_through_pyfunc(tmp_path: Path, registry) -> None:
    from mlflow.models import infer_signature

    X, _, _ = data()
    frame = pd.DataFrame(X, columns=FEATURES)
    path = tmp_path / "doubler"
    doubler = pyfunc_doubler()
    signature = infer_signature(frame, doubler.predict(None, frame))
    mlflow.pyfunc.save_model(str(path), python_model=doubler, signature=signature)
    mv = registry.register("double", path)
    assert (mv.flavor, mv.task, mv.artifact.name) == ("mlflow", "regression", "model.mlflow.zip")
    assert mv.feature_names == FEATURES and mv.meta["executes_code"] is True
    expected = mlflow.pyfunc.load_model(str(path)).predict(frame)
    assert_allclose(scores(registry, "double", X), expected, rtol=1e-12)

    strict = Registry(tmp_path / "strict", allow_code=False)
    with pytest.raises(CodeRefusedError, match="loads as mlflow, which runs code"):
        strict.register("double", path)


def test_sources_that_do_not_resolve_are_refused(tracking, tmp_path: Path, registry) -> None:
    with pytest.raises(SourceNotFoundError, match="models:/nope/9 does not resolve"):
        registry.register("fraud", "models:/nope/9", features=FEATURES)
    with pytest.raises(SourceNotFoundError, match="does not resolve"):
        registry.register("fraud", "runs:/0123456789abcdef/model", features=FEATURES)
    with pytest.raises(SourceNotFoundError, match="no MLmodel file"):
        registry.register("fraud", str(tmp_path), "mlflow")
    with pytest.raises(FlavorMismatchError, match="declared flavor onnx, but MLflow model"):
        registry.register("fraud", "models:/fraud-xgb/1", "onnx", features=FEATURES)
    assert registry.models() == []
