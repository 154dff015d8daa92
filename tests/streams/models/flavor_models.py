"""Small trained models of every flavor, on one synthetic data set, for the flavor tests;
and what the end-to-end ones share (over Kafka, over HTTP): each flavor registered and
promoted, with what its own runtime predicts, and the predictions read back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

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


class Case(NamedTuple):
    """A model to register, the flavor it is registered as, and its runtime's scores."""

    model: Any
    flavor: str
    expected: np.ndarray


def flavor_cases(X: np.ndarray, y: np.ndarray, target: np.ndarray, tmp_path: Path) -> dict:
    """Model name -> :class:`Case`, one of every flavor, each fitted on (X, y or target);
    ``expected`` is what the flavor's own runtime predicts on X (a probability of class 1,
    or the regression value)."""
    import mlflow
    import onnxruntime
    import pandas as pd
    from sklearn.ensemble import GradientBoostingRegressor

    frame = pd.DataFrame(X, columns=FEATURES)
    xgb, lgb, pipeline = xgb_classifier(X, y), lgb_classifier(X, y), sklearn_pipeline(X, y)
    gbr = GradientBoostingRegressor(n_estimators=10).fit(X, target)
    onnx_graph = onnx_from_lightgbm(lgb)
    pyfunc_dir = tmp_path / "doubler"
    mlflow.pyfunc.save_model(str(pyfunc_dir), python_model=pyfunc_doubler())
    lgb_text = tmp_path / "lgb.txt"
    lgb_text.write_text(lgb.booster_.model_to_string())

    session = onnxruntime.InferenceSession(onnx_graph.SerializeToString())
    onnx_probs = session.run(None, {"input": X.astype(np.float32)})[1]
    pyfunc_values = mlflow.pyfunc.load_model(str(pyfunc_dir)).predict(frame)
    return {
        "xgb": Case(xgb, "xgboost", xgb.predict_proba(X)[:, 1]),
        "lgb": Case(str(lgb_text), "lightgbm", lgb.predict_proba(X)[:, 1]),
        "onnx": Case(onnx_graph, "onnx", onnx_probs[:, 1]),
        "skl": Case(pipeline, "sklearn", pipeline.predict_proba(frame)[:, 1]),
        "pkl": Case(gbr, "python", gbr.predict(X)),
        "mlf": Case(str(pyfunc_dir), "mlflow", np.asarray(pyfunc_values)),
    }


def register_and_promote(control: Any, cases: dict) -> None:
    """Each case as version 1 of its name, champion; its flavor inferred, but for plain
    pickles (``python``), which are declared."""
    for name, case in cases.items():
        declared = "python" if case.flavor == "python" else None
        mv = control.register_and_publish(name, case.model, declared, features=FEATURES)
        assert mv.flavor == case.flavor, name
        control.promote(name, mv.version)


def read_predictions(settings: Any, expect: int, timeout: float = 120) -> list[dict]:
    """Every committed prediction, waiting until ``expect`` arrived (or the time is up)."""
    from confluent_kafka import Consumer, TopicPartition

    from schemas import Codec

    codec = Codec.from_settings(settings)
    consumer = Consumer(settings.consumer_config("reader", **{"isolation.level": "read_committed"}))
    topic = settings.topic_predictions
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for m in consumer.consume(5000, 0.2):
            if m.error() is None:
                out.append(codec.decode(m.value(), m.headers(), "Prediction", topic))
    consumer.close()
    return out
