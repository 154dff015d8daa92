"""Drift statistics: how far a window's distribution is from the reference.

Each statistic is a small class built on a reference (a profile from
:mod:`monitors.profile`, or raw reference values) with the same protocol:
``update(x)`` / ``update_many(xs)`` feed the current window, ``get()`` returns the
statistic, and ``evaluate(sketch)`` computes it straight from a pre-aggregated window
sketch (what the monitor role does: it never keeps raw rows).

Conventions
-----------
Binning
    PSI, Jensen-Shannon and chi-square compare counts over the reference's bins. For a
    numeric feature those are the profile's quantile bins (``bins`` of them, 10 by
    default, see :mod:`monitors.profile`) plus an underflow and an overflow bin, which
    are empty in the reference. For a categorical feature they are the reference's named
    categories plus ``__other__``; a window's categories that the reference does not
    name all land in ``__other__``.
Empty bins
    PSI replaces a zero proportion (either side) by ``EPSILON = 1e-4`` and does not
    renormalise, Evidently's convention, so a bin empty in the reference but not in the
    window costs a large but finite amount. Jensen-Shannon needs no smoothing (it is
    finite with empty bins). Chi-square drops bins empty on both sides.
PSI
    ``sum((q - p) * ln(q / p))`` with p the reference and q the window proportions.
Jensen-Shannon
    The distance (square root of the divergence) in base 2, so in ``[0, 1]``, as
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. (Evidently uses base e;
    its 0.1 threshold is kept.)
Wasserstein
    The 1-Wasserstein distance between the reference sample and the window, divided by
    the reference's population standard deviation (floored at 0.001), Evidently's
    normalisation: 0.1 means the mass moved by a tenth of a standard deviation on average.
Kolmogorov-Smirnov
    The two-sample statistic ``sup |F_ref - F_cur|`` on the reference sample and the
    window, and the asymptotic two-sided p-value scipy uses for large samples,
    ``kstwo.sf(D, round(m * n / (m + n)))``, with m the reference sample's size.
Chi-square
    The test of homogeneity on the 2 x K contingency table (reference counts, window
    counts), i.e. ``scipy.stats.chi2_contingency(table, correction=False)``: unlike the
    goodness-of-fit form it treats the reference as a sample too, and a category new in
    the window does not make the statistic infinite.

On a window sketch, PSI, Jensen-Shannon and chi-square are exact (histograms count
exactly); KS and Wasserstein use the quantile sketch's weighted items, exact while the
window holds at most ``k`` values and within about ``1/k`` in rank after that (the tests
state the tolerance).

"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from scipy import stats as _stats

from monitors.profile import CategoricalProfile, NumericProfile
from monitors.sketches import (
    OTHER,
    BinnedHistogram,
    CategoryCounter,
    NumericSketch,
    StreamingQuantiles,
    as_float_array,
)

__all__ = [
    "EPSILON",
    "STATISTICS",
    "ChiSquare",
    "DriftMethod",
    "DriftPolicy",
    "DriftScore",
    "DriftStatistic",
    "JensenShannon",
    "KolmogorovSmirnov",
    "PSI",
    "Wasserstein",
    "chi_square",
    "default_statistic",
    "jensen_shannon",
    "ks_p_value",
    "ks_statistic",
    "psi",
    "wasserstein",
]

#: What a zero proportion becomes in PSI.
EPSILON = 1e-4
#: Wasserstein's normaliser never goes below this (a constant reference feature).
MIN_STD = 1e-3


# -- formulas on counts and weighted samples --------------------------------------------


def _proportions(counts: Any) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else np.zeros_like(c)


def psi(reference_counts: Any, current_counts: Any, eps: float = EPSILON) -> float:
    """Population stability index over aligned bins.

    >>> round(psi([50, 50], [50, 50]), 6), round(psi([90, 10], [50, 50]), 4)
    (0.0, 0.8789)

    """
    p = _proportions(reference_counts)
    q = _proportions(current_counts)
    p = np.where(p == 0, eps, p)
    q = np.where(q == 0, eps, q)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference_counts: Any, current_counts: Any) -> float:
    """Jensen-Shannon distance, base 2, between two count vectors over aligned bins.

    >>> jensen_shannon([1, 0], [0, 1]), jensen_shannon([3, 1], [6, 2])
    (1.0, 0.0)

    """
    p = _proportions(reference_counts)
    q = _proportions(current_counts)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def _ecdf(values: np.ndarray, weights: np.ndarray, at: np.ndarray) -> np.ndarray:
    cum = np.concatenate(([0.0], np.cumsum(weights)))
    return cum[np.searchsorted(values, at, side="right")] / cum[-1]


def ks_statistic(
    x: np.ndarray, y: np.ndarray, wx: np.ndarray | None = None, wy: np.ndarray | None = None
) -> float:
    """Two-sample KS statistic between (weighted) samples; `x` and `y` sorted.

    >>> ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([2.5, 3.5, 4.5]))
    0.6666666666666667

    """
    wx = np.ones(x.size) if wx is None else wx
    wy = np.ones(y.size) if wy is None else wy
    at = np.concatenate((x, y))
    return float(np.max(np.abs(_ecdf(x, wx, at) - _ecdf(y, wy, at))))


def ks_p_value(d: float, n1: int, n2: int) -> float:
    """Asymptotic two-sided p-value of a two-sample KS statistic (scipy's 'asymp')."""
    en = n1 * n2 / (n1 + n2)
    return float(np.clip(_stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def wasserstein(
    x: np.ndarray, y: np.ndarray, wx: np.ndarray | None = None, wy: np.ndarray | None = None
) -> float:
    """1-Wasserstein distance between (weighted) samples; `x` and `y` sorted.

    The integral of ``|F_x - F_y|`` over the merged support, as scipy computes it.

    >>> wasserstein(np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    1.0

    """
    wx = np.ones(x.size) if wx is None else wx
    wy = np.ones(y.size) if wy is None else wy
    at = np.sort(np.concatenate((x, y)), kind="mergesort")
    deltas = np.diff(at)
    fx = _ecdf(x, wx, at[:-1])
    fy = _ecdf(y, wy, at[:-1])
    return float(np.sum(np.abs(fx - fy) * deltas))


def chi_square(reference_counts: Any, current_counts: Any) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count vectors: (statistic, p-value, dof).

    Bins empty on both sides are dropped; with fewer than two bins left, or an empty
    side, there is nothing to test and the result is ``(0.0, 1.0, 0)``.

    >>> stat, p, dof = chi_square([100, 100], [100, 100])
    >>> stat, p, dof
    (0.0, 1.0, 1)

    """
    table = np.vstack((np.asarray(reference_counts), np.asarray(current_counts))).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0, 0
    expected = np.outer(rows, table.sum(axis=0)) / rows.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return stat, float(_stats.chi2.sf(stat, dof)), dof


# -- the statistic classes ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DriftScore:
    """A statistic's value, and its p-value for the statistics that are tests."""

    statistic: float
    p_value: float | None = None


Reference = NumericProfile | CategoricalProfile


def _as_profile(reference: Any, bins: int) -> Reference:
    if isinstance(reference, NumericProfile | CategoricalProfile):
        return reference
    values = list(reference) if not isinstance(reference, np.ndarray) else reference
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return NumericProfile.fit(values, bins=bins, sample_size=None)
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return NumericProfile.fit(values, bins=bins, sample_size=None)
    return CategoricalProfile.fit(values, top_k=None)


class DriftStatistic:
    """Base of the drift statistics: a reference, and the current window's sketch.

    Subclasses set `name` and implement ``evaluate(sketch)``. `reference` is a
    :class:`NumericProfile` / :class:`CategoricalProfile`, or raw reference values, which
    are profiled whole (no sampling) with `bins` quantile bins.

    """

    name: ClassVar[str] = ""
    #: True for hypothesis tests: drift is a small p-value, not a large statistic.
    is_test: ClassVar[bool] = False

    def __init__(self, reference: Any, bins: int = 10, k: int = 256) -> None:
        self.reference = _as_profile(reference, bins)
        self.k = k
        self._sketch = self._new_sketch()

    def _new_sketch(self) -> Any:
        raise NotImplementedError

    def update(self, x: Any) -> None:
        """Add one value of the current window."""
        self._sketch.update(x)

    def update_many(self, xs: Any) -> None:
        """Add a batch of values of the current window."""
        self._sketch.update_many(xs)

    def reset(self) -> None:
        """Start a new window."""
        self._sketch = self._new_sketch()

    def evaluate(self, sketch: Any = None) -> DriftScore:
        """The statistic on `sketch` (a window sketch), or on what was fed by update."""
        raise NotImplementedError

    def get(self) -> float:
        return self.evaluate().statistic

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.get():.6f}"


class _BinnedStatistic(DriftStatistic):
    def __init__(self, reference: Any, bins: int = 10, k: int = 256) -> None:
        super().__init__(reference, bins, k)
        ref = self.reference
        if isinstance(ref, NumericProfile):
            self._ref_counts = np.asarray(ref.counts, dtype=np.float64)
        else:
            self._names = ref.categories
            self._ref_counts = np.asarray(
                [ref.counts[c] for c in self._names] + [ref.counts.get(OTHER, 0)], dtype=np.float64
            )

    def _new_sketch(self) -> Any:
        if isinstance(self.reference, NumericProfile):
            return BinnedHistogram(self.reference.edges)
        return CategoryCounter()

    def counts(self, sketch: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Reference and window counts over the aligned bins."""
        sketch = self._sketch if sketch is None else sketch
        if isinstance(sketch, NumericSketch):
            sketch = sketch.histogram
        if isinstance(sketch, BinnedHistogram):
            if sketch.counts.size != self._ref_counts.size:
                raise ValueError("the histogram is not over the reference's bins")
            return self._ref_counts, sketch.counts.astype(np.float64)
        if isinstance(sketch, CategoryCounter):
            if isinstance(self.reference, NumericProfile):
                raise TypeError("a numeric reference needs a histogram, not a category counter")
            named = [sketch.counts.get(c, 0) for c in self._names]
            rest = sketch.n - sum(named)
            return self._ref_counts, np.asarray(named + [rest], dtype=np.float64)
        raise TypeError(f"cannot compute {self.name} from {type(sketch).__name__}")


class PSI(_BinnedStatistic):
    """Population stability index over the reference's bins (see the module notes).

    >>> ref = np.random.default_rng(0).normal(size=5000)
    >>> stat = PSI(ref, bins=10)
    >>> stat.update_many(np.random.default_rng(1).normal(0.5, 1, size=5000))
    >>> round(stat.get(), 2)
    0.23

    """

    name = "psi"

    def evaluate(self, sketch: Any = None) -> DriftScore:
        return DriftScore(psi(*self.counts(sketch)))


class JensenShannon(_BinnedStatistic):
    """Jensen-Shannon distance (base 2) over the reference's bins or categories.

    >>> js = JensenShannon(["a"] * 50 + ["b"] * 50)
    >>> js.update_many(["a"] * 90 + ["b"] * 10)
    >>> round(js.get(), 4)
    0.3831

    """

    name = "jensen_shannon"

    def evaluate(self, sketch: Any = None) -> DriftScore:
        return DriftScore(jensen_shannon(*self.counts(sketch)))


class ChiSquare(_BinnedStatistic):
    """Chi-square test of homogeneity, reference vs window (categories or numeric bins).

    >>> chi = ChiSquare(["a"] * 50 + ["b"] * 50)
    >>> chi.update_many(["a"] * 90 + ["b"] * 10)
    >>> score = chi.evaluate()
    >>> round(score.statistic, 3), score.p_value < 0.05
    (38.095, True)

    """

    name = "chi_square"
    is_test = True

    def evaluate(self, sketch: Any = None) -> DriftScore:
        stat, p, _ = chi_square(*self.counts(sketch))
        return DriftScore(stat, p)


class _SampleStatistic(DriftStatistic):
    def __init__(self, reference: Any, bins: int = 10, k: int = 256) -> None:
        super().__init__(reference, bins, k)
        ref = self.reference
        if not isinstance(ref, NumericProfile):
            raise TypeError(f"{type(self).__name__} needs a numeric reference")
        self._ref_values = np.asarray(ref.sample, dtype=np.float64)
        order = np.argsort(self._ref_values, kind="stable")
        self._ref_values = self._ref_values[order]
        self._ref_weights = (
            np.ones(self._ref_values.size)
            if ref.sample_weights is None
            else np.asarray(ref.sample_weights, dtype=np.float64)[order]
        )

    def _new_sketch(self) -> StreamingQuantiles:
        return StreamingQuantiles(self.k)

    def _current(self, sketch: Any) -> tuple[np.ndarray, np.ndarray, int]:
        sketch = self._sketch if sketch is None else sketch
        if isinstance(sketch, NumericSketch):
            sketch = sketch.quantiles
        if isinstance(sketch, StreamingQuantiles):
            values, weights = sketch.weighted_items()
            return values, weights, sketch.n
        xs = as_float_array(sketch)
        xs = np.sort(xs[~np.isnan(xs)])
        return xs, np.ones(xs.size), xs.size


class KolmogorovSmirnov(_SampleStatistic):
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value.

    >>> ks = KolmogorovSmirnov(np.arange(100.0))
    >>> ks.update_many(np.arange(50.0, 150.0))
    >>> score = ks.evaluate()
    >>> score.statistic, score.p_value < 1e-4
    (0.5, True)

    """

    name = "ks"
    is_test = True

    def evaluate(self, sketch: Any = None) -> DriftScore:
        values, weights, n = self._current(sketch)
        if n == 0:
            return DriftScore(math.nan, math.nan)
        d = ks_statistic(self._ref_values, values, self._ref_weights, weights)
        return DriftScore(d, ks_p_value(d, self.reference.sample_n, n))


class Wasserstein(_SampleStatistic):
    """1-Wasserstein distance divided by the reference's standard deviation.

    >>> w = Wasserstein(np.array([0.0, 2.0]))   # std 1
    >>> w.update_many([1.0, 3.0])
    >>> w.get()
    1.0

    """

    name = "wasserstein"

    def evaluate(self, sketch: Any = None) -> DriftScore:
        values, weights, n = self._current(sketch)
        if n == 0:
            return DriftScore(math.nan)
        norm = max(self.reference.std, MIN_STD)
        return DriftScore(wasserstein(self._ref_values, values, self._ref_weights, weights) / norm)


#: Statistic classes by name; these names are the `metric` of drift metric values.
STATISTICS: dict[str, type[DriftStatistic]] = {
    cls.name: cls for cls in (PSI, KolmogorovSmirnov, Wasserstein, JensenShannon, ChiSquare)
}
#: Which statistics apply to which kind of feature.
APPLICABLE: dict[str, tuple[str, ...]] = {
    "numeric": ("psi", "ks", "wasserstein", "jensen_shannon", "chi_square"),
    "categorical": ("psi", "jensen_shannon", "chi_square"),
}


# -- the decision policy -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DriftMethod:
    """A statistic and its threshold: drift when statistic >= threshold, or, for a test,
    when p-value < threshold.

    >>> DriftMethod("wasserstein", 0.1).is_drift(DriftScore(0.12))
    True
    >>> DriftMethod("ks", 0.05).is_drift(DriftScore(0.3, p_value=0.2))
    False

    """

    statistic: str
    threshold: float

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(
                f"unknown drift statistic {self.statistic!r}; one of {list(STATISTICS)}"
            )

    @property
    def is_test(self) -> bool:
        return STATISTICS[self.statistic].is_test

    def is_drift(self, score: DriftScore) -> bool:
        if self.is_test:
            return score.p_value is not None and score.p_value < self.threshold
        return score.statistic >= self.threshold


#: Above this many rows in the window, use distances; at or below, p-value tests.
LARGE_WINDOW = 1000


def default_statistic(feature_kind: str, window_size: int) -> DriftMethod:
    """Evidently's defaults: distances on large windows, tests on small ones.

    On more than 1,000 rows every test rejects on differences too small to matter, so
    large windows use a distance with a threshold: normalised Wasserstein >= 0.1 for
    numeric features, Jensen-Shannon >= 0.1 for categorical ones. Small windows use KS
    (numeric) or chi-square (categorical) at p < 0.05.

    >>> default_statistic("numeric", 5000)
    DriftMethod(statistic='wasserstein', threshold=0.1)
    >>> default_statistic("categorical", 200)
    DriftMethod(statistic='chi_square', threshold=0.05)

    """
    if feature_kind not in APPLICABLE:
        raise ValueError(f"unknown feature kind {feature_kind!r}")
    if window_size > LARGE_WINDOW:
        if feature_kind == "numeric":
            return DriftMethod("wasserstein", 0.1)
        return DriftMethod("jensen_shannon", 0.1)
    if feature_kind == "numeric":
        return DriftMethod("ks", 0.05)
    return DriftMethod("chi_square", 0.05)


class DriftPolicy:
    """Which statistic decides drift for each feature: the default, or a per-feature override.

    >>> policy = DriftPolicy({"plan": DriftMethod("psi", 0.2)})
    >>> policy.method("plan", "categorical", 5000)
    DriftMethod(statistic='psi', threshold=0.2)
    >>> policy.method("age", "numeric", 5000).statistic
    'wasserstein'
    >>> DriftPolicy.from_dict(policy.to_dict()).method("plan", "categorical", 10).statistic
    'psi'

    """

    def __init__(self, overrides: Mapping[str, DriftMethod] | None = None) -> None:
        self.overrides = dict(overrides or {})

    def method(self, feature: str, kind: str, window_size: int) -> DriftMethod:
        return self.overrides.get(feature) or default_statistic(kind, window_size)

    def to_dict(self) -> dict[str, Any]:
        return {f: dataclasses.asdict(m) for f, m in self.overrides.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> DriftPolicy:
        return cls({f: DriftMethod(m["statistic"], float(m["threshold"])) for f, m in d.items()})
