"""A model version ready to score: one interface over every flavor (River, pickles,
scikit-learn, XGBoost, LightGBM, ONNX, MLflow; see :mod:`streams.models.flavors`).

Scores and labels. A prediction is ``(score, label)``. For a binary classifier
the score is the probability of the *positive* class, which is the label whose
string form (:func:`label_str`) is ``"1"`` (so ``True`` and ``1``), else
``"true"`` or ``"yes"``, else the last label in sorted order; ``positive_label``
at registration overrides it. For a multi-class classifier the score is the
probability of the predicted class. For a regressor the score is the predicted
value and the label is ``""``. Labels are strings: booleans become ``"1"``/``"0"``
and integral numbers lose their ``.0``, so River's ``True`` and an outcome's
``1`` compare equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from streams.models.errors import RegistryError
from streams.models.features import FeatureChecker, FeatureProblem
from streams.models.flavors import get_flavor

__all__ = ["RIVER_BATCH_MIN_ROWS", "LoadedModel", "label_json", "label_str"]


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


def label_json(value: Any) -> Any:
    """A label as a JSON-representable value (numpy scalars unwrapped)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


# Below this many rows a River model scores row by row: faster than building a DataFrame
# (StandardScaler | LogisticRegression, 10 features: 4.2 us a row against 0.92 ms + 1 us
# a row in a batch; they cross near 290 rows).
RIVER_BATCH_MIN_ROWS = 200


class LoadedModel:
    """A model version ready to score: the same calls for every flavor.

    ``predict_many`` is the fast lane: a River model scores a pandas DataFrame at
    once when its final estimator has ``predict_proba_many`` (River 0.26:
    LogisticRegression, Perceptron, the naive Bayes family, OneVsRestClassifier) or
    ``predict_many`` (LinearRegression, BayesianLinearRegression) and every
    transformer before it has ``transform_many`` (StandardScaler, OneHotEncoder,
    OrdinalEncoder, Select, TransformerUnion, FuncTransformer, ...; not Discard).
    ``StandardScaler | LogisticRegression`` measured ~650k rows/s in 10k batches
    against ~200k/s one by one. Every other flavor gets one call of its runtime on the
    checked float matrix (:meth:`check_many`'s), or on a DataFrame of it for a model
    that selects columns by name; a 1-D output of a classifier is P(positive class), the
    first column P(the other one). Anything else falls back to one call per event,
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
        # The feature checks (fast for all-number features) live with the feature types.
        self.checker = FeatureChecker(self.meta)
        self._predict = None
        if self.flavor != "river" and model is not None:
            flavor = get_flavor(self.flavor)
            self._frame_input = flavor.wants_frame(model)
            self._predict = flavor.predictor(model, self.meta)
            # The probability columns' classes: the model's own where it keeps them, else
            # what the flavor read off it at registration.
            columns = getattr(model, "classes_", None)
            if columns is None:
                columns = self.meta.get("class_columns") or raw_labels or None
            self._columns = [label_str(c) for c in columns] if columns is not None else None

    def check_features(self, features: Any) -> FeatureProblem | None:
        """:func:`~streams.models.features.check_features` against this version, fast for
        numeric features.

        >>> lm = LoadedModel(None, {"flavor": "river", "features": [
        ...     {"name": "a", "type": "number"}, {"name": "b", "type": "number"}]})
        >>> lm.check_features({"a": 1.0, "b": 2, "c": "extra"}) is None
        True
        >>> problem = lm.check_features({"a": 1.0, "b": True})
        >>> problem.kind, problem.feature, problem.reason
        ('feature_type', 'b', "feature 'b' should be a number, got bool")
        """
        return self.checker.check(features)

    def check_many(
        self, rows: Sequence[Any]
    ) -> tuple[dict[int, FeatureProblem], np.ndarray | None]:
        """:meth:`check_features` of every row, as ``{index: problem}`` of the rows that
        fail; and, for all-number features, the rows that pass as a float matrix (columns
        in feature order) for :meth:`predict_many`. A batch of such rows is checked in C
        at once (one lookup of every name per row, one set of types, the matrix); one
        with anything odd row by row.

        >>> lm = LoadedModel(None, {"flavor": "river", "features": [
        ...     {"name": "a", "type": "number"}, {"name": "b", "type": "number"}]})
        >>> invalid, matrix = lm.check_many(
        ...     [{"a": 1.0, "b": 2}, {"a": 1.0}, {"a": 1.0, "b": float("nan")}])
        >>> for i, problem in invalid.items():
        ...     print(i, problem.kind, problem.reason)
        1 feature_missing missing feature 'b'
        2 feature_type feature 'b' is not a finite number
        >>> matrix
        array([[1., 2.]])
        >>> lm.check_many([{"b": 2, "a": 1.0}] * 2)
        ({}, array([[1., 2.],
               [1., 2.]]))
        """
        return self.checker.check_many(rows)

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
        return self._runtime_batch([features])[0]

    def predict_many(
        self,
        rows: Sequence[Mapping[str, Any]],
        return_errors: bool = False,
        matrix: np.ndarray | None = None,
    ) -> list[Any]:
        """``(score, label)`` per row, vectorised where the model supports it.

        With ``return_errors`` a row the model fails on gives its exception in place
        of the tuple (the scorer dead-letters it); otherwise the first error raises.
        ``matrix`` is the rows' float matrix from :meth:`check_many`: it goes straight into
        the runtime (a River model takes it as its batch instead of a DataFrame built from
        the dicts).
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
                return self._runtime_batch(rows, matrix)
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
                # a model is user code: its error is the row's, returned or raised
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

    def _input(self, rows: Sequence[Mapping[str, Any]], matrix: np.ndarray | None) -> Any:
        if self._frame_input:
            return self._frame(rows, matrix)
        if matrix is not None:
            return matrix
        names = self.feature_names
        table = [[row[n] for n in names] for row in rows]
        try:
            return np.asarray(table, dtype=float)
        except (TypeError, ValueError):
            return np.asarray(table, dtype=object)

    def _runtime_batch(
        self, rows: Sequence[Mapping[str, Any]], matrix: np.ndarray | None = None
    ) -> list[tuple[float, str]]:
        if self._predict is None:
            raise RegistryError(f"{self.name or 'model'} v{self.version}: no model to score")
        out = self._predict(self._input(rows, matrix))
        if not self._classifier:
            values = np.asarray(out, dtype=float).reshape(-1)
            return [(v, "") for v in values.tolist()]
        probs = np.asarray(out, dtype=float)
        if probs.ndim == 1:  # boosters and some wrappers return P(positive) only
            probs = np.column_stack([1.0 - probs, probs])
        classes = self._columns or [str(i) for i in range(probs.shape[1])]
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
                f"flavor {self.flavor} does not learn online",
                model=self.name or None,
                version=self.version,
            )
        y = self.coerce_label(label)
        if self._classifier and label_str(y) not in self._label_objects:
            # A class seen for the first time: remember it for later coercions.
            self._label_objects[label_str(y)] = y
        self.model.learn_one(features, y)
