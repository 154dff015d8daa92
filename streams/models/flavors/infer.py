"""Which flavor a model is: from the object, from the file's first bytes, or as declared.

A declared flavor is checked against the content, never trusted: a LightGBM text model
registered as ``xgboost`` is refused with what it is. A pickle is unpickled only when
the registry allows code (unpickling runs it); the object it holds then decides.

>>> from river import linear_model
>>> resolve(linear_model.LinearRegression(), None, allow_code=True).flavor.name
'river'
>>> try:
...     resolve(linear_model.LinearRegression(), "onnx", allow_code=True)
... except FlavorMismatchError as err:
...     print(err)
flavor onnx needs an onnx.ModelProto, got river...LinearRegression (its flavor is river)
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.models.errors import RegistryError
from streams.models.flavors.base import Flavor
from streams.models.flavors.errors import (
    CodeRefusedError,
    FlavorMismatchError,
    SourceNotFoundError,
)
from streams.models.flavors.lightgbm import LightGBMFlavor
from streams.models.flavors.mlflow import MlflowFlavor, is_mlflow_source, open_source
from streams.models.flavors.onnx import OnnxFlavor
from streams.models.flavors.python import PythonFlavor
from streams.models.flavors.river import RiverFlavor
from streams.models.flavors.sklearn import SklearnFlavor
from streams.models.flavors.xgboost import XGBoostFlavor

__all__ = ["FLAVORS", "Resolved", "get_flavor", "resolve"]

# In the order inference tries them on an object: the specific before the general (an
# XGBClassifier is a scikit-learn estimator too, and everything with predict is python's).
_ORDER: tuple[Flavor, ...] = (
    RiverFlavor(),
    XGBoostFlavor(),
    LightGBMFlavor(),
    OnnxFlavor(),
    MlflowFlavor(),
    SklearnFlavor(),
    PythonFlavor(),
)
_BY_NAME = {flavor.name: flavor for flavor in _ORDER}
#: Every flavor's name, the first two being the ones lastmile always had.
FLAVORS = ("river", "python", "sklearn", "xgboost", "lightgbm", "onnx", "mlflow")
# The flavors with a file format of their own, told apart by their first bytes.
_NATIVE_FILES = (_BY_NAME["xgboost"], _BY_NAME["lightgbm"], _BY_NAME["onnx"])
_PICKLED = ("river", "python", "sklearn")
_KIND = {
    "xgboost": "an XGBoost model",
    "lightgbm": "a LightGBM text model",
    "onnx": "an ONNX graph",
}


def get_flavor(name: str) -> Flavor:
    """The flavor of that name.

    >>> get_flavor("lightgbm").artifact
    'model.txt'
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise RegistryError(f"flavor {name!r} is not one of {', '.join(FLAVORS)}") from None


@dataclass
class Resolved:
    """A model ready to register: its flavor, the model, and where it came from."""

    flavor: Flavor
    model: Any
    #: The artifact's bytes when they are kept as given (a pickle file).
    data: bytes | None = None
    #: Provenance for meta.json (an MLflow source).
    source: dict[str, Any] | None = None
    #: Input names the source declares (an MLflow signature).
    feature_names: list[str] | None = None


def _refuse_code(flavor: Flavor, what: str, allow_code: bool) -> None:
    if flavor.executes_code and not allow_code:
        raise CodeRefusedError(
            f"{what} is flavor {flavor.name}, which runs code when loaded, and "
            "registry_allow_code is off"
        )


def _from_object(obj: Any, declared: str | None, allow_code: bool) -> Flavor:
    inferred = next((f for f in _ORDER if f.owns(obj)), None)
    if declared is not None:
        flavor = get_flavor(declared)
        if not flavor.owns(obj):
            hint = f" (its flavor is {inferred.name})" if inferred is not None else ""
            raise FlavorMismatchError(
                f"flavor {flavor.name} needs {flavor.wants}, got {type(obj).__module__}."
                f"{type(obj).__qualname__}{hint}"
            )
    elif inferred is None:
        raise FlavorMismatchError(
            f"cannot tell the flavor of a {type(obj).__module__}.{type(obj).__qualname__}: "
            "it is no River, scikit-learn, XGBoost, LightGBM or ONNX model and has no "
            "predict_proba or predict"
        )
    else:
        flavor = inferred
    _refuse_code(flavor, f"a {type(obj).__qualname__}", allow_code)
    return flavor


def _from_file(path: Path, declared: str | None, allow_code: bool) -> Resolved:
    if not path.is_file():
        raise SourceNotFoundError(f"artifact {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(256)
    if head[:1] == b"\x80":  # pickle protocol 2 and later
        if not allow_code:
            raise CodeRefusedError(
                f"{path} is a pickle, which runs code when loaded, and registry_allow_code is off"
            )
        data = path.read_bytes()
        obj = pickle.loads(data)
        flavor = _from_object(obj, declared, allow_code)
        return Resolved(flavor, obj, data if flavor.name in _PICKLED else None)
    native = next((f for f in _NATIVE_FILES if f.sniff(path, head)), None)
    if declared is not None:
        flavor = get_flavor(declared)
        if native is not None and native is not flavor:
            raise FlavorMismatchError(
                f"declared flavor {declared}, but {path} is {_KIND[native.name]}"
            )
        if flavor.name in _PICKLED:
            raise FlavorMismatchError(f"declared flavor {declared}, but {path} is not a pickle")
    elif native is None:
        raise FlavorMismatchError(
            f"cannot tell the flavor of {path}: it is no pickle, XGBoost JSON/UBJ, LightGBM "
            "text or .onnx model; give the flavor"
        )
    else:
        flavor = native
    return Resolved(flavor, flavor.read_file(path))


def resolve(obj_or_path: Any, declared: str | None, allow_code: bool) -> Resolved:
    """The flavor and model of what is being registered: an object, a file or an MLflow
    source; ``declared`` is checked against it."""
    if declared is not None:
        get_flavor(declared)  # an unknown name is refused before anything is read
    path_like = isinstance(obj_or_path, (str, os.PathLike))
    if path_like and (is_mlflow_source(obj_or_path) or declared == "mlflow"):
        found = open_source(obj_or_path, declared, allow_code)
        flavor = get_flavor(found.flavor)
        return Resolved(flavor, found.model, None, found.info, found.feature_names)
    if path_like:
        return _from_file(Path(obj_or_path), declared, allow_code)
    return Resolved(_from_object(obj_or_path, declared, allow_code), obj_or_path)
