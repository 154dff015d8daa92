"""The ``river`` flavor: a River estimator or pipeline, pickled; it can keep learning.

River scores dicts, not matrices: :class:`~streams.models.loaded.LoadedModel` scores it
with River's own batch methods, so this flavor only saves, loads and describes it.

>>> from river import linear_model
>>> flavor = RiverFlavor()
>>> flavor.owns(linear_model.LogisticRegression()), flavor.owns(object())
(True, False)
>>> flavor.facts(linear_model.LinearRegression()).task
'regression'
"""

from __future__ import annotations

from typing import Any, ClassVar

from streams.models.errors import RegistryError
from streams.models.flavors.base import ModelFacts
from streams.models.flavors.python import PythonFlavor

__all__ = ["RiverFlavor"]


class RiverFlavor(PythonFlavor):
    """Pickled like ``python`` (so it runs code on load), scored row by row or by River."""

    name: ClassVar[str] = "river"
    wants: ClassVar[str] = "a River estimator or pipeline"

    def owns(self, obj: Any) -> bool:
        from river import base

        return isinstance(obj, base.Estimator)

    def facts(self, obj: Any) -> ModelFacts:
        from river import base

        if isinstance(obj, base.Classifier):
            task = "classification"
        elif isinstance(obj, base.Regressor):
            task = "regression"
        else:
            raise RegistryError(
                f"{type(obj).__name__} is a River estimator but neither a classifier "
                "nor a regressor"
            )
        return ModelFacts(task=task, numeric=False)

    def wants_frame(self, model: Any) -> bool:
        return False

    def runtime_version(self) -> dict[str, str]:
        import river

        return {"river": river.__version__}
