"""A comparison's result, and how one is computed from two arms' outcomes.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> y = rng.random(20_000) < 0.5
>>> def predict(accuracy):  # right with probability `accuracy`
...     return np.where(rng.random(len(y)) < accuracy, y, ~y)
>>> champ = Outcomes("champion", 3, y, predict(0.85))
>>> chall = Outcomes("challenger", 4, y, predict(0.88))
>>> c = compare_split("churn", champ, chall, metric="accuracy")
>>> c.decision, [a["n"] for a in c.to_dict()["arms"]]
('challenger_better', [20000, 20000])

"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from monitors.comparison.difference import PairedDifference, UnpairedDifference
from monitors.comparison.metrics import observe, roc_auc, spec

__all__ = ["Arm", "Comparison", "Outcomes", "compare_paired", "compare_split"]


@dataclasses.dataclass(frozen=True)
class Arm:
    """One side of a comparison: which variant and version, on how many outcomes."""

    variant: str
    version: int | str | None
    n: int
    value: float | None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Champion against challenger on one metric, with the lift's confidence sequence.

    `lift` (positive: the challenger is better), `lower` and `upper` are in the units of
    `decided_on`: the metric itself, except the MSE for ``rmse`` and log loss for
    ``roc_auc`` (no always-valid sequence for it here)."""

    model: str
    metric: str
    arms: tuple[Arm, ...]
    lift: float | None
    lower: float | None
    upper: float | None
    alpha: float
    decision: str
    decided_on: str
    paired: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``lastmile models compare --json`` (infinite or NaN
        bounds, before enough outcomes, are null)."""
        return {
            "model": self.model,
            "metric": self.metric,
            "arms": [dataclasses.asdict(a) for a in self.arms],
            "lift": self.lift,
            "lower": self.lower,
            "upper": self.upper,
            "alpha": self.alpha,
            "decision": self.decision,
            "decided_on": self.decided_on,
            "paired": self.paired,
        }


@dataclasses.dataclass
class Outcomes:
    """One arm's joined outcomes as arrays: truth, and predicted label, value or score.

    Classification: `y_true` is the positive class as bool, `y_pred` the predicted
    label as bool (or None: ``score >= 0.5``), `score` the positive class's probability.
    Regression: `y_true` and `y_pred` are values."""

    variant: str
    version: int | str | None
    y_true: Any
    y_pred: Any = None
    score: Any = None

    def __len__(self) -> int:
        return len(self.y_true)

    def values(self, metric: str) -> np.ndarray:
        return observe(metric, self.y_true, self.y_pred, proba=self.score)

    def point(self, metric: str) -> float | None:
        """The arm's value of `metric` (None without outcomes or scores to rank)."""
        if not len(self):
            return None
        if metric == "roc_auc":
            if self.score is None:
                return None
            auc = roc_auc(self.y_true, self.score)
            return None if math.isnan(auc) else auc
        return spec(metric).report(float(self.values(metric).mean()))


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _result(model: str, metric: str, arms: tuple[Arm, ...], diff: Any, paired: bool) -> Comparison:
    s = spec(metric)
    return Comparison(
        model=model,
        metric=metric,
        arms=arms,
        lift=_finite(diff.lift),
        lower=_finite(diff.lower),
        upper=_finite(diff.upper),
        alpha=diff.alpha,
        decision=diff.decision,
        decided_on=s.decided_on,
        paired=paired,
    )


def compare_split(
    model: str, champion: Outcomes, challenger: Outcomes, metric: str = "accuracy", **options: Any
) -> Comparison:
    """Compare two arms of a split (different requests); `options` go to
    :class:`~monitors.comparison.difference.UnpairedDifference` (alpha, target_n, ...)."""
    s = spec(metric)
    diff = UnpairedDifference(s.higher_is_better, **options)
    arms = []
    for name, out in (("champion", champion), ("challenger", challenger)):
        if len(out):
            diff.update_many(name, out.values(metric))
        arms.append(Arm(out.variant, out.version, len(out), out.point(metric)))
    return _result(model, metric, tuple(arms), diff, paired=False)


def compare_paired(
    model: str, champion: Outcomes, challenger: Outcomes, metric: str = "accuracy", **options: Any
) -> Comparison:
    """Compare two models on the same requests: row i of both arms is one request."""
    if len(champion) != len(challenger):
        raise ValueError(f"paired arms differ in length: {len(champion)} and {len(challenger)}")
    s = spec(metric)
    diff = PairedDifference(s.higher_is_better, **options)
    if len(champion):
        diff.update_many(champion.values(metric), challenger.values(metric))
    arms = tuple(Arm(o.variant, o.version, len(o), o.point(metric)) for o in (champion, challenger))
    return _result(model, metric, arms, diff, paired=True)
