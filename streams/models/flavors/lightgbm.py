"""The ``lightgbm`` flavor: a Booster or scikit-learn wrapper, saved as LightGBM's text model.

No pickle: the artifact is ``model.txt`` (``Booster.model_to_string()``), read back by
``Booster(model_str=...)``; a text model file registers as it is. The scorer's float
matrix goes straight into ``Booster.predict``.

>>> import numpy as np, lightgbm
>>> X = np.random.default_rng(0).normal(size=(200, 3))
>>> model = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, X[:, 0])
>>> flavor = LightGBMFlavor()
>>> booster = flavor.load(flavor.dump(model))
>>> flavor.facts(model).task, flavor.facts(model).n_features
('regression', 3)
>>> bool(np.allclose(flavor.predictor(booster, {})(X), model.predict(X)))
True
"""

from __future__ import annotations

import re
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

__all__ = ["LightGBMFlavor"]

# LightGBM names unnamed inputs Column_0, Column_1, ...: no names at all.
_DEFAULT_NAME = re.compile(r"^Column_\d+$")
_CLASSIFIERS = ("binary", "multiclass", "softmax", "multiclassova", "cross_entropy")


def _header(text: str) -> dict[str, str]:
    """The ``key=value`` lines before the first tree of a text model."""
    out: dict[str, str] = {}
    for line in text.split("\nTree=", 1)[0].splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


class LightGBMFlavor(Flavor):
    """LightGBM models through their text format and ``Booster.predict``."""

    name: ClassVar[str] = "lightgbm"
    wants: ClassVar[str] = "a LightGBM Booster or scikit-learn wrapper"
    artifact: ClassVar[str] = "model.txt"
    extra: ClassVar[str | None] = "lightgbm"

    def owns(self, obj: Any) -> bool:
        lgb = loaded_module("lightgbm")
        return lgb is not None and isinstance(obj, (lgb.Booster, lgb.LGBMModel))

    def sniff(self, path: Path, head: bytes) -> bool:
        return head.startswith(b"tree\n")

    def _booster(self, obj: Any) -> Any:
        lgb = require("lightgbm", "lightgbm")
        return obj.booster_ if isinstance(obj, lgb.LGBMModel) else obj

    def read_file(self, path: Path) -> Any:
        return self.load(path.read_bytes(), source=str(path))

    def dump(self, obj: Any) -> bytes:
        return self._booster(obj).model_to_string().encode()

    def load(self, data: bytes, source: str = "the artifact") -> Any:
        lgb = require("lightgbm", "lightgbm")
        if not data.startswith(b"tree\n"):
            raise FlavorMismatchError(f"{source} is not a LightGBM text model")
        try:
            return lgb.Booster(model_str=data.decode())
        except (lgb.basic.LightGBMError, UnicodeDecodeError) as err:
            raise FlavorMismatchError(f"{source} is not a LightGBM text model: {err}") from None

    def facts(self, obj: Any) -> ModelFacts:
        booster = self._booster(obj)
        header = _header(booster.model_to_string(num_iteration=0))
        objective = header.get("objective", "regression").split()[0]
        if objective in ("lambdarank", "rank_xendcg"):
            raise UnsupportedModelError(f"LightGBM objective {objective} ranks; it scores no rows")
        if objective in _CLASSIFIERS:
            task = "classification"
            classes = booster_classes(obj, int(header.get("num_class", "1")))
        else:
            task, classes = "regression", None
        names = booster.feature_name()
        if all(_DEFAULT_NAME.match(n) for n in names):
            names = None
        return ModelFacts(task, classes, names, booster.num_feature())

    def predictor(self, model: Any, meta: Mapping[str, Any]) -> Predictor:
        return model.predict  # binary: P(class 1) only, which LoadedModel widens

    def runtime_version(self) -> dict[str, str]:
        return {"lightgbm": require("lightgbm", "lightgbm").__version__}
