"""Bounded-memory summaries of one window.

Every sketch here has the same shape: ``update(x)`` for one value, ``update_many(xs)``
for a numpy batch (the fast path), ``merge(other)`` to combine two windows (a sliding
window is the merge of its panes), and ``to_dict()``/``from_dict()`` with JSON-safe
values so monitor state survives a restart. Missing values are ``None`` or ``NaN``;
they are counted, never binned.

"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = [
    "OTHER",
    "BinnedHistogram",
    "CategoryCounter",
    "Moments",
    "NumericSketch",
    "StreamingQuantiles",
    "WindowSketches",
    "as_float_array",
    "bin_indices",
    "category_key",
]

#: The bucket holding categories beyond a counter's (or a profile's) cap.
OTHER = "__other__"


def as_float_array(xs: Any) -> np.ndarray:
    """A float64 array with ``None`` turned into ``NaN`` (NumPy does that for us).

    >>> as_float_array([1, None, 2.5]).tolist()
    [1.0, nan, 2.5]

    """
    if isinstance(xs, np.ndarray) and xs.dtype == np.float64:
        return xs
    return np.array(xs, dtype=np.float64)


def bin_indices(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bin index of each value over `edges`, with an underflow and an overflow bin.

    Index 0 is underflow (``x < edges[0]``), ``1..B`` are the ``B = len(edges) - 1``
    bins ``[e[i-1], e[i])`` with the last one closed on the right so the reference's
    maximum lands inside, and ``B + 1`` is overflow (``x > edges[-1]``). Values must
    not be NaN.

    >>> bin_indices(np.array([0.0, 1.0, 2.0]), np.array([-1, 0, 0.5, 1, 2, 3])).tolist()
    [0, 1, 1, 2, 2, 3]

    """
    idx = np.searchsorted(edges, x, side="right")
    idx[x == edges[-1]] = len(edges) - 1
    return idx


class BinnedHistogram:
    """Counts over fixed bin edges (the reference's), plus underflow, overflow and missing.

    `counts` has ``len(edges) + 1`` cells: underflow, the bins, overflow (see
    :func:`bin_indices`). Because a reference's edges start at its minimum and end at
    its maximum, underflow + overflow is exactly the out-of-range count.

    >>> h = BinnedHistogram([0.0, 1.0, 2.0])
    >>> h.update_many([0.5, 1.5, 1.7, 9.0, None])
    >>> h.update(-3)
    >>> h.counts.tolist(), h.missing, h.n
    ([1, 1, 2, 1], 1, 5)

    """

    __slots__ = ("edges", "counts", "missing", "_edge_list")

    def __init__(self, edges: Sequence[float]) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or self.edges.size < 2:
            raise ValueError("a histogram needs at least two edges")
        if np.any(np.diff(self.edges) < 0):
            raise ValueError("histogram edges must be sorted")
        self._edge_list = self.edges.tolist()
        self.counts = np.zeros(self.edges.size + 1, dtype=np.int64)
        self.missing = 0

    @property
    def n(self) -> int:
        """Number of non-missing values."""
        return int(self.counts.sum())

    @property
    def underflow(self) -> int:
        return int(self.counts[0])

    @property
    def overflow(self) -> int:
        return int(self.counts[-1])

    def update(self, x: float | None) -> None:
        if x is None or x != x:
            self.missing += 1
            return
        i = bisect.bisect_right(self._edge_list, x)
        if x == self._edge_list[-1]:
            i -= 1
        self.counts[i] += 1

    def update_many(self, xs: Any) -> None:
        xs = as_float_array(xs)
        nan = np.isnan(xs)
        n_missing = int(nan.sum())
        self._update_valid(xs[~nan] if n_missing else xs, n_missing)

    def _update_valid(self, valid: np.ndarray, n_missing: int) -> None:
        self.missing += n_missing
        if valid.size:
            self.counts += np.bincount(bin_indices(self.edges, valid), minlength=self.counts.size)

    def merge(self, other: BinnedHistogram) -> BinnedHistogram:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge histograms over different edges")
        self.counts += other.counts
        self.missing += other.missing
        return self

    def copy(self) -> BinnedHistogram:
        return BinnedHistogram.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self._edge_list, "counts": self.counts.tolist(), "missing": self.missing}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BinnedHistogram:
        h = cls(d["edges"])
        h.counts = np.asarray(d["counts"], dtype=np.int64)
        h.missing = int(d["missing"])
        return h


