"""The flavor protocol: how one kind of model is saved, read back and scored.

A flavor turns a model object into the bytes of its artifact (in the runtime's own
format where it has one), turns those bytes back into a model, says what it can read
off the model (:class:`ModelFacts`: task, class columns, input names and count), and
gives the scorer a predictor: a function from the checked float matrix (rows in
feature order) to class probabilities (classifiers, one column per class in
``class_columns`` order) or values (regressors).

>>> import numpy as np
>>> class Doubling(Flavor):
...     name = "doubling"
...     def predictor(self, model, meta):
...         return lambda X: 2.0 * X[:, 0]
>>> Doubling().predictor(None, {})(np.array([[1.0], [3.0]]))
array([2., 6.])
>>> Doubling().owns(object()), Doubling.executes_code
(False, False)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from streams.models.flavors.errors import FlavorMismatchError, MissingRuntimeError

__all__ = [
    "Flavor",
    "ModelFacts",
    "Predictor",
    "booster_classes",
    "loaded_module",
    "plain",
    "require",
]

#: The checked matrix (or a DataFrame of it, for models that want column names) in,
#: probabilities (n x classes) or values (n) out.
Predictor = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class ModelFacts:
    """What a flavor reads off a model; None where the model does not say.

    ``classes`` are the class labels in the order of the predictor's probability
    columns. ``feature_names`` are the input names the model knows (for a model fed
    one column per input, e.g. an ONNX graph with named inputs), ``n_features`` how
    many inputs it takes.
    """

    task: str | None = None
    classes: Sequence[Any] | None = None
    feature_names: Sequence[str] | None = None
    n_features: int | None = None
    #: Inputs that must be numbers (the model takes a float matrix).
    numeric: bool = True


def plain(values: Any) -> list[Any] | None:
    """Class labels as plain Python values (numpy scalars unwrapped); None stays None.

    >>> plain(np.array([0, 1]))
    [0, 1]
    """
    if values is None:
        return None
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def booster_classes(model: Any, declared: int) -> list[Any]:
    """A gradient-boosted classifier's labels: its scikit-learn wrapper's ``classes_``,
    else 0..n-1 for the ``declared`` classes of its booster (two at least: a binary
    booster declares one, or none).

    >>> booster_classes(object(), 1), booster_classes(object(), 3)
    ([0, 1], [0, 1, 2])
    """
    classes = getattr(model, "classes_", None)
    return plain(classes) if classes is not None else list(range(max(declared, 2)))


def require(module: str, extra: str) -> ModuleType:
    """Import a flavor's runtime, or say which extra installs it.

    >>> require("json", "none").__name__
    'json'
    >>> try:
    ...     require("no_such_runtime", "xgboost")
    ... except MissingRuntimeError as err:
    ...     print(err)
    no_such_runtime is not installed: pip install 'lastmile[xgboost]'
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingRuntimeError(
            f"{module} is not installed: pip install 'lastmile[{extra}]'"
        ) from None


def loaded_module(name: str) -> ModuleType | None:
    """The module if something imported it already: an object of a runtime nobody imported
    cannot be that runtime's model, so inference never imports a runtime to find out."""
    return sys.modules.get(name)


class Flavor:
    """One kind of model. Subclasses set the class attributes and override what differs.

    ``owns`` says whether an object is this flavor's model (inference tries flavors in
    order), ``sniff`` whether a file's first bytes are this flavor's artifact.
    """

    name: ClassVar[str] = ""
    #: The artifact's file name in the version folder.
    artifact: ClassVar[str] = "model.pkl"
    #: Whether loading the artifact runs code it carries (a pickle does).
    executes_code: ClassVar[bool] = False
    #: The pip extra that installs the runtime.
    extra: ClassVar[str | None] = None
    #: What the flavor takes, for the error that refuses anything else.
    wants: ClassVar[str] = "a model"

    def owns(self, obj: Any) -> bool:
        return False

    def sniff(self, path: Path, head: bytes) -> bool:
        return False

    def read_file(self, path: Path) -> Any:
        """The model in a file of this flavor's format."""
        return self.load(path.read_bytes())

    def dump(self, obj: Any) -> bytes:
        raise NotImplementedError

    def load(self, data: bytes) -> Any:
        raise NotImplementedError

    def facts(self, obj: Any) -> ModelFacts:
        return ModelFacts()

    def wants_frame(self, model: Any) -> bool:
        """Whether the predictor takes a DataFrame with the feature names as columns."""
        return False

    def predictor(self, model: Any, meta: Mapping[str, Any]) -> Predictor:
        raise NotImplementedError

    def check_owns(self, obj: Any) -> None:
        """Refuse an object that is not this flavor's model."""
        if not self.owns(obj):
            raise FlavorMismatchError(
                f"flavor {self.name} needs {self.wants}, got {type(obj).__module__}."
                f"{type(obj).__qualname__}"
            )

    def runtime_version(self) -> dict[str, str]:
        """The runtime's version, recorded in meta.json's environment."""
        return {}
