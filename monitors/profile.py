"""The reference profile: a model version's training data, summarised as a drift baseline.

It is stored in each version's ``meta.json`` (``to_dict()`` is JSON-safe) and every
window is compared to it. A profile can also be cut from a closed window
(:meth:`ReferenceProfile.from_window`) to compare each window to an earlier one.

Binning: numeric features get ``bins`` equal-frequency (quantile) bins, i.e. ``bins + 1``
edges at the reference quantiles ``0, 1/bins, ..., 1``, duplicates removed. A feature with
at most ``bins`` distinct values (a count, a flag stored as a number) instead gets one bin
per value, with edges half-way between neighbouring values, so that no two values share a
bin. The first edge is the minimum and the last the maximum: a window's underflow and
overflow bins are exactly its out-of-range values.

"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from monitors.sketches import (
    OTHER,
    CategoryCounter,
    NumericSketch,
    WindowSketches,
    as_float_array,
    bin_indices,
    category_key,
)

__all__ = [
    "SCORE",
    "CategoricalProfile",
    "NumericProfile",
    "ReferenceProfile",
    "Value",
    "quantile_edges",
]

#: The pseudo-feature name the model's score is reported under.
SCORE = "__score__"

Value = float | int | str | bool | None


def quantile_edges(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Bin edges for a reference sample (see the module docstring for the rule).

    >>> quantile_edges(np.arange(101.0), bins=4).tolist()
    [0.0, 25.0, 50.0, 75.0, 100.0]
    >>> quantile_edges(np.array([0.0, 1.0, 1.0, 3.0]), bins=10).tolist()
    [0.0, 0.5, 2.0, 3.0]

    """
    if values.size == 0:
        raise ValueError("cannot bin an empty sample")
    distinct = np.unique(values)
    if distinct.size <= bins:
        if distinct.size == 1:
            return np.array([distinct[0], distinct[0]])
        mids = (distinct[:-1] + distinct[1:]) / 2
        return np.concatenate(([distinct[0]], mids, [distinct[-1]]))
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))


class MissingRate:
    """The share of a feature's values that were missing, for a profile counting both."""

    n: int
    missing: int

    @property
    def missing_rate(self) -> float:
        total = self.n + self.missing
        return self.missing / total if total else math.nan


