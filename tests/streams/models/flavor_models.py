"""Small trained models of every flavor, on one synthetic data set, for the flavor tests."""

from __future__ import annotations

import numpy as np

FEATURES = ["f0", "f1", "f2", "f3"]


def data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, a binary label and a regression target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, len(FEATURES))).round(3)
    margin = X[:, 0] - 0.7 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3]
    y = (margin + rng.normal(0.0, 0.3, n) > 0).astype(int)
    return X, y, 2.0 * margin + 1.0


def rows(X: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in X]


def three_classes(X: np.ndarray) -> np.ndarray:
    return np.digitize(X[:, 0] - X[:, 1], [-0.5, 0.5])


def xgb_classifier(X: np.ndarray, y: np.ndarray):
    import xgboost

    return xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(X, y)


def lgb_classifier(X: np.ndarray, y: np.ndarray):
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1).fit(X, y)


def sklearn_pipeline(X: np.ndarray, y: np.ndarray):
    """StandardScaler | LogisticRegression fitted on a DataFrame: it knows its input names."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame(X, columns=FEATURES)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)


def onnx_from_lightgbm(model, zipmap: bool = False):
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    initial = [("input", FloatTensorType([None, len(FEATURES)]))]
    return convert_lightgbm(model, initial_types=initial, zipmap=zipmap, target_opset=15)


def onnx_from_sklearn(model, X: np.ndarray, zipmap: bool = True):
    from skl2onnx import to_onnx

    options = None if zipmap else {"zipmap": False}
    return to_onnx(model, X[:1].astype(np.float32), options=options, target_opset=17)


def pyfunc_doubler():
    """A custom MLflow pyfunc model (no flavor of lastmile's): 2 f0 - f1.

    The class is made here, not at module level, so MLflow's cloudpickle carries it by
    value: the model loads without this test helper being importable.
    """
    import mlflow

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return 2.0 * model_input["f0"].to_numpy() - model_input["f1"].to_numpy()

    return Doubler()
