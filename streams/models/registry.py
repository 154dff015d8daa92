"""The model registry on disk: immutable, numbered, checksummed model versions.

Layout under the registry directory (``settings.registry_location``)::

    <model>/.lock              fcntl lock: version allocation and state changes
    <model>/state.json         aliases, split, shadow (written by streams.models.control)
    <model>/<version>/model.pkl
    <model>/<version>/meta.json

A version is written to a temporary directory, then renamed to its number while
the model's lock is held, so a learner and a human registering at the same time
get distinct numbers and nobody ever sees half a version. ``meta.json`` carries
the flavor, the sha256 of ``model.pkl`` (checked before every unpickle: models
are code), the features and their types, the reference profile of the training
data (the drift baseline), the parent version, metrics, who registered it, the
task and the class labels.

Two flavors share one interface, :class:`LoadedModel`:

* ``river``: any River estimator or pipeline; it can keep learning online.
* ``python``: any pickled object with ``predict_proba`` (classifiers) or
  ``predict`` (regressors) over a 2-D matrix, e.g. scikit-learn.

Scores and labels. A prediction is ``(score, label)``. For a binary classifier
the score is the probability of the *positive* class, which is the label whose
string form (:func:`label_str`) is ``"1"`` (so ``True`` and ``1``), else
``"true"`` or ``"yes"``, else the last label in sorted order; ``positive_label``
at registration overrides it. For a multi-class classifier the score is the
probability of the predicted class. For a regressor the score is the predicted
value and the label is ``""``. Labels are strings: booleans become ``"1"``/``"0"``
and integral numbers lose their ``.0``, so River's ``True`` and an outcome's
``1`` compare equal.

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
>>> check_features({"x": 1.0}, v.meta)
"missing feature 'y'"
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import getpass
import hashlib
import math
import os
import pickle
import platform
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ARTIFACT = "model.pkl"
META = "meta.json"
STATE = "state.json"
LOCK = ".lock"
FLAVORS = ("river", "python")
FEATURE_TYPES = ("number", "string", "bool")
# Reference rows beyond this are not profiled: a baseline needs a sample, not the
# whole training set, and meta.json should stay small enough to read per load.
MAX_REFERENCE_ROWS = 50_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RegistryError(Exception):
    """Anything the registry refuses; the message is one line a user can act on."""


class ModelNotFoundError(RegistryError):
    """No model of that name in the registry."""


class VersionNotFoundError(RegistryError):
    """The model exists but not that version."""


class ArtifactIntegrityError(RegistryError):
    """An artifact's sha256 differs from the one recorded when it was registered."""


# -- labels and features ---------------------------------------------------------------


def label_str(value: Any) -> str:
    """The canonical string of a class label: ``True -> "1"``, ``2.0 -> "2"``, ``"a" -> "a"``.

    >>> [label_str(v) for v in (True, False, 1, 1.0, 2.5, "yes", None)]
    ['1', '0', '1', '1', '2.5', 'yes', '']
    """
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_value(value: Any) -> Any:
    """A label as a JSON-representable value (numpy scalars unwrapped)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def feature_type(value: Any) -> str | None:
    """``number``, ``string`` or ``bool`` for a feature value; None for null."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return "string"


def normalize_features(features: Any) -> list[dict[str, str]]:
    """Features as ``[{"name": ..., "type": ...}]`` from the forms people write.

    Accepts names (``["a", "b"]``, type ``number``), ``"name:type"`` strings, a
    ``{name: type}`` mapping, or the normalized form itself.

    >>> normalize_features(["age", "city:string"])
    [{'name': 'age', 'type': 'number'}, {'name': 'city', 'type': 'string'}]
    """
    if features is None:
        return []
    if isinstance(features, str):
        features = [f for f in features.split(",") if f.strip()]
    if isinstance(features, Mapping):
        items: Iterable[Any] = [{"name": k, "type": v} for k, v in features.items()]
    else:
        items = features
    out = []
    for item in items:
        if isinstance(item, Mapping):
            name, ftype = str(item["name"]), str(item.get("type", "number"))
        else:
            name, _, ftype = str(item).strip().partition(":")
            ftype = ftype or "number"
        if ftype not in FEATURE_TYPES:
            raise RegistryError(
                f"feature {name!r}: type {ftype!r} is not one of {', '.join(FEATURE_TYPES)}"
            )
        out.append({"name": name, "type": ftype})
    names = [f["name"] for f in out]
    if len(set(names)) != len(names):
        raise RegistryError(f"duplicate feature names in {names}")
    return out


