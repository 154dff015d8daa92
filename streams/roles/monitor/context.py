"""What the monitor knows of each model version: its reference profile from the
registry, or a surrogate that only names the features when it has none."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from monitors.aggregate import PredictionSketch
from monitors.events import MetricValue
from monitors.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from monitors.quality import quality_metrics
from monitors.report import WindowEvaluator
from monitors.sketches import OTHER
from monitors.windows import ClosedWindow

log = logging.getLogger("lastmile.monitor")

__all__ = ["REFERENCE_QUALITY", "VersionContext", "VersionContexts", "kind_of", "surrogate_profile"]

#: Quality metrics that compare with the reference: meaningless without one.
REFERENCE_QUALITY = ("out_of_range_rate", "unseen_category_rate")


def surrogate_profile(kinds: Mapping[str, str]) -> ReferenceProfile:
    """A profile that only names the features (and their kinds), for a version without
    reference: windows then still count missing values, latency and throughput."""
    features: dict[str, NumericProfile | CategoricalProfile] = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            features[name] = NumericProfile(
                edges=[0.0, 1.0],
                counts=[0, 0, 0],
                n=0,
                missing=0,
                min=0.0,
                max=1.0,
                mean=0.0,
                std=0.0,
                sample=[],
            )
        else:
            features[name] = CategoricalProfile(counts={OTHER: 0}, n=0, missing=0)
    return ReferenceProfile(features=features, score=None, n=0)


def kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "numeric"
    return "categorical"


@dataclasses.dataclass
class VersionContext:
    """What the monitor knows of one model version: its reference, or why it has none."""

    model: str
    version: str
    profile: ReferenceProfile
    evaluator: WindowEvaluator | None
    task: str | None = None
    positive_label: str | None = None
    labels: int = 0

    @property
    def has_reference(self) -> bool:
        return self.evaluator is not None

    def new_sketch(self) -> PredictionSketch:
        return PredictionSketch(self.profile)

    def evaluate(self, closed: ClosedWindow[PredictionSketch]) -> list[MetricValue]:
        """Drift and quality metrics, or quality only (without reference-bound rates)."""
        if self.evaluator is not None:
            return self.evaluator.evaluate(closed)
        segment = closed.key[2] if len(closed.key) > 2 else None
        return [
            MetricValue(
                self.model,
                self.version,
                closed.start,
                closed.end,
                m.metric,
                m.feature,
                m.value,
                segment,
                m.n,
            )
            for m in quality_metrics(closed.state, self.profile, closed.start, closed.end)
            if m.metric not in REFERENCE_QUALITY
        ]


class VersionContexts:
    """The contexts of the versions seen so far, by (model, version); kept across
    restores (a reference profile does not change), and each missing reference is
    warned about once."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.cache: dict[tuple[str, str], VersionContext] = {}
        self.warned: set[tuple[str, str]] = set()

    def get(
        self,
        model: str,
        version: str,
        feature_kinds: dict[tuple[str, str], dict[str, str]],
        sample: Sequence[Mapping[str, Any]] = (),
    ) -> VersionContext:
        """The version's context, loading its reference profile from the registry once.

        Without a reference the feature kinds come from `feature_kinds` (part of the
        monitor's state), else from `sample` and the registry's feature list, and are
        recorded there."""
        key = (model, version)
        ctx = self.cache.get(key)
        if ctx is not None:
            return ctx
        meta: Mapping[str, Any] = {}
        reference: ReferenceProfile | None = None
        why = ""
        try:
            meta = self.registry.get(model, version).meta
        except Exception as err:  # a broken registry entry only costs its drift baseline
            why = f"not in the registry ({err})"
        else:
            raw = meta.get("reference_profile")
            if not raw:
                why = "registered without reference rows"
            else:
                try:
                    reference = ReferenceProfile.from_dict(raw)
                except Exception as err:
                    # a profile is user data: any error only costs the baseline
                    why = (
                        f"its reference profile is not a monitors.profile.ReferenceProfile "
                        f"(kind {raw.get('kind')!r}: {type(err).__name__}: {err})"
                    )
        if reference is not None:
            ctx = VersionContext(model, version, reference, WindowEvaluator(reference))
        else:
            kinds = feature_kinds.get(key)
            if kinds is None:
                # Kinds from the values first: a registry feature list given as bare
                # names says "number" for every feature, strings included.
                kinds = {}
                for record in sample:
                    for name, value in (record.get("features") or {}).items():
                        kind = kind_of(value)
                        if kind is not None:
                            kinds.setdefault(name, kind)
                for spec in meta.get("features") or []:
                    kind = "numeric" if spec.get("type") == "number" else "categorical"
                    kinds.setdefault(spec["name"], kind)
                feature_kinds[key] = kinds
            ctx = VersionContext(model, version, surrogate_profile(kinds), None)
            if key not in self.warned:
                self.warned.add(key)
                log.warning(
                    "monitor: %s v%s has no reference profile (%s); drift is not computed "
                    "for it, quality, latency and throughput are",
                    model,
                    version,
                    why,
                )
        ctx.task = meta.get("task")
        ctx.positive_label = meta.get("positive_label")
        ctx.labels = len(meta.get("labels") or [])
        self.cache[key] = ctx
        return ctx
