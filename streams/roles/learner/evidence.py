"""Whether a snapshot beats the champion: a paired comparison on the same outcomes.

The learner scores every outcome with the online model and with the frozen champion
before it learns it (prequential), so the two windows of a line hold the same
outcomes in the same order: a paired test (:class:`monitors.comparison.PairedDifference`,
an always-valid confidence sequence on the per-outcome difference) decides, at the
comparison's ``alpha``, whether the online model is better. A champion changed less
than a window ago has a shorter window: the two are paired at their common tail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from monitors.comparison import PairedDifference
from streams.roles.learner.prequential_window import PrequentialWindow

__all__ = ["per_outcome", "snapshot_evidence"]


def per_outcome(window: PrequentialWindow, n: int) -> np.ndarray:
    """The last ``n`` outcomes of ``window`` as values where higher is better for a
    classifier (a hit: 1.0, a miss: 0.0) and the absolute error for a regressor."""
    truth = list(window.truth)[-n:]
    pred = list(window.pred)[-n:]
    if window.task == "regression":
        return np.abs(np.asarray(truth, float) - np.asarray(pred, float))
    if window.binary:
        return ((np.asarray(pred, float) >= 0.5) == np.asarray(truth, bool)).astype(float)
    return np.fromiter((a == b for a, b in zip(truth, pred, strict=True)), float, len(truth))


def snapshot_evidence(
    online: PrequentialWindow, frozen: PrequentialWindow | None, alpha: float = 0.05
) -> dict[str, Any]:
    """The paired comparison of the online model (challenger) and the frozen champion.

    >>> on, fr = PrequentialWindow("classification", 500), PrequentialWindow("classification", 500)
    >>> for i in range(500):
    ...     truth = i % 2 == 0
    ...     on.update(truth, 0.9 if truth else 0.1)          # always right
    ...     fr.update(truth, 0.9 if i % 3 else 0.1)          # right two times in three, or so
    >>> e = snapshot_evidence(on, fr)
    >>> e["decision"], e["n"], e["lift"] > 0.3
    ('challenger_better', 500, True)
    """
    if frozen is None:
        return {"decision": "undecided", "n": 0, "why": "the champion is not evaluated"}
    n = min(online.window_n, frozen.window_n)
    pair = PairedDifference(higher_is_better=online.task != "regression", alpha=alpha)
    if n:
        pair.update_many(per_outcome(frozen, n), per_outcome(online, n))
    return {
        "decision": pair.decision,
        "n": n,
        "lift": float(pair.lift),
        "lower": float(pair.lower),
        "upper": float(pair.upper),
        "alpha": alpha,
    }
