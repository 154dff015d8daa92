"""Model flavors: how each kind of model is saved in the registry, read back and scored.

- :mod:`~streams.models.flavors.base`: :class:`Flavor`, the protocol; :class:`ModelFacts`
- :mod:`~streams.models.flavors.errors`: what a flavor refuses, each a ``RegistryError``
- :mod:`~streams.models.flavors.river`: River estimators and pipelines (pickled)
- :mod:`~streams.models.flavors.python`: any pickled object with predict_proba/predict
- :mod:`~streams.models.flavors.sklearn`: scikit-learn estimators and Pipelines (pickled)
- :mod:`~streams.models.flavors.xgboost`: XGBoost, in its JSON format
- :mod:`~streams.models.flavors.lightgbm`: LightGBM, in its text format
- :mod:`~streams.models.flavors.onnx`: ONNX graphs, run by onnxruntime
- :mod:`~streams.models.flavors.mlflow`: MLflow models (their own flavor, else pyfunc)
- :mod:`~streams.models.flavors.infer`: which flavor a model or file is

Every runtime is imported on first use: the base install needs none of them.

>>> get_flavor("xgboost").executes_code, get_flavor("python").executes_code
(False, True)
"""

from streams.models.flavors.base import Flavor, ModelFacts, Predictor
from streams.models.flavors.errors import (
    CodeRefusedError,
    FeatureMismatchError,
    FlavorMismatchError,
    MissingRuntimeError,
    SourceNotFoundError,
    UnsupportedModelError,
)
from streams.models.flavors.infer import FLAVORS, Resolved, get_flavor, resolve

__all__ = [
    "FLAVORS",
    "CodeRefusedError",
    "FeatureMismatchError",
    "Flavor",
    "FlavorMismatchError",
    "MissingRuntimeError",
    "ModelFacts",
    "Predictor",
    "Resolved",
    "SourceNotFoundError",
    "UnsupportedModelError",
    "get_flavor",
    "resolve",
]
