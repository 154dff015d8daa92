"""The ``xgboost`` flavor: a Booster or scikit-learn wrapper, saved as XGBoost's own JSON.

No pickle: the artifact is ``model.json`` (``Booster.save_raw("json")``), read back by
``Booster.load_model``; a ``.json`` or ``.ubj`` model file registers as it is. The
scorer's float matrix goes straight into ``Booster.inplace_predict``.

>>> import numpy as np, xgboost
>>> X = np.arange(40.0).reshape(20, 2)
>>> model = xgboost.XGBClassifier(n_estimators=3).fit(X, X[:, 0] > 19)
>>> flavor = XGBoostFlavor()
>>> booster = flavor.load(flavor.dump(model))
>>> facts = flavor.facts(model)
>>> facts.task, facts.classes, facts.n_features
('classification', [0, 1], 2)
>>> bool(np.allclose(flavor.predictor(booster, {})(X), model.predict_proba(X)[:, 1]))
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from streams.models.flavors.base import (
    Flavor,
    ModelFacts,
    Predictor,
    booster_classes,
    loaded_module,
    require,
)
from streams.models.flavors.errors import FlavorMismatchError, UnsupportedModelError

__all__ = ["XGBoostFlavor"]

# Objectives whose prediction is not a probability nor a value a score can be.
_NO_SCORE = {
    "binary:logitraw": "margins, not probabilities",
    "binary:hinge": "0/1 labels, not probabilities",
    "multi:softmax": "class indices, not probabilities: train with multi:softprob",
}


class XGBoostFlavor(Flavor):
    """XGBoost models through their own format and ``inplace_predict``."""

    name: ClassVar[str] = "xgboost"
    wants: ClassVar[str] = "an XGBoost Booster or scikit-learn wrapper"
    artifact: ClassVar[str] = "model.json"
    extra: ClassVar[str | None] = "xgboost"

    def owns(self, obj: Any) -> bool:
        xgb = loaded_module("xgboost")
        return xgb is not None and isinstance(obj, (xgb.Booster, xgb.XGBModel))

    def sniff(self, path: Path, head: bytes) -> bool:
        # JSON and UBJ models both open an object whose first key is "learner".
        return head.lstrip()[:1] == b"{" and b"learner" in head[:64]

    def _booster(self, obj: Any) -> Any:
        xgb = require("xgboost", "xgboost")
        return obj.get_booster() if isinstance(obj, xgb.XGBModel) else obj

    def read_file(self, path: Path) -> Any:
        return self.load(path.read_bytes(), source=str(path))

    def dump(self, obj: Any) -> bytes:
        return bytes(self._booster(obj).save_raw("json"))

    def load(self, data: bytes, source: str = "the artifact") -> Any:
        xgb = require("xgboost", "xgboost")
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(data))
        except xgb.core.XGBoostError as err:
            reason = str(err).strip().splitlines()[0]
            raise FlavorMismatchError(f"{source} is not an XGBoost model: {reason}") from None
        return booster

    def facts(self, obj: Any) -> ModelFacts:
        booster = self._booster(obj)
        learner = json.loads(booster.save_config())["learner"]
        objective = learner["objective"]["name"]
        if objective in _NO_SCORE:
            raise UnsupportedModelError(
                f"XGBoost objective {objective} predicts {_NO_SCORE[objective]}"
            )
        if objective.startswith(("binary:", "multi:")):
            task = "classification"
            declared = int(learner["learner_model_param"].get("num_class") or 0)
            classes = booster_classes(obj, declared)
        else:
            task, classes = "regression", None
        names = booster.feature_names
        return ModelFacts(task, classes, list(names) if names else None, booster.num_features())

    def predictor(self, model: Any, meta: Mapping[str, Any]) -> Predictor:
        return model.inplace_predict  # binary: P(class 1) only, which LoadedModel widens

    def runtime_version(self) -> dict[str, str]:
        return {"xgboost": require("xgboost", "xgboost").__version__}
