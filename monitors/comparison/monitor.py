"""The monitor role's comparisons: every joined outcome feeds its arm, and each closed
window reports the lift of the current challenger (split) and shadow (paired) over the
champion as metrics ``lift``, ``lift_lower``, ``lift_upper`` and ``comparison_decision``
(1 challenger better, -1 champion better, 0 undecided), for a rule to act on.

The sequences are cumulative from the first outcome of each arm's version: a new
champion or challenger version starts afresh. They are on accuracy for classifiers and
MAE for regressors (``metrics=`` chooses); River objects, so the state pickles.

>>> mon = ComparisonMonitor(target_n=400)
>>> for i in range(200):
...     hit = i % 4 != 0
...     mon.update("churn", "champion", "3", "classification", f"r{i}", True, hit)
...     mon.update("churn", "challenger", "4", "classification", f"s{i}", True, True)
>>> mon.end_batch()
>>> {m.metric: round(m.value, 2) for m in mon.collect(0.0, 60.0)}
{'lift': 0.25, 'lift_lower': 0.16, 'lift_upper': 0.34, 'comparison_decision': 1.0}

"""

from __future__ import annotations

import math
from typing import Any

from river import stats

from monitors.comparison.difference import DECISIONS, PairedDifference, UnpairedDifference
from monitors.comparison.metrics import CLASSIFICATION, REGRESSION, observe, spec
from monitors.comparison.sequence import MixtureSequence
from monitors.events import MetricValue

__all__ = ["COMPARISON_METRICS", "ComparisonMonitor"]

#: The metrics a comparison publishes per window.
COMPARISON_METRICS = ("lift", "lift_lower", "lift_upper", "comparison_decision")
CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"
#: The segment of a shadow's (paired) comparison.
SHADOW_SEGMENT = "variant=shadow"


class ComparisonMonitor:
    """Arms per (model, variant, version), pairs per (model, champion, shadow version)."""

    def __init__(
        self,
        alpha: float = 0.05,
        target_n: float = 10_000,
        min_n: int = 30,
        metrics: dict[str, str] | None = None,
    ) -> None:
        self.options = {"alpha": alpha, "target_n": target_n, "min_n": min_n}
        self.metrics = metrics or {"classification": CLASSIFICATION, "regression": REGRESSION}
        for metric in self.metrics.values():
            spec(metric)
        #: (model, variant, version) -> running mean and variance of the per-outcome values
        self.arms: dict[tuple[str, str, str], stats.Var] = {}
        #: model -> the task and the newest version seen of each variant
        self.current: dict[str, dict[str, str]] = {}
        self.pairs: dict[tuple[str, str, str], PairedDifference] = {}
        self._pending: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}
        self._dirty: set[str] = set()

    def set_alpha(self, alpha: float) -> None:
        """Decide at `alpha` from now on (a restored monitor takes the configured one)."""
        self.options["alpha"] = alpha
        for pair in self.pairs.values():
            pair.sequence = MixtureSequence(alpha, pair.sequence.target_n, pair.sequence.tau)

    def update(
        self,
        model: str,
        variant: str | None,
        version: str,
        task: str,
        request_id: str,
        y_true: Any,
        y_pred: Any = None,
        proba: float | None = None,
    ) -> None:
        """One joined outcome of the prediction `variant` (champion, challenger, shadow)
        made; other variants (a fallback, a third alias) are not compared."""
        if variant not in (CHAMPION, CHALLENGER, SHADOW) or task not in self.metrics:
            return
        metric = self.metrics[task]
        if y_pred is None and proba is None:
            return
        try:
            value = float(observe(metric, [y_true], None if y_pred is None else [y_pred],
                                  proba=None if proba is None else [proba])[0])  # fmt: skip
        except (TypeError, ValueError):
            return  # a label the metric cannot use (log loss without a score, ...)
        if not math.isfinite(value):
            return
        cur = self.current.setdefault(model, {})
        cur["task"], cur[variant] = task, str(version)
        if variant != SHADOW:
            key = (model, variant, str(version))
            arm = self.arms.get(key)
            if arm is None:
                arm = self.arms[key] = stats.Var()
            arm.update(value)
        if variant != CHALLENGER:
            self._pending.setdefault((model, request_id), {})[variant] = (str(version), value)
        self._dirty.add(model)

    def end_batch(self) -> None:
        """Pair the batch's champion and shadow outcomes of one request (both predictions
        meet their outcome in the same join); unpaired halves are dropped."""
        pending, self._pending = self._pending, {}
        for (model, _rid), sides in pending.items():
            if CHAMPION in sides and SHADOW in sides:
                (cv, a), (sv, b) = sides[CHAMPION], sides[SHADOW]
                key = (model, cv, sv)
                pair = self.pairs.get(key)
                if pair is None:
                    task = self.current[model]["task"]
                    higher = spec(self.metrics[task]).higher_is_better
                    pair = self.pairs[key] = PairedDifference(higher, **self.options)
                pair.update(a, b)

    def split(self, model: str) -> UnpairedDifference | None:
        """The current champion against the current challenger (None without both)."""
        cur = self.current.get(model, {})
        a = self.arms.get((model, CHAMPION, cur.get(CHAMPION, "")))
        b = self.arms.get((model, CHALLENGER, cur.get(CHALLENGER, "")))
        if a is None or b is None:
            return None
        diff = UnpairedDifference(spec(self.metrics[cur["task"]]).higher_is_better, **self.options)
        diff.arms = {CHAMPION: a, CHALLENGER: b}
        return diff

    def shadow(self, model: str) -> PairedDifference | None:
        cur = self.current.get(model, {})
        return self.pairs.get((model, cur.get(CHAMPION, ""), cur.get(SHADOW, "")))

    def collect(self, window_start: float, window_end: float) -> list[MetricValue]:
        """The comparisons of the models with outcomes since the last collect."""
        out: list[MetricValue] = []
        for model in sorted(self._dirty):
            cur = self.current[model]
            for diff, variant, segment in (
                (self.split(model), CHALLENGER, None),
                (self.shadow(model), SHADOW, SHADOW_SEGMENT),
            ):
                if diff is None or math.isnan(diff.lift):
                    continue
                n = diff.n if isinstance(diff, PairedDifference) else sum(
                    int(v.mean.n) for v in diff.arms.values())  # fmt: skip
                values = {
                    "lift": diff.lift,
                    "lift_lower": diff.lower,
                    "lift_upper": diff.upper,
                    "comparison_decision": float(DECISIONS[diff.decision]),
                }
                for metric, value in values.items():
                    if math.isfinite(value):
                        out.append(
                            MetricValue(model, cur[variant], window_start, window_end,
                                        metric, None, float(value), segment, n)
                        )  # fmt: skip
        self._dirty.clear()
        return out