@dataclasses.dataclass
class NumericProfile(MissingRate):
    """A numeric feature's (or the score's) reference distribution.

    `counts` has ``len(edges) + 1`` cells: underflow, the bins, overflow (both zero for
    a profile fitted on raw data). `sample` is a uniform random sample of at most
    `sample_size` values for KS and Wasserstein; `sample_weights` is None for such a
    sample, or the weights of a weighted sample (a profile cut from a window's quantile
    sketch). `std` is the population standard deviation (ddof=0).

    >>> p = NumericProfile.fit(np.arange(1000.0), bins=4, sample_size=10)
    >>> p.edges, p.counts, len(p.sample), p.min, p.max
    ([0.0, 249.75, 499.5, 749.25, 999.0], [0, 250, 250, 250, 250, 0], 10, 0.0, 999.0)

    """

    edges: list[float]
    counts: list[int]
    n: int
    missing: int
    min: float
    max: float
    mean: float
    std: float
    sample: list[float]
    sample_weights: list[float] | None = None
    kind = "numeric"

    @property
    def sample_n(self) -> int:
        """How many observations the sample's ECDF stands for (the KS p-value's size)."""
        return len(self.sample) if self.sample_weights is None else self.n

    @classmethod
    def fit(
        cls, values: Any, bins: int = 10, sample_size: int | None = 1000, seed: int = 0
    ) -> NumericProfile:
        """Profile raw values (None/NaN are missing). ``sample_size=None`` keeps them all."""
        xs = as_float_array(values)
        nan = np.isnan(xs)
        valid = xs[~nan]
        if valid.size == 0:
            raise ValueError("a numeric profile needs at least one non-missing value")
        edges = quantile_edges(valid, bins)
        counts = np.bincount(bin_indices(edges, valid), minlength=edges.size + 1)
        if sample_size is None or valid.size <= sample_size:
            sample = valid
        else:
            # A uniform sample without replacement: what a reservoir would hold.
            rng = np.random.default_rng(seed)
            sample = valid[rng.choice(valid.size, size=sample_size, replace=False)]
        return cls(
            edges=edges.tolist(),
            counts=counts.tolist(),
            n=int(valid.size),
            missing=int(nan.sum()),
            min=float(valid.min()),
            max=float(valid.max()),
            mean=float(valid.mean()),
            std=float(valid.std()),
            sample=np.sort(sample).tolist(),
        )

    @classmethod
    def from_sketch(cls, sketch: NumericSketch) -> NumericProfile:
        """A profile from a window's sketch, keeping the sketch's bin edges.

        Counts are the window's exact histogram; the sample is the quantile sketch's
        weighted items (exact while the window was smaller than the sketch's `k`).
        """
        if sketch.n == 0:
            raise ValueError("cannot profile an empty window")
        values, weights = sketch.quantiles.weighted_items()
        exact = bool(np.all(weights == 1.0))
        return cls(
            edges=sketch.histogram.edges.tolist(),
            counts=sketch.histogram.counts.tolist(),
            n=sketch.n,
            missing=sketch.missing,
            min=sketch.quantiles.min,
            max=sketch.quantiles.max,
            mean=sketch.moments.mean,
            std=sketch.moments.std,
            sample=values.tolist(),
            sample_weights=None if exact else weights.tolist(),
        )

    def new_sketch(self, k: int = 256, seed: int = 0) -> NumericSketch:
        """An empty window sketch binned over this profile's edges."""
        return NumericSketch(self.edges, k=k, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["kind"] = self.kind
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericProfile:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


@dataclasses.dataclass
class CategoricalProfile(MissingRate):
    """A categorical feature's reference frequencies, top-K named, the rest as ``__other__``.

    ``counts[OTHER]`` is always present (zero when nothing was folded), so a window's
    categories outside the named ones always have a bin to land in.

    >>> p = CategoricalProfile.fit(["a", "a", "b", "c", None], top_k=2)
    >>> p.counts, p.missing
    ({'a': 2, 'b': 1, '__other__': 1}, 1)

    """

    counts: dict[str, int]
    n: int
    missing: int
    kind = "categorical"

    @property
    def categories(self) -> list[str]:
        """The named categories (without ``__other__``)."""
        return [c for c in self.counts if c != OTHER]

    @classmethod
    def fit(cls, values: Iterable[Any], top_k: int | None = 50) -> CategoricalProfile:
        counter = CategoryCounter(max_categories=2**62)
        counter.update_many(values)
        return cls._from_counts(counter.counts, counter.missing, top_k)

    @classmethod
    def from_counter(cls, counter: CategoryCounter, top_k: int | None = 50) -> CategoricalProfile:
        return cls._from_counts(counter.counts, counter.missing, top_k)

    @classmethod
    def _from_counts(
        cls, counts: Mapping[str, int], missing: int, top_k: int | None
    ) -> CategoricalProfile:
        other = counts.get(OTHER, 0)
        # Most frequent first, ties by name, so a refit on the same data is identical.
        named = sorted(
            ((c, k) for k, c in counts.items() if k != OTHER), key=lambda t: (-t[0], t[1])
        )
        if top_k is not None:
            other += sum(c for c, _ in named[top_k:])
            named = named[:top_k]
        out = {k: int(c) for c, k in named}
        out[OTHER] = int(other)
        return cls(counts=out, n=sum(out.values()), missing=int(missing))

    def new_sketch(self, max_categories: int = 1000) -> CategoryCounter:
        return CategoryCounter(max_categories=max_categories)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "counts": dict(self.counts),
            "n": self.n,
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        return cls(counts=dict(d["counts"]), n=int(d["n"]), missing=int(d["missing"]))


FeatureProfile = NumericProfile | CategoricalProfile


def _feature_from_dict(d: Mapping[str, Any]) -> FeatureProfile:
    if d["kind"] == "numeric":
        return NumericProfile.from_dict(d)
    if d["kind"] == "categorical":
        return CategoricalProfile.from_dict(d)
    raise ValueError(f"unknown feature kind {d['kind']!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclasses.dataclass
class ReferenceProfile:
    """Training data profile of one model version: per-feature baselines and the score.

    A feature is numeric when every non-missing value is an int or float (bools are not
    numbers here), otherwise categorical (values counted as :func:`category_key`).
    A key absent from a row counts as missing.

    >>> rows = [{"age": 20 + i % 50, "plan": "gold" if i % 3 else "free"} for i in range(300)]
    >>> ref = ReferenceProfile.fit(rows, scores=[i / 300 for i in range(300)], bins=5)
    >>> ref.features["age"].kind, ref.features["plan"].kind, ref.n
    ('numeric', 'categorical', 300)
    >>> ref.features["plan"].counts
    {'gold': 200, 'free': 100, '__other__': 0}
    >>> import json
    >>> ReferenceProfile.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    True

    """

    features: dict[str, FeatureProfile]
    score: NumericProfile | None = None
    n: int = 0

    @property
    def numeric(self) -> list[str]:
        return [f for f, p in self.features.items() if p.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f for f, p in self.features.items() if p.kind == "categorical"]

    @classmethod
    def fit(
        cls,
        rows: Iterable[Mapping[str, Value]],
        scores: Iterable[float] | None = None,
        **options: Any,
    ) -> ReferenceProfile:
        """Profile training rows (and optionally the model's scores on them); `options`
        are :meth:`fit_columns`' (``bins``, ``top_k``, ``sample_size``, ``seed``).

        The rows are read once and held column by column: a training set is assumed
        to fit in memory, unlike a live stream.
        """
        columns: dict[str, list[Any]] = {}
        n = 0
        for i, row in enumerate(rows):
            for name, value in row.items():
                col = columns.get(name)
                if col is None:
                    # A feature first seen late was missing in the rows before.
                    col = columns[name] = [None] * i
                col.append(value)
            n = i + 1
            for col in columns.values():
                if len(col) < n:
                    col.append(None)
        return cls.fit_columns(columns, scores=scores, **options)

    @classmethod
    def fit_columns(
        cls,
        columns: Mapping[str, Sequence[Value] | np.ndarray],
        scores: Iterable[float] | None = None,
        bins: int = 10,
        top_k: int | None = 50,
        sample_size: int | None = 1000,
        seed: int = 0,
    ) -> ReferenceProfile:
        """Profile column-oriented data (e.g. a DataFrame's ``dict(df.items())``)."""
        features: dict[str, FeatureProfile] = {}
        n = 0
        for i, (name, col) in enumerate(columns.items()):
            n = max(n, len(col))
            arr = np.asarray(col) if not isinstance(col, np.ndarray) else col
            if arr.dtype.kind in "fiu":
                numeric = True
            else:
                present = [v for v in arr.tolist() if category_key(v) is not None]
                numeric = bool(present) and all(_is_number(v) for v in present)
            if numeric:
                features[name] = NumericProfile.fit(
                    arr if arr.dtype.kind in "fiu" else list(col),
                    bins=bins,
                    sample_size=sample_size,
                    seed=seed + i,
                )
            else:
                features[name] = CategoricalProfile.fit(arr.tolist(), top_k=top_k)
        score = None
        if scores is not None:
            score = NumericProfile.fit(
                list(scores), bins=bins, sample_size=sample_size, seed=seed + len(columns)
            )
        return cls(features=features, score=score, n=n)

    @classmethod
    def from_window(cls, window: WindowSketches, top_k: int | None = 50) -> ReferenceProfile:
        """A profile of a closed window, to use an earlier window as the reference.

        Numeric features keep the window's bin edges (those of the profile the window
        was sketched against), so histograms stay comparable bin for bin.
        """
        features: dict[str, FeatureProfile] = {}
        for name, sketch in window.features.items():
            if isinstance(sketch, NumericSketch):
                if sketch.n:
                    features[name] = NumericProfile.from_sketch(sketch)
            else:
                features[name] = CategoricalProfile.from_counter(sketch, top_k=top_k)
        score = None
        if window.score is not None and window.score.n:
            score = NumericProfile.from_sketch(window.score)
        return cls(features=features, score=score, n=window.n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "features": {name: p.to_dict() for name, p in self.features.items()},
            "score": None if self.score is None else self.score.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        return cls(
            features={name: _feature_from_dict(p) for name, p in d["features"].items()},
            score=None if d.get("score") is None else NumericProfile.from_dict(d["score"]),
            n=int(d.get("n", 0)),
        )
