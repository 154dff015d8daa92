"""XGBoost, LightGBM, ONNX and scikit-learn models in the registry: saved in their own
format, inferred or checked, and scoring exactly what their runtime predicts."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from flavor_models import (
    FEATURES,
    data,
    lgb_classifier,
    onnx_from_lightgbm,
    onnx_from_sklearn,
    rows,
    sklearn_pipeline,
    three_classes,
    xgb_classifier,
)
from numpy.testing import assert_allclose

from streams.models import LoadedModel, Registry, RegistryError
from streams.models.flavors import (
    CodeRefusedError,
    FeatureMismatchError,
    FlavorMismatchError,
    UnsupportedModelError,
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


def score(loaded: LoadedModel, X: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The scorer's path: the checked matrix, then the batch."""
    batch = rows(X)
    invalid, matrix = loaded.check_many(batch)
    assert invalid == {} and matrix is not None
    results = loaded.predict_many(batch, matrix=matrix)
    return np.array([s for s, _ in results]), [label for _, label in results]


# -- XGBoost --------------------------------------------------------------------------------


def test_xgboost_classifier_is_saved_as_json_and_scores_its_predict_proba(registry) -> None:
    X, y, _ = data()
    model = xgb_classifier(X, y)
    mv = registry.register("fraud", model, features=FEATURES, reference_rows=rows(X[:100]))
    assert (mv.flavor, mv.task, mv.labels, mv.positive_label) == (
        "xgboost",
        "classification",
        ["0", "1"],
        "1",
    )
    assert mv.artifact.name == "model.json" and mv.meta["executes_code"] is False
    assert "learner" in json.loads(mv.artifact.read_bytes())  # XGBoost's JSON, not a pickle
    assert mv.meta["reference_profile"]["score"] is not None

    scores, labels = score(registry.load("fraud", 1), X)
    assert_allclose(scores, model.predict_proba(X)[:, 1], rtol=1e-6)
    assert labels == [str(v) for v in model.predict(X)]


def test_xgboost_multiclass_booster_and_regressor(registry) -> None:
    import xgboost

    X, _, target = data()
    classes = three_classes(X)
    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=classes), num_boost_round=10)
    mv = registry.register("tri", booster, features=FEATURES)
    assert (mv.flavor, mv.labels) == ("xgboost", ["0", "1", "2"])
    probs = booster.predict(xgboost.DMatrix(X))
    scores, labels = score(registry.load("tri", mv.version), X)
    assert_allclose(scores, probs.max(axis=1), rtol=1e-6)
    assert labels == [str(i) for i in probs.argmax(axis=1)]

    regressor = xgboost.XGBRegressor(n_estimators=15).fit(X, target)
    reg = registry.register("price", regressor, features=FEATURES)
    assert reg.task == "regression"
    scores, labels = score(registry.load("price", 1), X)
    assert_allclose(scores, regressor.predict(X), rtol=1e-6)
    assert set(labels) == {""}


def test_xgboost_model_file_registers_without_a_flavor(registry, tmp_path: Path) -> None:
    X, y, _ = data()
    model = xgb_classifier(X, y)
    path = tmp_path / "fraud.ubj"
    model.save_model(path)
    mv = registry.register("fraud", str(path), features=FEATURES)
    assert mv.flavor == "xgboost" and mv.artifact.name == "model.json"
    scores, _ = score(registry.load("fraud", 1), X)
    assert_allclose(scores, model.predict_proba(X)[:, 1], rtol=1e-6)


# -- LightGBM -------------------------------------------------------------------------------


def test_lightgbm_classifier_is_saved_as_text_and_scores_its_predict_proba(registry) -> None:
    X, y, _ = data()
    model = lgb_classifier(X, y)
    mv = registry.register("fraud", model, features=FEATURES, reference_rows=rows(X[:50]))
    assert (mv.flavor, mv.task, mv.labels) == ("lightgbm", "classification", ["0", "1"])
    assert mv.artifact.name == "model.txt" and mv.artifact.read_bytes().startswith(b"tree\n")
    scores, labels = score(registry.load("fraud", 1), X)
    assert_allclose(scores, model.predict_proba(X)[:, 1], rtol=1e-9)
    assert labels == [str(v) for v in model.predict(X)]


