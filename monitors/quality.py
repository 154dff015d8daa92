"""Data quality of one window: missing values, out-of-range values, unseen categories,
dead letters, latency and throughput.

Everything is read off the window's sketches (:class:`~monitors.aggregate.PredictionSketch`)
against the reference profile, so a window never keeps rows. Out of range means outside
the reference's ``[min, max]``: since a numeric profile's first and last bin edges are
its min and max, that is the histogram's underflow plus overflow, exactly. Unseen means
not among the reference's *named* categories; with a capped reference (``top_k``) a
rare training category also counts as unseen.

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from monitors.aggregate import PredictionSketch
from monitors.events import Measure
from monitors.profile import CategoricalProfile, ReferenceProfile
from monitors.sketches import (
    OTHER,
    BinnedHistogram,
    CategoryCounter,
    NumericSketch,
    StreamingQuantiles,
)

__all__ = [
    "DeadLetterCounter",
    "dead_letter_rate",
    "latency_quantiles",
    "missing_rate",
    "out_of_range_rate",
    "quality_metrics",
    "throughput",
    "unseen_categories",
    "unseen_category_rate",
]


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def missing_rate(sketch: NumericSketch | CategoryCounter | BinnedHistogram) -> float:
    """Missing values over all values of the window (NaN on an empty window).

    >>> c = CategoryCounter()
    >>> c.update_many(["a", None, "b", None])
    >>> missing_rate(c)
    0.5

    """
    return _ratio(sketch.missing, sketch.n + sketch.missing)


def out_of_range_rate(sketch: NumericSketch | BinnedHistogram) -> float:
    """Fraction of non-missing values outside the reference's ``[min, max]``.

    >>> h = BinnedHistogram([0.0, 5.0, 10.0])
    >>> h.update_many([-1.0, 3.0, 10.0, 11.0])
    >>> out_of_range_rate(h)
    0.5

    """
    h = sketch.histogram if isinstance(sketch, NumericSketch) else sketch
    return _ratio(h.underflow + h.overflow, h.n)


def unseen_categories(counter: CategoryCounter, reference: CategoricalProfile) -> dict[str, int]:
    """Window categories (with counts) that the reference does not name.

    ``__other__`` in the window (categories beyond the counter's cap) is reported as is.

    >>> ref = CategoricalProfile.fit(["a", "b"])
    >>> c = CategoryCounter()
    >>> c.update_many(["a", "z", "z"])
    >>> unseen_categories(c, ref)
    {'z': 2}

    """
    known = reference.counts
    return {k: v for k, v in counter.counts.items() if k == OTHER or k not in known}


def unseen_category_rate(counter: CategoryCounter, reference: CategoricalProfile) -> float:
    """Fraction of the window's non-missing values in unseen categories."""
    return _ratio(sum(unseen_categories(counter, reference).values()), counter.n)


def latency_quantiles(
    sketch: StreamingQuantiles, qs: Iterable[float] = (0.5, 0.99)
) -> dict[str, float]:
    """Latency quantiles named ``latency_p50``, ``latency_p99``, ...

    >>> q = StreamingQuantiles()
    >>> q.update_many([0.01 * i for i in range(1, 101)])
    >>> latency_quantiles(q)
    {'latency_p50': 0.5, 'latency_p99': 0.99}

    """
    qs = list(qs)
    return {
        f"latency_p{round(q * 100):d}": v for q, v in zip(qs, sketch.quantiles(qs), strict=True)
    }


def throughput(n: int, start: float, end: float) -> float:
    """Events per second over ``[start, end)``."""
    return _ratio(n, end - start)


def dead_letter_rate(dead_letters: int, processed: int) -> float:
    """Dead letters over everything that came in (dead letters plus processed events)."""
    return _ratio(dead_letters, dead_letters + processed)


class DeadLetterCounter:
    """Dead letters per stage in a window; a window state like the sketches.

    ``update`` takes a ``scoring.dlq`` record (its ``stage``) or a stage name.

    >>> c = DeadLetterCounter()
    >>> c.update({"stage": "decode"}); c.update("score"); c.update("decode")
    >>> c.counts, c.n
    ({'decode': 2, 'score': 1}, 3)

    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def update(self, x: Mapping[str, Any] | str) -> None:
        stage = x if isinstance(x, str) else str(x.get("stage") or "unknown")
        self.counts[stage] = self.counts.get(stage, 0) + 1

    def update_many(self, xs: Iterable[Mapping[str, Any] | str]) -> None:
        for x in xs:
            self.update(x)

    def merge(self, other: DeadLetterCounter) -> DeadLetterCounter:
        for stage, count in other.counts.items():
            self.counts[stage] = self.counts.get(stage, 0) + count
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DeadLetterCounter:
        c = cls()
        c.counts = {str(k): int(v) for k, v in d["counts"].items()}
        return c


def quality_metrics(
    window: PredictionSketch, reference: ReferenceProfile, start: float, end: float
) -> list[Measure]:
    """The data-quality measures of a closed window.

    Per feature: ``missing_rate``; numeric: ``out_of_range_rate``; categorical:
    ``unseen_category_rate``. For the model: ``count``, ``throughput`` (events/s),
    ``latency_p50`` and ``latency_p99`` (when latencies were recorded). Undefined values
    (an all-missing feature's out-of-range rate) are left out.
    """
    out: list[Measure] = [
        Measure("count", None, float(window.n), window.n),
        Measure("throughput", None, throughput(window.n, start, end), window.n),
    ]
    for name, sketch in window.features.items():
        total = sketch.n + sketch.missing
        out.append(Measure("missing_rate", name, missing_rate(sketch), total))
        if isinstance(sketch, NumericSketch):
            out.append(Measure("out_of_range_rate", name, out_of_range_rate(sketch), sketch.n))
        else:
            ref = reference.features.get(name)
            if isinstance(ref, CategoricalProfile):
                rate = unseen_category_rate(sketch, ref)
                out.append(Measure("unseen_category_rate", name, rate, sketch.n))
    if window.latency.n:
        for metric, value in latency_quantiles(window.latency).items():
            out.append(Measure(metric, None, value, window.latency.n))
    return [m for m in out if not math.isnan(m.value)]