def category_key(v: Any) -> str | None:
    """The string a categorical value is counted under; None when missing.

    Booleans become ``"true"``/``"false"`` (JSON spelling, so profiles read the same
    from any producer); everything else is ``str(v)``.

    >>> category_key(True), category_key("a"), category_key(3), category_key(None)
    ('true', 'a', '3', None)

    """
    if v is None:
        return None
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v != v:
        return None
    return str(v)


class CategoryCounter:
    """Category frequencies with a cap on distinct categories.

    Once `max_categories` distinct names are held, new names are counted under
    ``"__other__"``: first come, first kept. That bounds memory against a feature that
    turns out to be an id; the unseen-category check still sees the overflow.

    >>> c = CategoryCounter(max_categories=2)
    >>> c.update_many(["a", "b", "a", "c", None])
    >>> c.counts, c.missing
    ({'a': 2, 'b': 1, '__other__': 1}, 1)

    """

    __slots__ = ("max_categories", "counts", "missing")

    def __init__(self, max_categories: int = 1000) -> None:
        self.max_categories = max_categories
        self.counts: dict[str, int] = {}
        self.missing = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def _add(self, key: str, count: int) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += count
        elif len(counts) - (OTHER in counts) < self.max_categories:
            counts[key] = count
        else:
            counts[OTHER] = counts.get(OTHER, 0) + count

    def update(self, x: Any) -> None:
        key = category_key(x)
        if key is None:
            self.missing += 1
        else:
            self._add(key, 1)

    def update_many(self, xs: Iterable[Any]) -> None:
        tally = collections.Counter(map(category_key, xs))
        self.missing += tally.pop(None, 0)
        for key, count in tally.items():
            self._add(key, count)

    def merge(self, other: CategoryCounter) -> CategoryCounter:
        for key, count in other.counts.items():
            self._add(key, count)
        self.missing += other.missing
        return self

    def copy(self) -> CategoryCounter:
        return CategoryCounter.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_categories": self.max_categories,
            "counts": dict(self.counts),
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoryCounter:
        c = cls(d["max_categories"])
        c.counts = {str(k): int(v) for k, v in d["counts"].items()}
        c.missing = int(d["missing"])
        return c


_MASK64 = (1 << 64) - 1


def _coin(seed: int, i: int) -> int:
    # splitmix64 of (seed, i): a reproducible fair coin whose whole state is two ints,
    # so the sketch serialises to JSON and replays identically after a restart.
    z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & 1


