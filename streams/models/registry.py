"""The model registry on disk: immutable, numbered, checksummed model versions.

Layout under the registry directory (``settings.registry_location``)::

    <model>/.lock              fcntl lock: version allocation and state changes
    <model>/state.json         aliases, split, shadow (written by streams.models.commands)
    <model>/<version>/model.pkl  (or model.json, model.txt, model.onnx, model.mlflow.zip)
    <model>/<version>/meta.json

A version is written to a temporary directory, then renamed to its number while
the model's lock is held, so a learner and a human registering at the same time
get distinct numbers and nobody ever sees half a version. ``meta.json`` carries
the flavor, the artifact's name and sha256 (checked before every load: a pickle is
code), whether loading it runs code, the features and their types, the reference
profile of the training data (the drift baseline), the parent version, metrics, who
registered it, the task and the class labels.

Every flavor (:mod:`streams.models.flavors`) shares one interface,
:class:`~streams.models.loaded.LoadedModel`:

* ``river``: any River estimator or pipeline; it can keep learning online.
* ``python``: any pickled object with ``predict_proba`` (classifiers) or
  ``predict`` (regressors) over a 2-D matrix.
* ``sklearn``: a scikit-learn estimator or Pipeline (pickled).
* ``xgboost``, ``lightgbm``, ``onnx``: in the runtime's own format, no pickle.
* ``mlflow``: an MLflow model, kept as its own flavor where it is one of these,
  else run by ``mlflow.pyfunc``.

The flavor is inferred from the object or the file when not given; a given one is
checked against it. With ``allow_code=False`` (``registry_allow_code = false``) the
flavors whose loading runs code (``river``, ``python``, ``sklearn``, MLflow's pyfunc)
are refused, at registration and at load.

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
from streams.models.flavors import (
    FLAVORS,
    CodeRefusedError,
    FeatureMismatchError,
    Flavor,
    ModelFacts,
    Resolved,
    get_flavor,
    resolve,
)
from streams.models.loaded import LoadedModel, label_json, label_str
from streams.models.reference import fit_reference_profile
from streams.models.versions import LOCK, META, STATE, ModelVersion, default_actor

__all__ = ["FLAVORS", "MAX_REFERENCE_ROWS", "Registry"]

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

    def __init__(self, path: str | os.PathLike[str], allow_code: bool = True) -> None:
        self.root = Path(path)
        #: Whether flavors whose loading runs code (pickles, pyfunc) are registered and loaded.
        self.allow_code = allow_code

    @classmethod
    def from_settings(cls, settings: Any) -> Registry:
        return cls(settings.registry_location, getattr(settings, "registry_allow_code", True))

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
        """Verify the artifact's sha256, then load it with its flavor as a :class:`LoadedModel`."""
        mv = self.get(name, version)
        flavor = get_flavor(mv.flavor)
        if flavor.executes_code and not self.allow_code:
            raise CodeRefusedError(
                f"{name} v{mv.version} is flavor {flavor.name}, which runs code when loaded, "
                "and registry_allow_code is off",
                model=name,
                version=mv.version,
            )
        data = self.read_artifact(mv)  # before loading: a pickle runs code
        return LoadedModel(flavor.load(data), mv.meta)

    # -- writing

    def register(
        self,
        name: str,
        obj_or_path: Any,
        flavor: str | None = None,
        features: Any = None,
        reference_rows: Iterable[Mapping[str, Any]] | Any = None,
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

        ``obj_or_path`` is the model object, a model file (a pickle, an XGBoost
        JSON/UBJ, a LightGBM text model, an ``.onnx`` graph), or an MLflow model
        directory or URI. ``flavor`` is inferred when None, and checked against the
        content when given. ``features`` are names, ``"name:type"`` strings or a
        ``{name: type}`` mapping; when omitted they are the model's own input names
        (``feature_names_in_``, a booster's names, an MLflow signature) or inferred from
        ``reference_rows``, and when given they must match the model's inputs in names
        and count. ``reference_rows`` (mappings, or a DataFrame) are a sample of the
        training features: they give the drift baseline, the score baseline (the
        model's scores on them) and, for River classifiers, the class labels.
        """
        mdir = self.model_dir(name)
        resolved = resolve(obj_or_path, flavor, self.allow_code)
        chosen, obj = resolved.flavor, resolved.model
        data = resolved.data if resolved.data is not None else chosen.dump(obj)
        # A flavor that runs code to load has its model in hand already; any other is read
        # back from its artifact, so what is registered is proven to load and score.
        runtime = obj if chosen.executes_code else chosen.load(data)
        facts = chosen.facts(obj)
        known_task = facts.task if not chosen.executes_code else None  # a pickle may be told
        if task is not None and known_task is not None and task != known_task:
            raise RegistryError(f"task {task!r}, but the {chosen.name} model is a {facts.task}")
        task = task or facts.task or "regression"
        if task not in ("classification", "regression"):
            raise RegistryError(f"task {task!r} is not classification or regression")

        rows: list[Mapping[str, Any]] = []
        if reference_rows is not None:
            if hasattr(reference_rows, "to_dict") and hasattr(reference_rows, "columns"):
                reference_rows = reference_rows.to_dict(orient="records")  # a DataFrame
            for row in reference_rows:
                rows.append(row)
                if len(rows) >= MAX_REFERENCE_ROWS:
                    break

        feature_specs = _features(chosen, facts, resolved, features, rows)

        label_values: list[Any] = []
        class_columns: list[Any] | None = None
        if task == "classification":
            if facts.classes is not None:
                class_columns = [label_json(v) for v in facts.classes]
            if labels is not None:
                label_values = [label_json(v) for v in labels]
            elif class_columns is not None:
                label_values = list(class_columns)
            elif chosen.name == "river" and rows:
                with contextlib.suppress(Exception):  # River user code: no labels, not an error
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
            "flavor": chosen.name,
            "artifact": chosen.artifact,
            "executes_code": chosen.executes_code,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "task": task,
            "labels": label_values,
            "class_columns": class_columns,
            "positive_label": positive,
            "features": feature_specs,
            "parent": int(parent) if parent is not None else None,
            "metrics": dict(metrics or {}),
            "registered_by": registered_by or default_actor(),
            "description": description,
            "environment": {**_environment(), **chosen.runtime_version()},
        }
        if resolved.source is not None:
            meta["mlflow"] = resolved.source
        if rows:
            scores: list[float] | None = None
            with contextlib.suppress(Exception):
                # The model's scores on its own training sample: the baseline of
                # prediction drift. A model that cannot score them still registers.
                scores = [s for s, _ in LoadedModel(runtime, meta).predict_many(rows)]
            meta["reference_profile"] = fit_reference_profile(rows, scores)
        else:
            meta["reference_profile"] = None

        mdir.mkdir(parents=True, exist_ok=True)
        sweep_stale_tmp(mdir)
        tmp = mdir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            write_durably(tmp / chosen.artifact, data)
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
        for p in (vdir / chosen.artifact, vdir / META):
            # Read-only: a version is immutable; the sha256 catches what chmod cannot.
            with contextlib.suppress(OSError):
                p.chmod(0o444)
        return ModelVersion(name=name, version=number, path=vdir, meta=meta)


def _features(
    flavor: Flavor,
    facts: ModelFacts,
    resolved: Resolved,
    features: Any,
    rows: Sequence[Mapping[str, Any]],
) -> list[dict[str, str]]:
    """The version's features: as given, else the model's own names, else the reference
    rows'; checked against the model's inputs and put in the model's order."""
    specs = normalize_features(features)
    known = resolved.feature_names or facts.feature_names
    if not specs and known:
        specs = normalize_features([str(n) for n in known])
    if not specs and rows:
        specs = infer_features(rows)
    if not specs:
        if flavor.name == "river":
            return []
        raise RegistryError(
            f"flavor {flavor.name} needs the feature names (their order is the matrix's "
            "column order): give features or reference rows"
        )
    given = [spec["name"] for spec in specs]
    if facts.n_features is not None and len(given) != facts.n_features:
        raise FeatureMismatchError(
            f"{len(given)} features ({', '.join(given)}), but the {flavor.name} model "
            f"takes {facts.n_features} inputs"
        )
    if known:
        known = [str(n) for n in known]
        if set(given) != set(known):
            missing = [n for n in known if n not in given]
            unknown = [n for n in given if n not in known]
            raise FeatureMismatchError(
                f"features do not match the {flavor.name} model's inputs "
                f"({', '.join(known)}): missing {', '.join(missing) or '-'}, "
                f"unknown to it {', '.join(unknown) or '-'}"
            )
        by_name = {spec["name"]: spec for spec in specs}
        specs = [by_name[n] for n in known]  # the matrix's columns in the model's order
    if facts.numeric:
        odd = [f"{s['name']}:{s['type']}" for s in specs if s["type"] != "number"]
        if odd:
            raise FeatureMismatchError(
                f"the {flavor.name} model takes numbers only, not {', '.join(odd)}"
            )
    return specs


def _environment() -> dict[str, str]:
    env = {"python": platform.python_version()}
    for module in ("river", "sklearn", "numpy"):
        with contextlib.suppress(Exception):
            mod = __import__(module)
            env[module] = str(getattr(mod, "__version__", ""))
    return env
