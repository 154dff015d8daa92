"""What ``lastmile models register`` reads: a model named by its Python path, and
reference feature rows from JSON lines or CSV."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from streams.models import RegistryError

__all__ = ["is_model_source", "read_rows", "resolve_python_path"]


def is_model_source(spec: str) -> bool:
    """Whether ``spec`` names a model file, an MLflow model directory or an MLflow URI (the
    registry reads those) rather than a python path.

    >>> is_model_source("models:/fraud/3"), is_model_source("river.linear_model:LinearRegression")
    (True, False)
    """
    from streams.models.flavors.mlflow import is_mlflow_source

    return Path(spec).is_file() or is_mlflow_source(spec)


def resolve_python_path(spec: str) -> Any:
    """The object named by ``module:attribute`` or ``path/to/file.py:attribute``.

    A class, or a callable that is not itself a model, is called without arguments
    (a factory); anything else is used as it is.

    >>> type(resolve_python_path("river.linear_model:LogisticRegression")).__name__
    'LogisticRegression'
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise RegistryError(f"{spec!r} is neither a pickle file nor module:attribute")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise RegistryError(f"python file {path} does not exist")
        # Imported under its own name with its directory on sys.path: a pickle of a
        # class defined there refers to `<stem>.<Class>`, which workers must be able
        # to import too (models are code).
        mod_name = path.stem
        loaded = sys.modules.get(mod_name)
        if loaded is not None:
            if Path(getattr(loaded, "__file__", "") or "").resolve() != path.resolve():
                raise RegistryError(
                    f"{path}: a module named {mod_name!r} is already imported; rename the file"
                )
            module = loaded
        else:
            # Imported under its own name with its directory on sys.path: a pickle of
            # a class defined there refers to `<stem>.<Class>`, which workers must be
            # able to import too (models are code).
            directory = str(path.resolve().parent)
            if directory not in sys.path:
                sys.path.insert(0, directory)
            module_spec = importlib.util.spec_from_file_location(mod_name, path)
            if module_spec is None or module_spec.loader is None:
                raise RegistryError(f"cannot import {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[mod_name] = module
            module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise RegistryError(f"cannot import module {target!r}: {err}") from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RegistryError(f"{target} has no attribute {attr!r}") from None
    is_model = any(hasattr(obj, m) for m in ("predict_one", "predict", "predict_proba"))
    if isinstance(obj, type) or (callable(obj) and not is_model):
        obj = obj()
    return obj


def read_rows(path: str) -> Iterator[dict[str, Any]]:
    """Feature rows from JSON lines (a row, or a request with ``features``) or CSV."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        import pandas as pd

        yield from pd.read_csv(p).to_dict(orient="records")
        return
    with open(p, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise RegistryError(f"{p}:{number}: not JSON: {err}") from None
            if isinstance(row, dict) and isinstance(row.get("features"), dict):
                row = row["features"]
            if not isinstance(row, dict):
                raise RegistryError(f"{p}:{number}: expected a JSON object")
            yield row