def test_lightgbm_text_file_with_names_gives_the_features(registry, tmp_path: Path) -> None:
    import lightgbm

    X, _, target = data()
    train = lightgbm.Dataset(X, label=target, feature_name=FEATURES)
    booster = lightgbm.train({"objective": "regression", "verbose": -1}, train, 10)
    path = tmp_path / "price.txt"
    booster.save_model(str(path))
    mv = registry.register("price", path)  # no flavor, no features: both read off the file
    assert (mv.flavor, mv.task, mv.feature_names) == ("lightgbm", "regression", FEATURES)
    scores, _ = score(registry.load("price", 1), X)
    assert_allclose(scores, booster.predict(X), rtol=1e-9)


# -- scikit-learn ---------------------------------------------------------------------------


def test_sklearn_pipeline_takes_its_names_and_says_it_runs_code(registry) -> None:
    import pandas as pd

    X, y, _ = data()
    pipeline = sklearn_pipeline(X, y)
    mv = registry.register("churn", pipeline)  # features from feature_names_in_
    assert (mv.flavor, mv.feature_names, mv.labels) == ("sklearn", FEATURES, ["0", "1"])
    assert mv.meta["executes_code"] is True and mv.artifact.name == "model.pkl"
    scores, labels = score(registry.load("churn", 1), X)
    frame = pd.DataFrame(X, columns=FEATURES)
    assert_allclose(scores, pipeline.predict_proba(frame)[:, 1], rtol=1e-12)
    assert labels == [str(v) for v in pipeline.predict(frame)]


def test_sklearn_regressor_on_a_matrix_and_a_pickle_file(registry, tmp_path: Path) -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    X, _, target = data()
    model = GradientBoostingRegressor(n_estimators=20).fit(X, target)
    path = tmp_path / "price.pkl"
    path.write_bytes(pickle.dumps(model))
    mv = registry.register("price", str(path), features=FEATURES)
    assert (mv.flavor, mv.task) == ("sklearn", "regression")
    scores, _ = score(registry.load("price", 1), X)
    assert_allclose(scores, model.predict(X), rtol=1e-12)


# -- ONNX -----------------------------------------------------------------------------------


def test_onnx_from_lightgbm_scores_what_onnxruntime_gives(registry, tmp_path: Path) -> None:
    import onnxruntime

    X, y, _ = data()
    proto = onnx_from_lightgbm(lgb_classifier(X, y))
    path = tmp_path / "fraud.onnx"
    path.write_bytes(proto.SerializeToString())
    mv = registry.register("fraud", str(path), features=FEATURES)
    assert (mv.flavor, mv.labels, mv.artifact.name) == ("onnx", ["0", "1"], "model.onnx")
    assert mv.artifact.read_bytes() == path.read_bytes()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label, probs = session.run(None, {"input": X.astype(np.float32)})
    scores, labels = score(registry.load("fraud", 1), X)
    assert_allclose(scores, probs[:, 1], rtol=1e-6)
    assert labels == [str(v) for v in label]


def test_onnx_zipmap_output_from_skl2onnx(registry) -> None:
    import onnxruntime
    from sklearn.linear_model import LogisticRegression

    X, y, _ = data()
    proto = onnx_from_sklearn(LogisticRegression().fit(X, y), X, zipmap=True)
    mv = registry.register("churn", proto, features=FEATURES)
    assert mv.flavor == "onnx" and mv.meta["class_columns"] == [0, 1]
    session = onnxruntime.InferenceSession(proto.SerializeToString())
    name = session.get_inputs()[0].name
    _, maps = session.run(None, {name: X.astype(np.float32)})
    scores, _ = score(registry.load("churn", 1), X)
    assert_allclose(scores, [m[1] for m in maps], rtol=1e-6)


def _graph(inputs: list, names: list[str]):
    """y = sum of the inputs (one [batch, 1] tensor each), as a regressor graph."""
    from onnx import TensorProto, helper

    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    nodes = [helper.make_node("Sum", names, ["y"])]
    graph = helper.make_graph(nodes, "sum", inputs, [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_named_inputs_are_fed_by_name(registry) -> None:
    from onnx import TensorProto, helper

    names = ["b", "a"]  # the graph's order differs from the features'
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 1]) for n in names]
    mv = registry.register("sum", _graph(inputs, names), features=["a", "b"])
    assert mv.feature_names == ["b", "a"]  # the model's order
    loaded = registry.load("sum", 1)
    assert loaded.predict_many([{"a": 1.0, "b": 10.0}, {"a": 2.0, "b": 0.5}]) == [
        (11.0, ""),
        (2.5, ""),
    ]
    with pytest.raises(FeatureMismatchError, match=r"missing a.*unknown to it c"):
        registry.register("sum", _graph(inputs, names), features=["b", "c"])