class StreamingQuantiles:
    """A mergeable streaming quantile sketch: a KLL-style hierarchy of compactors.

    Level ``h`` holds items standing for ``2**h`` inputs each. When a level holds more
    than `k` items it is sorted and every other item (from a random offset) moves up
    one level. Each compaction moves any rank by at most ``2**h`` and is unbiased, so
    the normalised rank error is about ``1/k`` whatever the stream length, memory is
    ``k * log2(n / k)`` floats, and merging two sketches is concatenating levels and
    compacting. Until the first compaction (``n <= k``) the sketch is exact.

    Why not River's ``stats.Quantile`` (P²): it tracks one quantile per object, cannot
    be merged (sliding windows merge panes), cannot give a whole CDF (KS and Wasserstein
    need one), and updates one value at a time in Python. Why not a plain reservoir:
    its rank error shrinks as ``1/sqrt(size)``, this one as ``1/k``.

    >>> q = StreamingQuantiles(k=64)
    >>> q.update_many(np.arange(1, 10_001, dtype=float))
    >>> q.n, q.min, q.max
    (10000, 1.0, 10000.0)
    >>> abs(q.quantile(0.5) - 5000) < 250
    True
    >>> q.size <= 64 * 10
    True

    """

    __slots__ = ("k", "seed", "n", "min", "max", "_levels", "_buf", "_coins")

    def __init__(self, k: int = 256, seed: int = 0) -> None:
        if k < 2:
            raise ValueError("k must be at least 2")
        self.k = k
        self.seed = seed
        self.n = 0
        self.min = math.inf
        self.max = -math.inf
        self._levels: list[np.ndarray] = [np.empty(0)]
        self._buf: list[float] = []
        self._coins = 0

    @property
    def size(self) -> int:
        """Items held (memory), not inputs seen."""
        return sum(a.size for a in self._levels) + len(self._buf)

    @property
    def is_exact(self) -> bool:
        """True while nothing has been compacted: the items are the raw inputs."""
        return all(a.size == 0 for a in self._levels[1:])

    def update(self, x: float | None) -> None:
        if x is None or x != x:
            return
        self._buf.append(x)
        self.n += 1
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x
        if len(self._buf) >= self.k:
            self._flush()

    def update_many(self, xs: Any) -> None:
        xs = as_float_array(xs)
        xs = xs[~np.isnan(xs)]
        if xs.size:
            self._update_valid(xs)

    def _update_valid(self, xs: np.ndarray) -> None:
        self.n += xs.size
        self.min = min(self.min, float(xs.min()))
        self.max = max(self.max, float(xs.max()))
        if self._buf:
            # Single updates are level-0 items too: compact them with the batch, so
            # the state (and a restored copy of it) evolves the same way.
            self._levels[0] = np.concatenate((self._levels[0], self._buf, xs))
            self._buf = []
        else:
            self._levels[0] = np.concatenate((self._levels[0], xs))
        self._compress()

    def _flush(self) -> None:
        if self._buf:
            self._levels[0] = np.concatenate((self._levels[0], self._buf))
            self._buf = []
        self._compress()

    def _compress(self) -> None:
        levels = self._levels
        h = 0
        while h < len(levels):
            a = levels[h]
            if a.size > self.k:
                a = np.sort(a)
                even = a.size - (a.size & 1)
                up = a[_coin(self.seed, self._coins) : even : 2]
                self._coins += 1
                levels[h] = a[even:]
                if h + 1 == len(levels):
                    levels.append(up)
                else:
                    levels[h + 1] = np.concatenate((levels[h + 1], up))
            h += 1

    def weighted_items(self) -> tuple[np.ndarray, np.ndarray]:
        """The sketch as a weighted sample: sorted values and their weights (sum = n)."""
        self._flush()
        values = np.concatenate(self._levels)
        weights = np.concatenate([np.full(a.size, float(2**h)) for h, a in enumerate(self._levels)])
        order = np.argsort(values, kind="stable")
        return values[order], weights[order]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Inverted-CDF quantiles: the smallest item whose cumulative weight reaches q."""
        if self.n == 0:
            return [math.nan] * len(qs)
        values, weights = self.weighted_items()
        cum = np.cumsum(weights)
        idx = np.searchsorted(cum, np.asarray(qs, dtype=float) * cum[-1], side="left")
        out = values[np.clip(idx, 0, values.size - 1)]
        return np.clip(out, self.min, self.max).tolist()

    def quantile(self, q: float) -> float:
        return self.quantiles([q])[0]

    def cdf(self, x: float) -> float:
        """Estimated fraction of inputs ``<= x``."""
        if self.n == 0:
            return math.nan
        values, weights = self.weighted_items()
        return float(weights[: np.searchsorted(values, x, side="right")].sum() / self.n)

    def merge(self, other: StreamingQuantiles) -> StreamingQuantiles:
        self._flush()
        other_levels = list(other._levels)
        if other._buf:
            other_levels[0] = np.concatenate((other_levels[0], other._buf))
        for h, a in enumerate(other_levels):
            if h == len(self._levels):
                self._levels.append(a.copy())
            else:
                self._levels[h] = np.concatenate((self._levels[h], a))
        self.n += other.n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self._compress()
        return self

    def copy(self) -> StreamingQuantiles:
        return StreamingQuantiles.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        levels = [a.tolist() for a in self._levels]
        levels[0].extend(self._buf)
        return {
            "k": self.k,
            "seed": self.seed,
            "n": self.n,
            "min": None if self.n == 0 else self.min,
            "max": None if self.n == 0 else self.max,
            "coins": self._coins,
            "levels": levels,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StreamingQuantiles:
        q = cls(d["k"], d["seed"])
        q.n = int(d["n"])
        if q.n:
            q.min, q.max = float(d["min"]), float(d["max"])
        q._coins = int(d["coins"])
        q._levels = [np.asarray(a, dtype=np.float64) for a in d["levels"]] or [np.empty(0)]
        return q


class Moments:
    """Count, mean and variance, mergeable (Chan et al.'s parallel update).

    >>> m = Moments()
    >>> m.update_many([1.0, 2.0, 3.0, None])
    >>> m.update(4.0)
    >>> m.n, m.mean, round(m.std, 6)
    (4, 2.5, 1.118034)

    """

    __slots__ = ("n", "mean", "m2")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    @property
    def var(self) -> float:
        """Population variance (ddof=0), the convention drift normalisation uses."""
        return self.m2 / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.n else math.nan

    def update(self, x: float | None) -> None:
        if x is None or x != x:
            return
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def update_many(self, xs: Any) -> None:
        xs = as_float_array(xs)
        self._update_valid(xs[~np.isnan(xs)])

    def _update_valid(self, xs: np.ndarray) -> None:
        if xs.size:
            mean = float(xs.mean())
            self._combine(xs.size, mean, float(((xs - mean) ** 2).sum()))

    def _combine(self, n: int, mean: float, m2: float) -> None:
        total = self.n + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.n * n / total
        self.mean += delta * n / total
        self.n = total

    def merge(self, other: Moments) -> Moments:
        if other.n:
            self._combine(other.n, other.mean, other.m2)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Moments:
        m = cls()
        m.n, m.mean, m.m2 = int(d["n"]), float(d["mean"]), float(d["m2"])
        return m


class NumericSketch:
    """Everything a window keeps about one numeric column: histogram, quantiles, moments.

    The histogram (over the reference's edges) feeds PSI, Jensen-Shannon, chi-square
    and the out-of-range check; the quantile sketch feeds KS and Wasserstein; the
    moments give mean and std for a profile built from this window.

    >>> s = NumericSketch([0.0, 1.0, 2.0])
    >>> s.update_many(np.array([0.1, 0.2, np.nan, 5.0]))
    >>> s.n, s.missing, s.histogram.overflow, round(s.moments.mean, 4)
    (3, 1, 1, 1.7667)

    """

    __slots__ = ("histogram", "quantiles", "moments")

    def __init__(self, edges: Sequence[float], k: int = 256, seed: int = 0) -> None:
        self.histogram = BinnedHistogram(edges)
        self.quantiles = StreamingQuantiles(k, seed)
        self.moments = Moments()

    @property
    def n(self) -> int:
        return self.quantiles.n

    @property
    def missing(self) -> int:
        return self.histogram.missing

    def update(self, x: float | None) -> None:
        self.histogram.update(x)
        self.quantiles.update(x)
        self.moments.update(x)

    def update_many(self, xs: Any) -> None:
        xs = as_float_array(xs)
        nan = np.isnan(xs)
        n_missing = int(nan.sum())
        valid = xs[~nan] if n_missing else xs
        self.histogram._update_valid(valid, n_missing)
        if valid.size:
            self.quantiles._update_valid(valid)
            self.moments._update_valid(valid)

    def merge(self, other: NumericSketch) -> NumericSketch:
        self.histogram.merge(other.histogram)
        self.quantiles.merge(other.quantiles)
        self.moments.merge(other.moments)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "histogram": self.histogram.to_dict(),
            "quantiles": self.quantiles.to_dict(),
            "moments": self.moments.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericSketch:
        s = cls.__new__(cls)
        s.histogram = BinnedHistogram.from_dict(d["histogram"])
        s.quantiles = StreamingQuantiles.from_dict(d["quantiles"])
        s.moments = Moments.from_dict(d["moments"])
        return s


class WindowSketches(Protocol):
    """The sketches of one window as a profile is cut from them
    (:meth:`monitors.profile.ReferenceProfile.from_window`): one per feature, the score's
    (None: not sketched), and how many predictions went in.

    :class:`monitors.aggregate.PredictionSketch` is one. The protocol lives here, beside the
    sketches it names, so that ``monitors.profile`` need not import ``monitors.aggregate``
    (which imports the profile).
    """

    @property
    def features(self) -> Mapping[str, NumericSketch | CategoryCounter]: ...

    @property
    def score(self) -> NumericSketch | None: ...

    @property
    def n(self) -> int: ...
