"""Feature typing and checking: what a version expects of a request, and why a row does not fit.

A version's ``meta.json`` lists its features as ``[{"name": ..., "type": ...}]`` with a
type among :data:`FEATURE_TYPES`. :func:`check_features` walks one request against
them; :class:`FeatureChecker` is the scorer's fast lane, checking whole batches of
all-number rows in C. A row that does not fit gives a :class:`FeatureProblem`, whose
``kind`` is the dead letter's ``error_type`` (``feature_missing`` or ``feature_type``)
and whose ``reason`` is the dead letter's text.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from streams.models.errors import RegistryError

__all__ = [
    "FEATURE_MISSING",
    "FEATURE_TYPE",
    "FEATURE_TYPES",
    "FeatureChecker",
    "FeatureProblem",
    "check_features",
    "feature_type",
    "infer_features",
    "normalize_features",
]

FEATURE_TYPES = ("number", "string", "bool")
# The dead-letter kinds (streams.kafka.deadletters.ERROR_TYPES) a feature problem is filed as.
FEATURE_MISSING = "feature_missing"
FEATURE_TYPE = "feature_type"


@dataclass(frozen=True, slots=True)
class FeatureProblem:
    """Why a request's features do not fit a version: made only for rows that fail.

    ``kind`` is the dead letter's error type, ``feature`` the feature concerned (None
    when the features are not an object at all), ``reason`` the one-line text.

    >>> problem = FeatureProblem(FEATURE_TYPE, "age", "feature 'age' should be a number, got str")
    >>> problem.kind, problem.feature
    ('feature_type', 'age')
    >>> print(problem)
    feature 'age' should be a number, got str
    """

    kind: str
    feature: str | None
    reason: str

    def __str__(self) -> str:
        return self.reason


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


# The fast lane's type sets: a row's value types must be a subset (checked in C).
NUMBER_TYPES = frozenset((int, float))
DICT_TYPE = frozenset((dict,))


def check_features(features: Any, meta: Any) -> FeatureProblem | None:
    """Why a request's features do not fit a model version, or None when they do.

    ``meta`` is a version's ``meta.json`` dict, a :class:`ModelVersion` or a
    :class:`LoadedModel`. Missing and null features are refused (River and most
    models raise on them rather than impute); extra features are ignored. A
    version registered without a feature list accepts any mapping.

    >>> meta = {"features": [{"name": "age", "type": "number"}]}
    >>> check_features({"age": 3}, meta) is None
    True
    >>> print(check_features({"age": "3"}, meta))
    feature 'age' should be a number, got str
    >>> check_features({}, meta).kind
    'feature_missing'
    """
    if not isinstance(features, Mapping):
        return FeatureProblem(
            FEATURE_TYPE, None, f"features should be an object, got {type(features).__name__}"
        )
    if not isinstance(meta, Mapping):
        meta = meta.meta
    for spec in meta.get("features") or ():
        name = spec["name"]
        if name not in features:
            return FeatureProblem(FEATURE_MISSING, name, f"missing feature {name!r}")
        value = features[name]
        if value is None:
            return FeatureProblem(FEATURE_MISSING, name, f"feature {name!r} is null")
        expected = spec["type"]
        if expected == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(value, float) and not math.isfinite(value):
                # Filed as a type problem, as it always was: the value is there, unusable.
                reason = f"feature {name!r} is not a finite number"
                return FeatureProblem(FEATURE_TYPE, name, reason)
        elif expected == "bool":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            return FeatureProblem(
                FEATURE_TYPE,
                name,
                f"feature {name!r} should be a {expected}, got {type(value).__name__}",
            )
    return None


class FeatureChecker:
    """:func:`check_features` against one version's features, fast for numeric ones.

    All-number feature lists (the common case) are checked in C: one lookup of every
    name, one set of types, one sum; anything odd gets :func:`check_features`' walk.
    A :class:`FeatureProblem` is made only for a row that fails: good rows cost
    nothing more than the check itself.

    >>> checker = FeatureChecker({"features": [
    ...     {"name": "a", "type": "number"}, {"name": "b", "type": "number"}]})
    >>> checker.check({"a": 1.0, "b": 2, "c": "extra"}) is None
    True
    >>> checker.check({"a": 1.0, "b": True}).reason
    "feature 'b' should be a number, got bool"
    """

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self.meta = meta
        specs = meta.get("features") or []
        names = [spec["name"] for spec in specs]
        #: The row's values in feature order (a tuple), for all-number feature lists.
        self.number_values: Callable[[Mapping[str, Any]], tuple] | None = None
        if specs and all(spec["type"] == "number" for spec in specs):
            getter = itemgetter(*names)
            self.number_values = getter if len(specs) > 1 else lambda row: (getter(row),)

    def check(self, features: Any) -> FeatureProblem | None:
        """The problem of one request's features, or None when they fit."""
        numbers = self.number_values
        if numbers is not None and type(features) is dict:
            try:
                values = numbers(features)
                if NUMBER_TYPES.issuperset(map(type, values)) and math.isfinite(sum(values)):
                    return None
            except (KeyError, OverflowError):
                pass  # the walk says which feature is missing or out of range
        return check_features(features, self.meta)

    def check_many(
        self, rows: Sequence[Any]
    ) -> tuple[dict[int, FeatureProblem], np.ndarray | None]:
        """The problems of the rows that fail, by index; and, for all-number features, the
        rows that pass as a float matrix (columns in feature order). A batch of such rows is
        checked in C at once (one lookup of every name per row, one set of types, the
        matrix); one with anything odd row by row.
        """
        numbers = self.number_values
        if numbers is not None and rows and DICT_TYPE.issuperset(map(type, rows)):
            try:
                values = list(map(numbers, rows))
                if NUMBER_TYPES.issuperset(map(type, chain.from_iterable(values))):
                    matrix = np.array(values, dtype=float)
                    if np.isfinite(matrix).all():
                        return {}, matrix
            except (KeyError, OverflowError):
                pass  # the walk says which row and feature
        check = self.check
        invalid = {i: problem for i, row in enumerate(rows) if (problem := check(row)) is not None}
        matrix = None
        if numbers is not None and len(invalid) < len(rows):
            passed = [numbers(row) for i, row in enumerate(rows) if i not in invalid]
            with contextlib.suppress(OverflowError):  # an int beyond any double: no matrix
                matrix = np.array(passed, dtype=float)
        return invalid, matrix
