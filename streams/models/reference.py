"""The reference profile of a version's training data: the drift baseline in ``meta.json``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from streams.models.features import infer_features

__all__ = ["fit_reference_profile", "minimal_profile"]


def fit_reference_profile(
    rows: Sequence[Mapping[str, Any]], scores: Sequence[float] | None = None, bins: int = 10
) -> dict[str, Any]:
    """The reference profile stored in ``meta.json``: monitors.profile when present.

    The one place that knows which profiler is used, so swapping it is one line.
    """
    try:
        from monitors.profile import ReferenceProfile
    except ImportError:
        return minimal_profile(rows, scores, bins)
    return ReferenceProfile.fit(rows, scores=scores, bins=bins).to_dict()


def _numeric_summary(values: np.ndarray, missing: int, bins: int) -> dict[str, Any]:
    if values.size == 0:
        return {"type": "number", "count": 0, "missing": missing}
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    counts = np.histogram(values, bins=edges)[0] if edges.size > 1 else np.array([values.size])
    return {
        "type": "number",
        "count": int(values.size),
        "missing": missing,
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "edges": [float(e) for e in edges],
        "fractions": [float(c) / values.size for c in counts],
    }


def minimal_profile(
    rows: Sequence[Mapping[str, Any]], scores: Sequence[float] | None, bins: int
) -> dict[str, Any]:
    """A small stand-in for monitors.profile: quantile bins per number, frequencies per string."""
    out: dict[str, Any] = {"kind": "lastmile.minimal-profile/1", "rows": len(rows), "features": {}}
    for spec in infer_features(rows):
        name = spec["name"]
        raw = [row.get(name) for row in rows]
        present = [v for v in raw if v is not None]
        missing = len(raw) - len(present)
        if spec["type"] == "number":
            values = np.asarray([float(v) for v in present], dtype=float)
            out["features"][name] = _numeric_summary(values, missing, bins)
        else:
            counts: dict[str, int] = {}
            for v in present:
                counts[str(v)] = counts.get(str(v), 0) + 1
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:50]
            out["features"][name] = {
                "type": spec["type"],
                "count": len(present),
                "missing": missing,
                "frequencies": {k: c / max(len(present), 1) for k, c in top},
            }
    if scores is not None:
        values = np.asarray([s for s in scores if s is not None and math.isfinite(s)], dtype=float)
        out["score"] = _numeric_summary(values, len(scores) - values.size, bins)
    return out
