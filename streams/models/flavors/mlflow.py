"""The ``mlflow`` flavor: register from an MLflow model, keeping its own flavor where lastmile
has it.

A source is a local MLflow model directory (one with an ``MLmodel`` file) or an MLflow
URI (``runs:/<run>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``),
fetched through MLflow's tracking URI (``MLFLOW_TRACKING_URI``). When the model has an
XGBoost, LightGBM, ONNX or scikit-learn flavor, that flavor's loader reads it and it is
registered as that flavor (an XGBoost model becomes XGBoost JSON, not MLflow's files);
otherwise it is MLflow's ``python_function``: the model directory is zipped into the
version folder and run through ``mlflow.pyfunc`` (which runs code on load). Either way
the source (URI, run, MLflow's flavors) goes into ``meta.json`` under ``mlflow``.

>>> is_mlflow_source("models:/fraud/3"), is_mlflow_source("model.pkl"), is_mlflow_source(3)
(True, False, False)
"""

from __future__ import annotations

import importlib
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from streams.models.flavors.base import Flavor, ModelFacts, Predictor, require
from streams.models.flavors.errors import (
    CodeRefusedError,
    FlavorMismatchError,
    SourceNotFoundError,
)

__all__ = ["MlflowFlavor", "MlflowModel", "MlflowSource", "is_mlflow_source", "open_source"]

# MLflow's flavors that are lastmile's, in the order they are preferred, and their loaders.
NATIVE = {
    "xgboost": "mlflow.xgboost",
    "lightgbm": "mlflow.lightgbm",
    "onnx": "mlflow.onnx",
    "sklearn": "mlflow.sklearn",
}
_URI = re.compile(r"^(runs|models|mlflow-artifacts|file):/")
# A fixed timestamp: the same model directory zips to the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def is_mlflow_source(obj: Any) -> bool:
    """An MLflow URI, or a directory holding an ``MLmodel`` file."""
    if not isinstance(obj, (str, os.PathLike)):
        return False
    text = os.fspath(obj)
    return bool(_URI.match(str(text))) or (Path(text) / "MLmodel").is_file()


@dataclass
class MlflowModel:
    """A pyfunc model and the zipped MLflow directory it was loaded from."""

    pyfunc: Any
    archive: bytes = field(repr=False)
    path: Path | None = None
    _tmp: Any = field(default=None, repr=False)  # keeps the unpacked directory alive


@dataclass
class MlflowSource:
    """What an MLflow source resolved to: lastmile's flavor, the model, the provenance."""

    flavor: str
    model: Any
    info: dict[str, Any]
    feature_names: list[str] | None


def _zip_dir(path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(file.relative_to(path).as_posix(), _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, file.read_bytes())
    return buffer.getvalue()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _local_copy(source: str, into: str) -> Path:
    mlflow = require("mlflow", "mlflow")
    if not _URI.match(source) or Path(source).exists():
        path = Path(source)
        if not (path / "MLmodel").is_file():
            raise SourceNotFoundError(f"{path} is not an MLflow model directory (no MLmodel file)")
        return path
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=into))
    except Exception as err:  # MlflowException, OSError, a store's own: the URI did not resolve
        raise SourceNotFoundError(
            f"MLflow URI {source} does not resolve (tracking URI "
            f"{mlflow.get_tracking_uri()}): {_first_line(err)}"
        ) from None


def open_source(source: Any, declared: str | None, allow_code: bool) -> MlflowSource:
    """Resolve an MLflow source to one of lastmile's flavors and its loaded model.

    ``declared`` is the flavor asked for (None or ``mlflow``: MLflow's own, else pyfunc).
    """
    mlflow = require("mlflow", "mlflow")
    text = os.fspath(source)
    tmp = tempfile.mkdtemp(prefix="lastmile-mlflow-")
    try:
        local = _local_copy(text, tmp)
        if not (local / "MLmodel").is_file():
            raise SourceNotFoundError(f"MLflow source {text} holds no MLmodel file")
        mlmodel = mlflow.models.Model.load(str(local / "MLmodel"))
        flavors = sorted(mlmodel.flavors)
        if declared in (None, "mlflow"):
            target = next((f for f in NATIVE if f in mlmodel.flavors), "mlflow")
        elif declared in NATIVE and declared in mlmodel.flavors:
            target = declared
        else:
            raise FlavorMismatchError(
                f"declared flavor {declared}, but MLflow model {text} has flavors "
                f"{', '.join(flavors)}"
            )
        if target in ("sklearn", "mlflow") and not allow_code:
            raise CodeRefusedError(
                f"MLflow model {text} loads as {target}, which runs code on load, and "
                "registry_allow_code is off"
            )
        if target == "mlflow":
            if "python_function" not in mlmodel.flavors:
                raise FlavorMismatchError(
                    f"MLflow model {text} has flavors {', '.join(flavors)}: none lastmile "
                    "runs (xgboost, lightgbm, onnx, sklearn, python_function)"
                )
            model: Any = MlflowFlavor().load(_zip_dir(local))
        else:
            model = importlib.import_module(NATIVE[target]).load_model(str(local))
        signature = mlmodel.signature
        names = None
        if signature is not None and signature.inputs is not None:
            names = [n for n in signature.inputs.input_names() if isinstance(n, str)] or None
        info = {
            "uri": text,
            "run_id": mlmodel.run_id,
            "model_uuid": getattr(mlmodel, "model_uuid", None),
            "artifact_path": mlmodel.artifact_path,
            "flavors": flavors,
            "loaded_as": target,
            "mlflow_version": mlmodel.mlflow_version,
            "created": mlmodel.utc_time_created,
        }
        if _URI.match(text):
            info["tracking_uri"] = mlflow.get_tracking_uri()
        return MlflowSource(target, model, info, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class MlflowFlavor(Flavor):
    """MLflow's ``python_function``: the zipped model directory, run by ``mlflow.pyfunc``.

    The score is ``predict``'s value (a regressor's, or a probability of the positive
    class); a 2-D output is read as class probabilities.
    """

    name: ClassVar[str] = "mlflow"
    wants: ClassVar[str] = "an MLflow model directory or URI"
    artifact: ClassVar[str] = "model.mlflow.zip"
    executes_code: ClassVar[bool] = True
    extra: ClassVar[str | None] = "mlflow"

    def owns(self, obj: Any) -> bool:
        return isinstance(obj, MlflowModel)

    def dump(self, obj: Any) -> bytes:
        return obj.archive

    def load(self, data: bytes) -> Any:
        mlflow = require("mlflow", "mlflow")
        tmp = tempfile.TemporaryDirectory(prefix="lastmile-pyfunc-")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(tmp.name)
        pyfunc = mlflow.pyfunc.load_model(tmp.name)
        return MlflowModel(pyfunc, data, Path(tmp.name), tmp)

    def facts(self, obj: Any) -> ModelFacts:
        signature = obj.pyfunc.metadata.signature
        names = None
        if signature is not None and signature.inputs is not None:
            names = [n for n in signature.inputs.input_names() if isinstance(n, str)] or None
        return ModelFacts(None, None, names, len(names) if names else None, numeric=False)

    def wants_frame(self, model: Any) -> bool:
        return True

    def predictor(self, model: Any, meta: Mapping[str, Any]) -> Predictor:
        predict = model.pyfunc.predict

        def run(frame: Any) -> np.ndarray:
            out = np.asarray(predict(frame), dtype=float)
            if out.ndim == 2 and out.shape[1] == 1:
                out = out.reshape(-1)
            return out

        return run

    def runtime_version(self) -> dict[str, str]:
        return {"mlflow": require("mlflow", "mlflow").__version__}
