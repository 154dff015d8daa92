"""The guards every action passes per model: a cooldown and a cap per hour.

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
HOUR_MS = 3_600_000


class Guards:
    """Cooldown and hourly cap per model, over the times of past actions (epoch ms).

    >>> g = Guards(cooldown_s=600, max_per_hour=2)
    >>> g.check("m", 0) is None
    True
    >>> g.record("m", 0); g.check("m", 60_000)
    'cooldown'
    >>> g.record("m", 601_000); g.check("m", 1_300_000)
    'cap'
    >>> g.check("m", 3_700_000) is None, g.check("other", 60_000) is None
    (True, True)
    """

    def __init__(self, cooldown_s: float, max_per_hour: int) -> None:
        self.cooldown_ms = int(cooldown_s * 1000)
        self.max_per_hour = max_per_hour
        self._times: dict[str, collections.deque[int]] = {}

    def check(self, model: str, now_ms: int) -> str | None:
        """Why an action on ``model`` now must wait (``cooldown`` or ``cap``), or None."""
        times = self._times.get(model)
        if not times:
            return None
        if now_ms - times[-1] < self.cooldown_ms:
            return "cooldown"
        if sum(1 for t in times if now_ms - t < HOUR_MS) >= self.max_per_hour:
            return "cap"
        return None

    def record(self, model: str, ts_ms: int) -> None:
        times = self._times.setdefault(model, collections.deque())
        times.append(ts_ms)
        while times and times[-1] - times[0] >= HOUR_MS:  # older ones guard nothing
            times.popleft()

    def rebuild(self, records: Iterable[Mapping[str, Any]]) -> Guards:
        """Forget everything, then record the acted-on records (Action dicts), oldest first."""
        self._times.clear()
        for r in sorted(records, key=lambda r: r["ts"]):
            if r.get("outcome") in ACTED and r.get("kind") != "undo":
                self.record(r["model"], int(r["ts"]))
        return self
