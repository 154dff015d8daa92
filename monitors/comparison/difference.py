"""Differences of means between a champion and a challenger, with their confidence
sequence: on different requests (a traffic split) or on the same ones (a shadow).

The lift is signed so that positive means the challenger is better: challenger minus
champion for a metric where higher is better (accuracy), champion minus challenger for a
loss. The decision reads the sequence at `alpha`: ``challenger_better`` when its lower
bound is above 0, ``champion_better`` when its upper bound is below 0, else
``undecided``. Below `min_n` outcomes per arm there is no decision (the variances are
plug-in estimates, and an arm of ten all-correct outcomes would have none).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> split = UnpairedDifference(higher_is_better=True)
>>> split.update_many("champion", (rng.random(20_000) < 0.85).astype(float))
>>> split.update_many("challenger", (rng.random(20_000) < 0.88).astype(float))
>>> split.decision, round(split.lift, 3), split.lower > 0
('challenger_better', 0.032, True)

"""

from __future__ import annotations

import math
from typing import Any

from river import stats

from monitors.comparison.sequence import MixtureSequence

__all__ = ["DECISIONS", "PairedDifference", "UnpairedDifference"]

CHAMPION, CHALLENGER = "champion", "challenger"
#: What a comparison can conclude, and its code on ``monitor.metrics``.
DECISIONS = {"challenger_better": 1, "champion_better": -1, "undecided": 0}


class _Difference:
    """What both kinds share: the sequence, the sign, and the reading of the bounds."""

    def __init__(
        self,
        higher_is_better: bool = True,
        alpha: float = 0.05,
        target_n: float = 10_000,
        tau: float | None = None,
        min_n: int = 30,
    ) -> None:
        self.higher_is_better = higher_is_better
        self.sequence = MixtureSequence(alpha, target_n, tau)
        self.min_n = min_n

    @property
    def alpha(self) -> float:
        return self.sequence.alpha

    def _raw(self) -> tuple[float, float, int] | None:  # challenger - champion, var, n
        raise NotImplementedError

    @property
    def lift(self) -> float:
        """Challenger better than champion by this much (NaN with no outcomes)."""
        raw = self._raw()
        if raw is None:
            return math.nan
        return raw[0] if self.higher_is_better else -raw[0]

    def _halfwidth(self) -> float:
        raw = self._raw()
        if raw is None or not self._enough():
            return math.inf
        _, variance, n = raw
        if variance <= 0.0:
            return 0.0
        return self.sequence.halfwidth(variance, n)

    @property
    def lower(self) -> float:
        """Lower bound of the lift's confidence sequence (-inf before `min_n`)."""
        return self.lift - self._halfwidth() if self._enough() else -math.inf

    @property
    def upper(self) -> float:
        """Upper bound of the lift's confidence sequence (+inf before `min_n`)."""
        return self.lift + self._halfwidth() if self._enough() else math.inf

    @property
    def decision(self) -> str:
        if not self._enough():
            return "undecided"
        lower, upper = self.lower, self.upper
        if lower > 0.0:
            return "challenger_better"
        if upper < 0.0:
            return "champion_better"
        return "undecided"

    def _enough(self) -> bool:
        raise NotImplementedError


class UnpairedDifference(_Difference):
    """Two arms on different requests: each arm's running mean and variance (River's
    ``stats.Var``); the estimate's variance is ``s1**2/n1 + s2**2/n2`` (Welch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arms = {CHAMPION: stats.Var(), CHALLENGER: stats.Var()}

    def update(self, arm: str, value: float) -> None:
        """One outcome's value (a 0/1 hit, a loss) for `arm`, champion or challenger."""
        self._arm(arm).update(float(value))

    def update_many(self, arm: str, values: Any) -> None:
        import numpy as np

        self._arm(arm).update_many(np.asarray(values, dtype=float))

    def _arm(self, arm: str) -> stats.Var:
        try:
            return self.arms[arm]
        except KeyError:
            raise ValueError(f"arm must be {CHAMPION!r} or {CHALLENGER!r}, not {arm!r}") from None

    def n(self, arm: str) -> int:
        return int(self._arm(arm).mean.n)

    def mean(self, arm: str) -> float:
        """The arm's mean of the per-outcome values (NaN without outcomes)."""
        return float(self._arm(arm).mean.get()) if self.n(arm) else math.nan

    def _enough(self) -> bool:
        return min(self.n(CHAMPION), self.n(CHALLENGER)) >= max(self.min_n, 2)

    def _raw(self) -> tuple[float, float, int] | None:
        a, b = self.arms[CHAMPION], self.arms[CHALLENGER]
        if not (a.mean.n and b.mean.n):
            return None
        diff = b.mean.get() - a.mean.get()
        if a.mean.n < 2 or b.mean.n < 2:
            return diff, math.inf, int(a.mean.n + b.mean.n)
        variance = a.get() / a.mean.n + b.get() / b.mean.n
        return diff, variance, int(a.mean.n + b.mean.n)


class PairedDifference(_Difference):
    """The same requests scored by both (champion and shadow): the mean and variance of
    the per-request difference, challenger minus champion, which cancels the requests'
    own difficulty and so decides sooner than a split of the same size.

    >>> pair = PairedDifference(higher_is_better=False, min_n=2)
    >>> for champion, shadow in [(0.9, 0.5), (0.7, 0.4), (0.8, 0.6)]:
    ...     pair.update(champion, shadow)
    >>> round(pair.lift, 3), pair.n
    (0.3, 3)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.diff = stats.Var()
        self.champion = stats.Mean()
        self.challenger = stats.Mean()

    def update(self, champion: float, challenger: float) -> None:
        """One request's value for the champion and for the challenger (shadow)."""
        self.champion.update(float(champion))
        self.challenger.update(float(challenger))
        self.diff.update(float(challenger) - float(champion))

    def update_many(self, champion: Any, challenger: Any) -> None:
        import numpy as np

        a, b = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"paired values differ in shape: {a.shape} and {b.shape}")
        self.champion.update_many(a)
        self.challenger.update_many(b)
        self.diff.update_many(b - a)

    @property
    def n(self) -> int:
        return int(self.diff.mean.n)

    def _enough(self) -> bool:
        return self.n >= max(self.min_n, 2)

    def _raw(self) -> tuple[float, float, int] | None:
        n = self.n
        if not n:
            return None
        variance = self.diff.get() / n if n >= 2 else math.inf
        return float(self.diff.mean.get()), variance, n
