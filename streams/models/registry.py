"""The model registry on disk: immutable, numbered, checksummed model versions.

Layout under the registry directory (``settings.registry_location``)::

    <model>/.lock              fcntl lock: version allocation and state changes
    <model>/state.json         aliases, split, shadow (written by streams.models.commands)
    <model>/<version>/model.pkl
    <model>/<version>/meta.json

A version is written to a temporary directory, then renamed to its number while
the model's lock is held, so a learner and a human registering at the same time
get distinct numbers and nobody ever sees half a version. ``meta.json`` carries
the flavor, the sha256 of ``model.pkl`` (checked before every unpickle: models
are code), the features and their types, the reference profile of the training
data (the drift baseline), the parent version, metrics, who registered it, the
task and the class labels.

Two flavors share one interface, :class:`~streams.models.loaded.LoadedModel`:

* ``river``: any River estimator or pipeline; it can keep learning online.
* ``python``: any pickled object with ``predict_proba`` (classifiers) or
  ``predict`` (regressors) over a 2-D matrix, e.g. scikit-learn.

Scores and labels are described in :mod:`streams.models.loaded`.

>>> import tempfile
>>> from river import linear_model, preprocessing
>>> reg = Registry(tempfile.mkdtemp())
>>> model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
>>> rows = [{"x": float(i % 7), "y": float(i % 3)} for i in range(50)]
>>> for r in rows:
...     model.learn_one(r, r["x"] > 3)
>>> v = reg.register("demo", model, "river", reference_rows=rows, registered_by="doc")
>>> v.version, v.task, v.labels, v.positive_label
(1, 'classification', ['0', '1'], '1')
>>> loaded = reg.load("demo", 1)
>>> score, label = loaded.predict_one({"x": 6.0, "y": 1.0})
>>> label, score > 0.5
('1', True)
>>> from streams.models.features import check_features
>>> print(check_features({"x": 1.0}, v.meta))
missing feature 'y'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import os
import pickle
import platform
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from streams.models.durable import fsync_dir, sweep_stale_tmp, write_durably
from streams.models.errors import (
    ArtifactIntegrityError,
    ModelNotFoundError,
    RegistryError,
    VersionNotFoundError,
)
from streams.models.features import infer_features, normalize_features
from streams.models.loaded import LoadedModel, label_json, label_str
from streams.models.reference import fit_reference_profile
from streams.models.versions import ARTIFACT, LOCK, META, STATE, ModelVersion, default_actor

__all__ = ["FLAVORS", "MAX_REFERENCE_ROWS", "Registry"]

FLAVORS = ("river", "python")
# Reference rows beyond this are not profiled: a baseline needs a sample, not the
# whole training set, and meta.json should stay small enough to read per load.
MAX_REFERENCE_ROWS = 50_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _positive_label(labels: Sequence[str]) -> str | None:
    if not labels:
        return None
    for candidate in ("1", "true", "True", "yes"):
        if candidate in labels:
            return candidate
    return sorted(labels)[-1]


def _is_river(obj: Any) -> bool:
    try:
        from river import base
    except ImportError:  # pragma: no cover - river is a dependency
        return False
    return isinstance(obj, base.Estimator)


def _river_task(obj: Any) -> str:
    from river import base

    if isinstance(obj, base.Classifier):
        return "classification"
    if isinstance(obj, base.Regressor):
        return "regression"
    raise RegistryError(
        f"{type(obj).__name__} is a River estimator but neither a classifier nor a regressor"
    )


class Registry:
    """Model versions in a directory. Safe for concurrent writers on one filesystem.

    >>> import tempfile
    >>> from river import linear_model
    >>> reg = Registry(tempfile.mkdtemp())
    >>> reg.register("m", linear_model.LinearRegression(), "river", features=["x"]).version
    1
    >>> reg.register("m", linear_model.LinearRegression(), "river", ["x"], parent=1).version
    2
    >>> [v.version for v in reg.versions("m")], reg.models()
    ([1, 2], ['m'])
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)

    @classmethod
    def from_settings(cls, settings: Any) -> Registry:
        return cls(settings.registry_location)

    # -- paths and locking

    def model_dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(
                f"model name {name!r} is not valid: use letters, digits, '_', '-', '.' "
                "(starting with a letter or digit)"
            )
        return self.root / name

    def state_path(self, name: str) -> Path:
        return self.model_dir(name) / STATE

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[Path]:
        """Hold the model's exclusive lock (blocking); yields the model directory."""
        mdir = self.model_dir(name)
        mdir.mkdir(parents=True, exist_ok=True)
        with open(mdir / LOCK, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield mdir
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- reading

    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAME.match(p.name) and self.version_numbers_in(p)
        )

    @staticmethod
    def version_numbers_in(mdir: Path) -> list[int]:
        """The version numbers in a model directory, sorted; [] when there is none."""
        if not mdir.is_dir():
            return []
        return sorted(
            int(p.name) for p in mdir.iterdir() if p.name.isdigit() and (p / META).is_file()
        )

    def version_numbers(self, name: str) -> list[int]:
        mdir = self.model_dir(name)
        numbers = self.version_numbers_in(mdir)
        if not numbers:
            raise ModelNotFoundError(f"no model named {name!r} in registry {self.root}", model=name)
        return numbers

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        return [self.get(name, v) for v in self.version_numbers(name)]

    def latest(self, name: str) -> ModelVersion:
        return self.get(name, self.version_numbers(name)[-1])

    def get(self, name: str, version: int | str) -> ModelVersion:
        """A version's metadata (no unpickling)."""
        number = self.parse_version(version)
        vdir = self.model_dir(name) / str(number)
        try:
            meta = orjson.loads((vdir / META).read_bytes())
        except FileNotFoundError:
            self.version_numbers(name)  # raises ModelNotFoundError for an unknown model
            raise VersionNotFoundError(
                f"model {name!r} has no version {number}", model=name, version=number
            ) from None
        except orjson.JSONDecodeError as err:
            raise RegistryError(f"{vdir / META} is not valid JSON: {err}") from None
        return ModelVersion(name=name, version=number, path=vdir, meta=meta)

    @staticmethod
    def parse_version(version: int | str) -> int:
        text = str(version).lstrip("v")
        if not text.isdigit() or int(text) < 1:
            raise RegistryError(f"version {version!r} is not a positive integer")
        return int(text)

    def read_artifact(self, mv: ModelVersion) -> bytes:
        """The artifact's bytes, after checking them against the recorded sha256."""
        try:
            data = mv.artifact.read_bytes()
        except FileNotFoundError:
            raise ArtifactIntegrityError(
                f"{mv.name} v{mv.version}: artifact {mv.artifact} is missing",
                model=mv.name,
                version=mv.version,
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != mv.sha256:
            raise ArtifactIntegrityError(
                f"{mv.name} v{mv.version}: sha256 of {mv.artifact} is {digest}, "
                f"but {mv.sha256} was registered; refusing to load a changed artifact",
                model=mv.name,
                version=mv.version,
            )
        return data

    def load(self, name: str, version: int | str) -> LoadedModel:
        """Verify the artifact's sha256, then unpickle it behind :class:`LoadedModel`."""
        mv = self.get(name, version)
        data = self.read_artifact(mv)  # before unpickling: a pickle runs code
        return LoadedModel(pickle.loads(data), mv.meta)

    # -- writing

    def register(
        self,
        name: str,
        obj_or_path: Any,
        flavor: str,
        features: Any = None,
        reference_rows: Iterable[Mapping[str, Any]] | None = None,
        parent: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        registered_by: str | None = None,
        *,
        task: str | None = None,
        labels: Sequence[Any] | None = None,
        positive_label: Any = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Add a new immutable version of ``name``; returns it with its allocated number.

        ``obj_or_path`` is the model object or the path of a pickle file. ``features``
        are names, ``"name:type"`` strings or a ``{name: type}`` mapping; when
        omitted they are inferred from ``reference_rows`` (or a scikit-learn style
        ``feature_names_in_``). ``reference_rows`` are a sample of the training
        features: they give the drift baseline, the score baseline (the model's
        scores on them) and, for River classifiers, the class labels.
        """
        mdir = self.model_dir(name)
        if flavor not in FLAVORS:
            raise RegistryError(f"flavor {flavor!r} is not one of {', '.join(FLAVORS)}")
        if isinstance(obj_or_path, (str, os.PathLike)):
            path = Path(obj_or_path)
            if not path.is_file():
                raise RegistryError(f"artifact {path} does not exist")
            data = path.read_bytes()
            obj = pickle.loads(data)
        else:
            obj = obj_or_path
            data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

        if flavor == "river":
            if not _is_river(obj):
                raise RegistryError(
                    f"flavor river needs a River estimator or pipeline, got {type(obj).__name__}"
                )
            task = task or _river_task(obj)
        else:
            if not (hasattr(obj, "predict_proba") or hasattr(obj, "predict")):
                raise RegistryError(
                    f"flavor python needs an object with predict_proba or predict, "
                    f"got {type(obj).__name__}"
                )
            task = task or ("classification" if hasattr(obj, "predict_proba") else "regression")
        if task not in ("classification", "regression"):
            raise RegistryError(f"task {task!r} is not classification or regression")

        rows: list[Mapping[str, Any]] = []
        if reference_rows is not None:
            for row in reference_rows:
                rows.append(row)
                if len(rows) >= MAX_REFERENCE_ROWS:
                    break

        feature_specs = normalize_features(features)
        if not feature_specs and hasattr(obj, "feature_names_in_"):
            feature_specs = normalize_features([str(n) for n in obj.feature_names_in_])
        if not feature_specs and rows:
            feature_specs = infer_features(rows)
        if flavor == "python" and not feature_specs:
            raise RegistryError(
                "flavor python needs the feature names (their order is the matrix's column order): "
                "give features or reference rows"
            )

        label_values: list[Any] = []
        if task == "classification":
            if labels is not None:
                label_values = [label_json(v) for v in labels]
            elif flavor == "python" and hasattr(obj, "classes_"):
                label_values = [label_json(v) for v in obj.classes_]
            elif flavor == "river" and rows:
                with contextlib.suppress(Exception):
                    label_values = [label_json(v) for v in obj.predict_proba_one(dict(rows[0]))]
            label_values = sorted(set(label_values), key=label_str)
        positive = None
        if task == "classification":
            positive = (
                label_str(positive_label)
                if positive_label is not None
                else _positive_label([label_str(v) for v in label_values]) or "1"
            )

        if parent is not None:
            self.get(name, parent)  # a parent that does not exist is a mistake

        meta: dict[str, Any] = {
            "name": name,
            "version": None,
            "flavor": flavor,
            "artifact": ARTIFACT,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "task": task,
            "labels": label_values,
            "positive_label": positive,
            "features": feature_specs,
            "parent": int(parent) if parent is not None else None,
            "metrics": dict(metrics or {}),
            "registered_by": registered_by or default_actor(),
            "description": description,
            "environment": _environment(),
        }
        if rows:
            scores: list[float] | None = None
            with contextlib.suppress(Exception):
                # The model's scores on its own training sample: the baseline of
                # prediction drift. A model that cannot score them still registers.
                scores = [s for s, _ in LoadedModel(obj, meta).predict_many(rows)]
            meta["reference_profile"] = fit_reference_profile(rows, scores)
        else:
            meta["reference_profile"] = None

        mdir.mkdir(parents=True, exist_ok=True)
        sweep_stale_tmp(mdir)
        tmp = mdir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            write_durably(tmp / ARTIFACT, data)
            with self.lock(name):
                numbers = self.version_numbers_in(mdir)
                number = (numbers[-1] + 1) if numbers else 1
                # Crashed registrations can leave a numbered dir without meta.json.
                while (mdir / str(number)).exists():
                    number += 1
                meta["version"] = number
                meta["created_at"] = _utcnow()
                write_durably(tmp / META, orjson.dumps(meta, option=orjson.OPT_INDENT_2))
                os.rename(tmp, mdir / str(number))
                fsync_dir(mdir)
        except BaseException:  # also on Ctrl-C: no half-written version is left
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        vdir = mdir / str(number)
        for p in (vdir / ARTIFACT, vdir / META):
            # Read-only: a version is immutable; the sha256 catches what chmod cannot.
            with contextlib.suppress(OSError):
                p.chmod(0o444)
        return ModelVersion(name=name, version=number, path=vdir, meta=meta)


def _environment() -> dict[str, str]:
    env = {"python": platform.python_version()}
    for module in ("river", "sklearn", "numpy"):
        with contextlib.suppress(Exception):
            mod = __import__(module)
            env[module] = str(getattr(mod, "__version__", ""))
    return env
