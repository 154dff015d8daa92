"""The ``python`` flavor: any pickled object with ``predict_proba`` or ``predict``.

Loading a pickle runs whatever code it carries: the registry checks the artifact's
sha256 first, and ``registry_allow_code = false`` refuses the flavor altogether.

>>> import numpy as np
>>> from sklearn.dummy import DummyClassifier
>>> flavor = PythonFlavor()
>>> model = flavor.load(flavor.dump(DummyClassifier().fit([[0.0], [1.0]], [0, 1])))
>>> flavor.facts(model).task, PythonFlavor.executes_code
('classification', True)
>>> flavor.predictor(model, {"task": "classification"})(np.zeros((2, 1)))
array([[0.5, 0.5],
       [0.5, 0.5]])
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from streams.models.flavors.base import Flavor, ModelFacts, Predictor, plain

__all__ = ["PythonFlavor"]


class PythonFlavor(Flavor):
    """A pickle of an object scoring a 2-D matrix (a DataFrame when it knows column names)."""

    name: ClassVar[str] = "python"
    wants: ClassVar[str] = "an object with predict_proba or predict"
    executes_code: ClassVar[bool] = True

    def owns(self, obj: Any) -> bool:
        return hasattr(obj, "predict_proba") or hasattr(obj, "predict")

    def dump(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, data: bytes) -> Any:
        return pickle.loads(data)  # the caller checked the sha256: a pickle runs code

    def facts(self, obj: Any) -> ModelFacts:
        names = getattr(obj, "feature_names_in_", None)
        count = getattr(obj, "n_features_in_", None)
        classes = getattr(obj, "classes_", None)
        return ModelFacts(
            task="classification" if hasattr(obj, "predict_proba") else "regression",
            classes=plain(classes),
            feature_names=[str(n) for n in names] if names is not None else None,
            n_features=int(count) if count is not None else None,
            numeric=False,  # a pipeline may encode strings itself
        )

    def wants_frame(self, model: Any) -> bool:
        # A model fitted on a DataFrame selects columns by name (and warns on a matrix).
        return hasattr(model, "feature_names_in_")

    def predictor(self, model: Any, meta: Mapping[str, Any]) -> Predictor:
        if meta.get("task") == "regression":
            predict = model.predict
            return lambda X: np.asarray(predict(X), dtype=float).reshape(-1)
        predict_proba = model.predict_proba
        return lambda X: np.asarray(predict_proba(X), dtype=float)
