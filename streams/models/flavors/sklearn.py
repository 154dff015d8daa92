"""The ``sklearn`` flavor: a scikit-learn estimator or Pipeline, pickled.

scikit-learn has no format of its own but the pickle, so this flavor runs code on load
like ``python`` does; it adds what scikit-learn says about the model: classifier or
regressor (:func:`sklearn.base.is_classifier`), classes, input names and count.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> flavor = SklearnFlavor()
>>> flavor.owns(model), flavor.owns(object())
(True, False)
>>> facts = flavor.facts(model)
>>> facts.task, facts.classes, facts.n_features
('classification', [0, 1], 1)
>>> predict = flavor.predictor(flavor.load(flavor.dump(model)), {"task": "classification"})
>>> bool(np.allclose(predict(X), model.predict_proba(X)))
True
"""

from __future__ import annotations

from typing import Any, ClassVar

from streams.models.flavors.base import ModelFacts, loaded_module
from streams.models.flavors.python import PythonFlavor

__all__ = ["SklearnFlavor"]


class SklearnFlavor(PythonFlavor):
    """Any scikit-learn estimator or Pipeline, through ``predict_proba`` / ``predict``."""

    name: ClassVar[str] = "sklearn"
    wants: ClassVar[str] = "a scikit-learn estimator or Pipeline"
    extra: ClassVar[str | None] = "sklearn"

    def owns(self, obj: Any) -> bool:
        base = loaded_module("sklearn.base")
        return base is not None and isinstance(obj, base.BaseEstimator)

    def facts(self, obj: Any) -> ModelFacts:
        from sklearn.base import is_classifier, is_regressor

        facts = super().facts(obj)
        task = facts.task
        if is_classifier(obj):
            task = "classification"
        elif is_regressor(obj):
            task = "regression"
        return ModelFacts(task, facts.classes, facts.feature_names, facts.n_features, False)

    def runtime_version(self) -> dict[str, str]:
        import sklearn

        return {"sklearn": sklearn.__version__}