# -- what is refused ------------------------------------------------------------------------


def test_declared_flavor_must_match_the_content(registry, tmp_path: Path) -> None:
    X, y, _ = data()
    path = tmp_path / "model.txt"
    path.write_text(lgb_classifier(X, y).booster_.model_to_string())
    with pytest.raises(FlavorMismatchError, match="declared flavor xgboost, but .* LightGBM"):
        registry.register("fraud", str(path), "xgboost", features=FEATURES)
    with pytest.raises(FlavorMismatchError, match="flavor lightgbm needs .*its flavor is xgboost"):
        registry.register("fraud", xgb_classifier(X, y), "lightgbm", features=FEATURES)
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"not a graph at all")
    with pytest.raises(FlavorMismatchError, match="is not an ONNX model"):
        registry.register("fraud", str(garbage), features=FEATURES)
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"\x00\x01")
    with pytest.raises(FlavorMismatchError, match="cannot tell the flavor"):
        registry.register("fraud", str(unknown), features=FEATURES)
    assert registry.models() == []  # nothing was written


def test_features_must_match_the_model_inputs(registry) -> None:
    X, y, _ = data()
    model = xgb_classifier(X, y)
    registry.register("fraud", model, features=FEATURES)
    with pytest.raises(FeatureMismatchError, match="3 features .* takes 4 inputs"):
        registry.register("fraud", model, features=FEATURES[:3])
    with pytest.raises(FeatureMismatchError, match="numbers only, not f3:string"):
        registry.register("fraud", model, features=[*FEATURES[:3], "f3:string"])
    with pytest.raises(FeatureMismatchError, match="missing f3, unknown to it x"):
        registry.register("churn", sklearn_pipeline(X, y), features=[*FEATURES[:3], "x"])
    assert [v.version for v in registry.versions("fraud")] == [1]  # v1 stays the only one


def test_onnx_string_input_is_refused(registry) -> None:
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("city", TensorProto.STRING, [None, 1])]
    out = helper.make_tensor_value_info("y", TensorProto.STRING, [None, 1])
    graph = helper.make_graph([helper.make_node("Identity", ["city"], ["y"])], "g", inputs, [out])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModelError, match="'city' is tensor\\(string\\)"):
        registry.register("geo", proto, features=["city"])


def test_objective_without_probabilities_is_refused(registry) -> None:
    import xgboost

    X, _, _ = data()
    params = {"objective": "multi:softmax", "num_class": 3}
    booster = xgboost.train(params, xgboost.DMatrix(X, label=three_classes(X)), 3)
    with pytest.raises(UnsupportedModelError, match="multi:softmax .* multi:softprob"):
        registry.register("tri", booster, features=FEATURES)


def test_registry_allow_code_off_refuses_pickles_not_native_formats(tmp_path: Path) -> None:
    X, y, _ = data()
    strict = Registry(tmp_path / "registry", allow_code=False)
    assert strict.register("fraud", xgb_classifier(X, y), features=FEATURES).version == 1
    with pytest.raises(CodeRefusedError, match="flavor sklearn, which runs code"):
        strict.register("churn", sklearn_pipeline(X, y))

    marker = tmp_path / "unpickled"

    class Evil:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CodeRefusedError, match="is a pickle"):
        strict.register("churn", str(evil))
    assert not marker.exists()  # refused before unpickling

    # A pickle registered while code was allowed is refused at load once it is not.
    Registry(strict.root).register("churn", sklearn_pipeline(X, y))
    with pytest.raises(CodeRefusedError, match="churn v1 is flavor sklearn"):
        strict.load("churn", 1)
    assert strict.load("fraud", 1).flavor == "xgboost"


def test_flavor_is_read_from_settings(tmp_path: Path) -> None:
    from streams.config import load_settings

    settings = load_settings(
        env={"LASTMILE_REGISTRY_ALLOW_CODE": "false"}, toml_path=None, registry=str(tmp_path)
    )
    assert Registry.from_settings(settings).allow_code is False


def test_unknown_flavor_and_object_are_refused(registry) -> None:
    with pytest.raises(RegistryError, match="flavor 'tensorflow' is not one of river, python"):
        registry.register("m", object(), "tensorflow")
    with pytest.raises(FlavorMismatchError, match="cannot tell the flavor of a builtins.object"):
        registry.register("m", object())
