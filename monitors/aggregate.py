"""One window's state for a stream of predictions: per-feature sketches, score, latency.

This is what a window holds (see :mod:`monitors.windows`): bounded whatever the
window's length, mergeable (sliding windows merge panes), JSON-serialisable. Drift
statistics (:mod:`monitors.drift`) and data-quality checks (:mod:`monitors.quality`)
are computed from it when the window closes.

A prediction is a mapping shaped like a ``scoring.predictions`` record: ``features``
(name to number/string/bool/None), ``score`` and ``latency`` (seconds), the last two
optional. The fast path takes a :class:`PredictionBatch` of columns.

"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from monitors.profile import NumericProfile, ReferenceProfile
from monitors.sketches import CategoryCounter, NumericSketch, StreamingQuantiles

__all__ = ["PredictionBatch", "PredictionSketch"]


def _to_float(v: Any) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    # A string or bool where the reference saw numbers: counted as missing.
    return float("nan")


_NUMBER_TYPES = {float, int, type(None)}


def _float_column(values: list[Any]) -> np.ndarray:
    # NumPy would also take bools and numeric strings; here they are type errors,
    # counted as missing, so check the types before the fast conversion.
    if set(map(type, values)) <= _NUMBER_TYPES:
        return np.array(values, dtype=np.float64)
    return np.array([_to_float(v) for v in values], dtype=np.float64)


@dataclasses.dataclass
class PredictionBatch:
    """A batch of predictions as columns: the fast path into a window.

    `features` maps a feature to an array: float64 (NaN = missing) for numeric features,
    object for categorical ones. `score` and `latency` are float arrays or None.

    >>> ref = ReferenceProfile.fit([{"x": 1.0, "c": "a"}, {"x": 2.0, "c": "b"}])
    >>> b = PredictionBatch.from_records(
    ...     [{"features": {"x": 1.5, "c": "a"}, "score": 0.2, "latency": 0.01},
    ...      {"features": {"x": None}, "score": 0.9, "latency": 0.02}], ref)
    >>> len(b), b.features["x"].tolist(), b.features["c"].tolist()
    (2, [1.5, nan], ['a', None])
    >>> PredictionBatch.from_records([{"features": {"x": "7"}}, {"features": {"x": True}}],
    ...                              ref).features["x"].tolist()   # wrong types: missing
    [nan, nan]
    >>> len(b.take(np.array([1])))
    1

    """

    features: dict[str, np.ndarray]
    score: np.ndarray | None = None
    latency: np.ndarray | None = None

    def __len__(self) -> int:
        for col in (self.score, self.latency, *self.features.values()):
            if col is not None:
                return len(col)
        return 0

    def take(self, idx: Any) -> PredictionBatch:
        """The rows at `idx` (an index array or a boolean mask)."""
        return PredictionBatch(
            {k: v[idx] for k, v in self.features.items()},
            None if self.score is None else self.score[idx],
            None if self.latency is None else self.latency[idx],
        )

    @classmethod
    def from_records(
        cls, records: Sequence[Mapping[str, Any]], profile: ReferenceProfile
    ) -> PredictionBatch:
        """Columns of the profile's features from prediction records."""
        feats = [r.get("features") or {} for r in records]
        columns: dict[str, np.ndarray] = {}
        for name, p in profile.features.items():
            values = [f.get(name) for f in feats]
            if p.kind == "numeric":
                columns[name] = _float_column(values)
            else:
                col = np.empty(len(values), dtype=object)
                col[:] = values
                columns[name] = col
        score = _float_column([r.get("score") for r in records])
        latency = _float_column([r.get("latency") for r in records])
        return cls(columns, score, latency)


class PredictionSketch:
    """Sketches of one window of predictions for one (model, version, segment).

    Numeric features get a :class:`NumericSketch` over the reference's bin edges,
    categorical ones a :class:`CategoryCounter`; the score gets a NumericSketch over the
    reference score's edges (``[0, 1]`` when the profile has no score); latency a
    :class:`StreamingQuantiles`. Features the reference does not know are ignored.

    >>> ref = ReferenceProfile.fit([{"x": float(i), "c": "ab"[i % 2]} for i in range(100)])
    >>> s = PredictionSketch(ref)
    >>> s.update({"features": {"x": 500.0, "c": "z"}, "score": 0.7, "latency": 0.004})
    >>> s.n, s.features["x"].histogram.overflow, s.features["c"].counts
    (1, 1, {'z': 1})
    >>> PredictionSketch.from_dict(s.to_dict()).to_dict() == s.to_dict()
    True

    """

    def __init__(
        self,
        profile: ReferenceProfile,
        k: int = 256,
        max_categories: int = 1000,
        seed: int = 0,
    ) -> None:
        self.features: dict[str, NumericSketch | CategoryCounter] = {}
        for i, (name, p) in enumerate(profile.features.items()):
            if isinstance(p, NumericProfile):
                self.features[name] = p.new_sketch(k=k, seed=seed + i)
            else:
                self.features[name] = p.new_sketch(max_categories=max_categories)
        edges = profile.score.edges if profile.score is not None else [0.0, 1.0]
        self.score = NumericSketch(edges, k=k, seed=seed - 1)
        self.latency = StreamingQuantiles(k=k, seed=seed - 2)
        self.n = 0

    def update(self, x: Mapping[str, Any]) -> None:
        """Add one prediction record."""
        self.n += 1
        values = x.get("features") or {}
        for name, sketch in self.features.items():
            v = values.get(name)
            if v is not None and isinstance(sketch, NumericSketch) and type(v) not in (float, int):
                v = _to_float(v)
            sketch.update(v)
        self.score.update(x.get("score"))
        self.latency.update(x.get("latency"))

    def update_many(self, batch: PredictionBatch) -> None:
        """Add a batch of predictions (columns)."""
        n = len(batch)
        self.n += n
        for name, sketch in self.features.items():
            col = batch.features.get(name)
            if col is None:
                col = np.full(n, np.nan) if isinstance(sketch, NumericSketch) else [None] * n
            sketch.update_many(col)
        if batch.score is not None:
            self.score.update_many(batch.score)
        if batch.latency is not None:
            self.latency.update_many(batch.latency)

    def merge(self, other: PredictionSketch) -> PredictionSketch:
        for name, sketch in self.features.items():
            sketch.merge(other.features[name])  # type: ignore[arg-type]
        self.score.merge(other.score)
        self.latency.merge(other.latency)
        self.n += other.n
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "features": {
                name: {
                    "kind": "numeric" if isinstance(s, NumericSketch) else "categorical",
                    "sketch": s.to_dict(),
                }
                for name, s in self.features.items()
            },
            "score": self.score.to_dict(),
            "latency": self.latency.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictionSketch:
        s = cls.__new__(cls)
        s.n = int(d["n"])
        s.features = {
            name: (NumericSketch if f["kind"] == "numeric" else CategoryCounter).from_dict(
                f["sketch"]
            )
            for name, f in d["features"].items()
        }
        s.score = NumericSketch.from_dict(d["score"])
        s.latency = StreamingQuantiles.from_dict(d["latency"])
        return s