def infer_features(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Feature names (in first-seen order) and the type of their first non-null value."""
    types: dict[str, str | None] = {}
    for row in rows:
        for name, value in row.items():
            if types.get(name) is None:
                types[name] = feature_type(value)
    return [{"name": str(n), "type": t or "number"} for n, t in types.items()]


_NUMBER_TYPES = frozenset((int, float))
_DICT_TYPE = frozenset((dict,))


def check_features(features: Any, meta: Any) -> str | None:
    """Why a request's features do not fit a model version, or None when they do.

    ``meta`` is a version's ``meta.json`` dict, a :class:`ModelVersion` or a
    :class:`LoadedModel`. Missing and null features are refused (River and most
    models raise on them rather than impute); extra features are ignored. A
    version registered without a feature list accepts any mapping.

    >>> meta = {"features": [{"name": "age", "type": "number"}]}
    >>> check_features({"age": 3}, meta) is None
    True
    >>> check_features({"age": "3"}, meta)
    "feature 'age' should be a number, got str"
    """
    if not isinstance(features, Mapping):
        return f"features should be an object, got {type(features).__name__}"
    if not isinstance(meta, Mapping):
        meta = meta.meta
    for spec in meta.get("features") or ():
        name = spec["name"]
        if name not in features:
            return f"missing feature {name!r}"
        value = features[name]
        if value is None:
            return f"feature {name!r} is null"
        expected = spec["type"]
        if expected == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(value, float) and not math.isfinite(value):
                return f"feature {name!r} is not a finite number"
        elif expected == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            return f"feature {name!r} should be a {expected}, got {type(value).__name__}"
    return None


# -- reference profile (drift baseline) ----------------------------------------------------


def fit_reference_profile(
    rows: Sequence[Mapping[str, Any]], scores: Sequence[float] | None = None, bins: int = 10
) -> dict[str, Any]:
    """The reference profile stored in ``meta.json``: monitors.profile when present.

    The one place that knows which profiler is used, so swapping it is one line.
    """
    try:
        from monitors.profile import ReferenceProfile
    except ImportError:
        return _minimal_profile(rows, scores, bins)
    return ReferenceProfile.fit(rows, scores=scores, bins=bins).to_dict()


def _numeric_summary(values: np.ndarray, missing: int, bins: int) -> dict[str, Any]:
    if values.size == 0:
        return {"type": "number", "count": 0, "missing": missing}
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    counts = np.histogram(values, bins=edges)[0] if edges.size > 1 else np.array([values.size])
    return {
        "type": "number",
        "count": int(values.size),
        "missing": missing,
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "edges": [float(e) for e in edges],
        "fractions": [float(c) / values.size for c in counts],
    }


def _minimal_profile(
    rows: Sequence[Mapping[str, Any]], scores: Sequence[float] | None, bins: int
) -> dict[str, Any]:
    """A small stand-in for monitors.profile: quantile bins per number, frequencies per string."""
    out: dict[str, Any] = {"kind": "lastmile.minimal-profile/1", "rows": len(rows), "features": {}}
    for spec in infer_features(rows):
        name = spec["name"]
        raw = [row.get(name) for row in rows]
        present = [v for v in raw if v is not None]
        missing = len(raw) - len(present)
        if spec["type"] == "number":
            values = np.asarray([float(v) for v in present], dtype=float)
            out["features"][name] = _numeric_summary(values, missing, bins)
        else:
            counts: dict[str, int] = {}
            for v in present:
                counts[str(v)] = counts.get(str(v), 0) + 1
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:50]
            out["features"][name] = {
                "type": spec["type"],
                "count": len(present),
                "missing": missing,
                "frequencies": {k: c / max(len(present), 1) for k, c in top},
            }
    if scores is not None:
        values = np.asarray([s for s in scores if s is not None and math.isfinite(s)], dtype=float)
        out["score"] = _numeric_summary(values, len(scores) - values.size, bins)
    return out


# -- versions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    """One registered version: its ``meta.json`` and where its artifact is."""

    name: str
    version: int
    path: Path  # the version's directory
    meta: dict[str, Any] = field(repr=False)

    @property
    def artifact(self) -> Path:
        return self.path / self.meta.get("artifact", ARTIFACT)

    @property
    def flavor(self) -> str:
        return self.meta["flavor"]

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def labels(self) -> list[str]:
        return [label_str(v) for v in self.meta.get("labels") or []]

    @property
    def positive_label(self) -> str | None:
        return self.meta.get("positive_label")

    @property
    def features(self) -> list[dict[str, str]]:
        return self.meta.get("features") or []

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    @property
    def parent(self) -> int | None:
        return self.meta.get("parent")

    @property
    def created_at(self) -> str:
        return self.meta["created_at"]

    @property
    def registered_by(self) -> str:
        return self.meta.get("registered_by", "")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics") or {}

    @property
    def reference_profile(self) -> dict[str, Any] | None:
        return self.meta.get("reference_profile")


def default_actor() -> str:
    """``user@host``: who registers or changes a model from this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


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
            if p.is_dir() and _NAME.match(p.name) and self._version_numbers(p)
        )

    @staticmethod
    def _version_numbers(mdir: Path) -> list[int]:
        if not mdir.is_dir():
            return []
        return sorted(
            int(p.name) for p in mdir.iterdir() if p.name.isdigit() and (p / META).is_file()
        )

    def version_numbers(self, name: str) -> list[int]:
        mdir = self.model_dir(name)
        numbers = self._version_numbers(mdir)
        if not numbers:
            raise ModelNotFoundError(f"no model named {name!r} in registry {self.root}")
        return numbers

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        return [self.get(name, v) for v in self.version_numbers(name)]

    def latest(self, name: str) -> ModelVersion:
        return self.get(name, self.version_numbers(name)[-1])

    def get(self, name: str, version: int | str) -> ModelVersion:
        """A version's metadata (no unpickling)."""
        number = self._parse_version(version)
        vdir = self.model_dir(name) / str(number)
        try:
            meta = orjson.loads((vdir / META).read_bytes())
        except FileNotFoundError:
            self.version_numbers(name)  # raises ModelNotFoundError for an unknown model
            raise VersionNotFoundError(f"model {name!r} has no version {number}") from None
        except orjson.JSONDecodeError as err:
            raise RegistryError(f"{vdir / META} is not valid JSON: {err}") from None
        return ModelVersion(name=name, version=number, path=vdir, meta=meta)

    @staticmethod
    def _parse_version(version: int | str) -> int:
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
                f"{mv.name} v{mv.version}: artifact {mv.artifact} is missing"
            ) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != mv.sha256:
            raise ArtifactIntegrityError(
                f"{mv.name} v{mv.version}: sha256 of {mv.artifact} is {digest}, "
                f"but {mv.sha256} was registered; refusing to load a changed artifact"
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
                label_values = [_json_value(v) for v in labels]
            elif flavor == "python" and hasattr(obj, "classes_"):
                label_values = [_json_value(v) for v in obj.classes_]
            elif flavor == "river" and rows:
                with contextlib.suppress(Exception):
                    label_values = [_json_value(v) for v in obj.predict_proba_one(dict(rows[0]))]
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
        _sweep_stale_tmp(mdir)
        tmp = mdir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _write_file(tmp / ARTIFACT, data)
            with self.lock(name):
                numbers = self._version_numbers(mdir)
                number = (numbers[-1] + 1) if numbers else 1
                # Crashed registrations can leave a numbered dir without meta.json.
                while (mdir / str(number)).exists():
                    number += 1
                meta["version"] = number
                meta["created_at"] = _utcnow()
                _write_file(tmp / META, orjson.dumps(meta, option=orjson.OPT_INDENT_2))
                os.rename(tmp, mdir / str(number))
                _fsync_dir(mdir)
        except BaseException:
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


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sweep_stale_tmp(mdir: Path, older_than: float = 3600.0) -> None:
    """Remove temporary dirs of registrations that died an hour or more ago."""
    now = time.time()
    for p in mdir.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > older_than:
                shutil.rmtree(p, ignore_errors=True)


# -- one interface over both flavors -----------------------------------------------------

# Below this many rows a River model scores row by row: faster than building a DataFrame
# (StandardScaler | LogisticRegression, 10 features: 4.2 us a row against 0.92 ms + 1 us
# a row in a batch; they cross near 290 rows).
RIVER_BATCH_MIN_ROWS = 200


class LoadedModel:
    """A model version ready to score: the same calls for River and python flavors.

    ``predict_many`` is the fast lane: a River model scores a pandas DataFrame at
    once when its final estimator has ``predict_proba_many`` (River 0.26:
    LogisticRegression, Perceptron, the naive Bayes family, OneVsRestClassifier) or
    ``predict_many`` (LinearRegression, BayesianLinearRegression) and every
    transformer before it has ``transform_many`` (StandardScaler, OneHotEncoder,
    OrdinalEncoder, Select, TransformerUnion, FuncTransformer, ...; not Discard).
    ``StandardScaler | LogisticRegression`` measured ~650k rows/s in 10k batches
    against ~200k/s one by one. Python models get one ``predict_proba`` (or
    ``predict``) call on a matrix. Anything else falls back to one call per event,
    transparently, and stops trying the batch path after the first
    AttributeError/NotImplementedError.

    >>> from river import linear_model, preprocessing
    >>> m = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    >>> for i in range(20):
    ...     m.learn_one({"a": float(i)}, i > 9)
    >>> lm = LoadedModel(m, {"flavor": "river", "task": "classification",
    ...                      "labels": [False, True], "positive_label": "1",
    ...                      "features": [{"name": "a", "type": "number"}]})
    >>> [label for _, label in lm.predict_many([{"a": 0.0}, {"a": 19.0}])]
    ['0', '1']
    >>> lm.learn_one({"a": 3.0}, "0")
    """

    def __init__(self, model: Any, meta: Mapping[str, Any]) -> None:
        self.model = model
        self.meta = dict(meta)
        self.name: str = self.meta.get("name") or ""
        self.version: int | None = self.meta.get("version")
        self.flavor: str = self.meta["flavor"]
        self.task: str = self.meta.get("task") or "classification"
        self.feature_names: list[str] = [f["name"] for f in self.meta.get("features") or []]
        self.positive_label: str | None = self.meta.get("positive_label")
        raw_labels = self.meta.get("labels") or []
        self.labels: list[str] = [label_str(v) for v in raw_labels]
        # Outcomes arrive as strings or JSON numbers; River wants the label objects
        # it was trained with (bool for binary models), found by canonical string.
        self._label_objects: dict[str, Any] = {label_str(v): v for v in raw_labels}
        self._classifier = self.task == "classification"
        self._vectorised = True
        specs = self.meta.get("features") or []
        # All-number feature lists (the common case) are checked in C: one lookup of
        # every name, one set of types, one sum; anything odd gets check_features' walk.
        self._number_values: Callable[[Mapping[str, Any]], tuple] | None = None
        if specs and all(spec["type"] == "number" for spec in specs):
            getter = itemgetter(*self.feature_names)
            self._number_values = getter if len(specs) > 1 else lambda row: (getter(row),)
        if self.flavor == "python":
            self._python_columns = hasattr(model, "feature_names_in_")
            self._python_classes = (
                [label_str(c) for c in model.classes_] if hasattr(model, "classes_") else None
            )

    def check_features(self, features: Any) -> str | None:
        """:func:`check_features` against this version, fast for numeric features.

        >>> lm = LoadedModel(None, {"flavor": "river", "features": [
        ...     {"name": "a", "type": "number"}, {"name": "b", "type": "number"}]})
        >>> lm.check_features({"a": 1.0, "b": 2, "c": "extra"}) is None
        True
        >>> lm.check_features({"a": 1.0, "b": True})
        "feature 'b' should be a number, got bool"
        """
        numbers = self._number_values
        if numbers is not None and type(features) is dict:
            try:
                values = numbers(features)
                if _NUMBER_TYPES.issuperset(map(type, values)) and math.isfinite(sum(values)):
                    return None
            except (KeyError, OverflowError):
                pass  # the walk says which feature is missing or out of range
        return check_features(features, self.meta)

    def check_many(self, rows: Sequence[Any]) -> tuple[dict[int, str], np.ndarray | None]:
        """:meth:`check_features` of every row, as ``{index: reason}`` of the rows that
        fail; and, for all-number features, the rows that pass as a float matrix (columns
        in feature order) for :meth:`predict_many`. A batch of such rows is checked in C
        at once (one lookup of every name per row, one set of types, the matrix); one
        with anything odd row by row.

        >>> lm = LoadedModel(None, {"flavor": "river", "features": [
        ...     {"name": "a", "type": "number"}, {"name": "b", "type": "number"}]})
        >>> lm.check_many([{"a": 1.0, "b": 2}, {"a": 1.0}, {"a": 1.0, "b": float("nan")}])
        ({1: "missing feature 'b'", 2: "feature 'b' is not a finite number"}, array([[1., 2.]]))
        >>> lm.check_many([{"b": 2, "a": 1.0}] * 2)
        ({}, array([[1., 2.],
               [1., 2.]]))
        """
        numbers = self._number_values
        if numbers is not None and rows and _DICT_TYPE.issuperset(map(type, rows)):
            try:
                values = list(map(numbers, rows))
                if _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(values))):
                    matrix = np.array(values, dtype=float)
                    if np.isfinite(matrix).all():
                        return {}, matrix
            except (KeyError, OverflowError):
                pass  # the walk says which row and feature
        check = self.check_features
        invalid = {i: reason for i, row in enumerate(rows) if (reason := check(row)) is not None}
        matrix = None
        if numbers is not None and len(invalid) < len(rows):
            passed = [numbers(row) for i, row in enumerate(rows) if i not in invalid]
            with contextlib.suppress(OverflowError):  # an int beyond any double: no matrix
                matrix = np.array(passed, dtype=float)
        return invalid, matrix

    @property
    def vectorised(self) -> bool:
        """Whether ``predict_many`` uses the batch path (False once it proved unsupported)."""
        return self._vectorised

    @property
    def can_learn(self) -> bool:
        return self.flavor == "river" and hasattr(self.model, "learn_one")

    # -- scoring

    def _from_proba(self, proba: Mapping[Any, float]) -> tuple[float, str]:
        if not proba:
            return 0.0, ""  # an untrained River model knows no class yet
        by_label = {label_str(k): float(v) for k, v in proba.items()}
        label = max(by_label, key=by_label.__getitem__)
        pos = self.positive_label
        if pos is not None and len(by_label) <= 2 and len(self.labels) <= 2:
            return by_label.get(pos, 1.0 - by_label[label] if label != pos else 0.0), label
        return by_label[label], label

    def predict_one(self, features: Mapping[str, Any]) -> tuple[float, str]:
        """``(score, label)`` for one event."""
        if self.flavor == "river":
            if self._classifier:
                return self._from_proba(self.model.predict_proba_one(features))
            return float(self.model.predict_one(features)), ""
        return self._python_batch([features])[0]

    def predict_many(
        self,
        rows: Sequence[Mapping[str, Any]],
        return_errors: bool = False,
        matrix: np.ndarray | None = None,
    ) -> list[Any]:
        """``(score, label)`` per row, vectorised where the model supports it.

        With ``return_errors`` a row the model fails on gives its exception in place
        of the tuple (the scorer dead-letters it); otherwise the first error raises.
        ``matrix`` is the rows' float matrix from :meth:`check_many`: a River model takes
        it as its batch instead of a DataFrame built from the dicts.
        """
        if not rows:
            return []
        # A River batch pays ~1 ms for its DataFrame whatever its size, one row ~5 us:
        # small batches (low rates, where latency counts) go row by row.
        small = self.flavor == "river" and len(rows) < RIVER_BATCH_MIN_ROWS
        if self._vectorised and not small:
            try:
                if self.flavor == "river":
                    return self._river_batch(rows, matrix)
                return self._python_batch(rows)
            except (AttributeError, NotImplementedError):
                # The estimator (or a pipeline step) has no batch method: stop trying.
                self._vectorised = False
            except Exception:
                pass  # one bad row fails the batch; find it row by row below
        out: list[Any] = []
        for row in rows:
            try:
                out.append(self.predict_one(row))
            except Exception as err:
                if not return_errors:
                    raise
                out.append(err)
        return out

    def _frame(self, rows: Sequence[Mapping[str, Any]], matrix: np.ndarray | None = None) -> Any:
        import pandas as pd

        if matrix is not None:
            # Checked all-number rows: no per-row dict walk in pandas (0.48 against 0.71
            # us a row for from_records, 10 features).
            return pd.DataFrame(matrix, columns=self.feature_names, copy=False)
        if self.feature_names:
            return pd.DataFrame.from_records(rows, columns=self.feature_names)
        return pd.DataFrame.from_records(rows)

    def _river_batch(
        self, rows: Sequence[Mapping[str, Any]], matrix: np.ndarray | None = None
    ) -> list[tuple[float, str]]:
        frame = self._frame(rows, matrix)
        if not self._classifier:
            values = np.asarray(self.model.predict_many(frame), dtype=float)
            return [(v, "") for v in values.tolist()]
        proba = self.model.predict_proba_many(frame)
        return self._from_matrix(
            np.nan_to_num(proba.to_numpy(dtype=float)), [label_str(c) for c in proba.columns]
        )

    def _from_matrix(self, probs: np.ndarray, classes: list[str]) -> list[tuple[float, str]]:
        if probs.shape[1] == 0:
            return [(0.0, "")] * probs.shape[0]
        idx = probs.argmax(axis=1)
        picked = probs[np.arange(probs.shape[0]), idx]
        pos = self.positive_label
        if pos is not None and len(classes) <= 2 and len(self.labels) <= 2:
            if pos in classes:
                scores = probs[:, classes.index(pos)]
            else:
                scores = np.where(np.asarray(classes)[idx] == pos, picked, 1.0 - picked)
        else:
            scores = picked
        return list(zip(scores.tolist(), [classes[i] for i in idx.tolist()], strict=True))

    def _python_matrix(self, rows: Sequence[Mapping[str, Any]]) -> Any:
        if self._python_columns:
            return self._frame(rows)
        names = self.feature_names
        table = [[row[n] for n in names] for row in rows]
        try:
            return np.asarray(table, dtype=float)
        except (TypeError, ValueError):
            return np.asarray(table, dtype=object)

    def _python_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[float, str]]:
        X = self._python_matrix(rows)
        if not self._classifier:
            values = np.asarray(self.model.predict(X), dtype=float).reshape(-1)
            return [(v, "") for v in values.tolist()]
        probs = np.asarray(self.model.predict_proba(X), dtype=float)
        if probs.ndim == 1:  # some wrappers return P(positive) only
            probs = np.column_stack([1.0 - probs, probs])
        classes = self._python_classes or self.labels or [str(i) for i in range(probs.shape[1])]
        return self._from_matrix(probs, classes)

    # -- learning

    def coerce_label(self, label: Any) -> Any:
        """An outcome's label as the model learns it (class object, or float for regressors)."""
        if not self._classifier:
            return float(label)
        key = label_str(label)
        if key in self._label_objects:
            return self._label_objects[key]
        if isinstance(label, str):
            low = label.strip().lower()
            if low in ("true", "false"):
                return low == "true"
            with contextlib.suppress(ValueError):
                return int(low)
        return label

    def learn_one(self, features: Mapping[str, Any], label: Any) -> None:
        """Learn one labelled event (River flavor only)."""
        if not self.can_learn:
            raise RegistryError(
                f"{self.name or 'model'} v{self.version}: "
                f"flavor {self.flavor} does not learn online"
            )
        y = self.coerce_label(label)
        if self._classifier and label_str(y) not in self._label_objects:
            # A class seen for the first time: remember it for later coercions.
            self._label_objects[label_str(y)] = y
        self.model.learn_one(features, y)
