"""From a closed window to metric values: drift per feature and on the score, and quality.

This is the glue the monitor role calls when a window closes::

    evaluator = WindowEvaluator(reference)            # once per model version
    for closed in window.update_many(key, times, batch):
        for metric in evaluator.evaluate(closed):      # MetricValue records
            produce("monitor.metrics", metric)

Drift metrics, per feature (numeric: all five statistics; categorical: PSI,
Jensen-Shannon, chi-square): ``psi``, ``ks`` and ``ks_p_value``, ``wasserstein``,
``jensen_shannon``, ``chi_square`` and ``chi_square_p_value``; then ``drift`` (1.0 or 0.0),
the decision of the :class:`~monitors.drift.DriftPolicy` for that feature and window size,
and for the model ``drift_share``, the fraction of features that drifted. The score is
the feature ``"__score__"`` and is not counted in the share.

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitors.aggregate import PredictionSketch
from monitors.drift import APPLICABLE, STATISTICS, DriftPolicy, DriftScore, DriftStatistic
from monitors.events import Measure, MetricValue
from monitors.profile import SCORE, FeatureProfile, ReferenceProfile
from monitors.quality import quality_metrics
from monitors.windows import ClosedWindow

__all__ = ["WindowEvaluator"]


class WindowEvaluator:
    """Computes a window's drift and quality metrics against one reference.

    `statistics` limits which statistics are reported (default: all that apply); the
    policy's deciding statistic is always computed.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = ReferenceProfile.fit([{"x": v} for v in rng.normal(size=2000)])
    >>> window = PredictionSketch(ref)
    >>> for v in rng.normal(3.0, 1.0, size=300):
    ...     window.update({"features": {"x": float(v)}})
    >>> ev = WindowEvaluator(ref)
    >>> drift = {m.metric: m.value for m in ev.drift(window) if m.feature == "x"}
    >>> drift["drift"], drift["ks_p_value"] < 0.05, drift["wasserstein"] > 2
    (1.0, True, True)

    """

    def __init__(
        self,
        reference: ReferenceProfile,
        policy: DriftPolicy | None = None,
        statistics: Sequence[str] | None = None,
    ) -> None:
        self.reference = reference
        self.policy = policy or DriftPolicy()
        self.statistics = tuple(statistics) if statistics is not None else tuple(STATISTICS)
        self._stats: dict[str, dict[str, DriftStatistic]] = {}
        profiles: dict[str, FeatureProfile] = dict(reference.features)
        if reference.score is not None:
            profiles[SCORE] = reference.score
        self._profiles = profiles

    def _statistic(self, feature: str, name: str) -> DriftStatistic:
        stats = self._stats.setdefault(feature, {})
        stat = stats.get(name)
        if stat is None:
            stat = stats[name] = STATISTICS[name](self._profiles[feature])
        return stat

    def drift(self, window: PredictionSketch) -> list[Measure]:
        out: list[Measure] = []
        drifted = checked = 0
        sketches: dict[str, Any] = dict(window.features)
        if SCORE in self._profiles:
            sketches[SCORE] = window.score
        for feature, sketch in sketches.items():
            profile = self._profiles.get(feature)
            if profile is None or sketch.n == 0:
                continue
            n = sketch.n
            scores: dict[str, DriftScore] = {}
            for name in APPLICABLE[profile.kind]:
                if name not in self.statistics:
                    continue
                score = scores[name] = self._statistic(feature, name).evaluate(sketch)
                out.append(Measure(name, feature, score.statistic, n))
                if score.p_value is not None:
                    out.append(Measure(f"{name}_p_value", feature, score.p_value, n))
            method = self.policy.method(feature, profile.kind, n)
            score = scores.get(method.statistic)
            if score is None:
                score = self._statistic(feature, method.statistic).evaluate(sketch)
            is_drift = method.is_drift(score)
            out.append(Measure("drift", feature, float(is_drift), n))
            if feature != SCORE:
                checked += 1
                drifted += is_drift
        if checked:
            out.append(Measure("drift_share", None, drifted / checked, window.n))
        return out

    def measures(self, window: PredictionSketch, start: float, end: float) -> list[Measure]:
        """Drift and quality measures of a window ``[start, end)``."""
        return self.drift(window) + quality_metrics(window, self.reference, start, end)

    def evaluate(self, closed: ClosedWindow[PredictionSketch]) -> list[MetricValue]:
        """Metric values of a closed window whose key is (model, version[, segment])."""
        model, version, *rest = closed.key
        segment = rest[0] if rest else None
        return [
            MetricValue(
                model=model,
                version=version,
                window_start=closed.start,
                window_end=closed.end,
                metric=m.metric,
                feature=m.feature,
                value=m.value,
                segment=segment,
                n=m.n,
            )
            for m in self.measures(closed.state, closed.start, closed.end)
        ]
