"""The guards every action passes: a cooldown per model and action, a cap per model and hour.

The cooldown is per kind of action: two alerts that would each roll a model back within
it are one rollback, but shedding a broken challenger does not hold back the promotion
of a good one a minute later (the demo heals itself through shed, snapshot, promote).
The hourly cap counts every action that moves traffic; a snapshot moves none (it only
registers a version) and is held by its own cooldown alone.

They count what was acted on (``done``) or would have been (``would``, in dry-run), by
the time the operator decided; the history is rebuilt from the actions topic on start,
so a restart forgets nothing.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ACTED", "Guards"]

#: Outcomes that count as an action for the guards.
ACTED = frozenset({"done", "would"})
#: Actions that move no traffic: outside the hourly cap.
UNCAPPED = frozenset({"snapshot"})
HOUR_MS = 3_600_000


class Guards:
    """Cooldown per model and action kind, hourly cap per model, over the times of past
    actions (epoch ms).

    >>> g = Guards(cooldown_s=600, max_per_hour=2)
    >>> g.check("m", "rollback", 0) is None
    True
    >>> g.record("m", "rollback", 0); g.check("m", "rollback", 60_000)
    'cooldown'
    >>> g.check("m", "promote", 60_000) is None
    True
    >>> g.record("m", "shed", 601_000); g.check("m", "rollback", 1_300_000)
    'cap'
    >>> g.check("m", "snapshot", 1_300_000) is None
    True
    >>> g.check("m", "rollback", 3_700_000) is None, g.check("other", "rollback", 60_000) is None
    (True, True)
    """

    def __init__(self, cooldown_s: float, max_per_hour: int) -> None:
        self.cooldown_ms = int(cooldown_s * 1000)
        self.max_per_hour = max_per_hour
        self._times: dict[str, collections.deque[tuple[int, str]]] = {}

    def check(self, model: str, kind: str, now_ms: int) -> str | None:
        """Why a ``kind`` action on ``model`` now must wait (``cooldown`` or ``cap``), or None."""
        times = self._times.get(model)
        if not times:
            return None
        if any(k == kind and now_ms - t < self.cooldown_ms for t, k in times):
            return "cooldown"
        if kind not in UNCAPPED:
            recent = sum(1 for t, k in times if k not in UNCAPPED and now_ms - t < HOUR_MS)
            if recent >= self.max_per_hour:
                return "cap"
        return None

    def record(self, model: str, kind: str, ts_ms: int) -> None:
        times = self._times.setdefault(model, collections.deque())
        times.append((ts_ms, kind))
        horizon = max(HOUR_MS, self.cooldown_ms)
        while times and times[-1][0] - times[0][0] >= horizon:  # older ones guard nothing
            times.popleft()

    def rebuild(self, records: Iterable[Mapping[str, Any]]) -> Guards:
        """Forget everything, then record the acted-on records (Action dicts), oldest first."""
        self._times.clear()
        for r in sorted(records, key=lambda r: r["ts"]):
            if r.get("outcome") in ACTED and r.get("kind") != "undo":
                self.record(r["model"], str(r.get("kind")), int(r["ts"]))
        return self
