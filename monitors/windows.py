"""Windows over a keyed stream: by event time (tumbling, sliding) or by count.

A window holds a *state*, any object with ``update(x)``, ``update_many(batch)``,
``merge(other)`` and ``to_dict()`` (e.g. :class:`monitors.aggregate.PredictionSketch`),
made by a `factory` — never raw rows, so memory is bounded by the number of open
windows, not their length. Keys are tuples such as ``(model, version)`` or
``(model, version, segment)``. With ``keyed=True`` the factory is called with the key,
so each model version's state can be built on its own reference profile.

Event time
    Times are floats in any unit (seconds in lastmile); `size`, `step` and
    `allowed_lateness` are in the same unit. Windows are aligned on multiples of
    `step` from zero and are half-open, ``[start, end)``.
Watermark
    ``max event time seen - allowed_lateness``, over all keys of the window object (the
    monitor runs one per partition, so an idle version's windows still close while
    others advance). A window closes, and is returned once, when the watermark reaches
    its end. :meth:`SlidingWindow.advance` moves the watermark without an event (a
    quiet stream) and :meth:`SlidingWindow.flush` closes everything (shutdown).
Lateness
    An event whose windows have all closed is dropped and counted in `dropped_late`
    per key. An event still inside an open window is accepted, even if older than
    the newest event. Within one ``update_many`` batch, lateness is judged against the
    watermark before the batch.

"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, Protocol, Self, TypeVar

import numpy as np

__all__ = ["ClosedWindow", "CountWindow", "SlidingWindow", "TumblingWindow", "WindowState"]


class WindowState(Protocol):
    def update(self, x: Any) -> None: ...

    def update_many(self, batch: Any) -> None: ...

    def merge(self, other: Any) -> Any: ...

    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=WindowState)
Key = Hashable


@dataclasses.dataclass
class ClosedWindow(Generic[S]):
    """A window's final state, yielded once: ``[start, end)`` of `key`."""

    key: Key
    start: float
    end: float
    state: S


def take(batch: Any, idx: np.ndarray) -> Any:
    """The rows `idx` of a batch: an object with ``take``, a mapping of columns, or an array."""
    if hasattr(batch, "take") and not isinstance(batch, np.ndarray):
        return batch.take(idx)
    if isinstance(batch, Mapping):
        return {k: np.asarray(v)[idx] for k, v in batch.items()}
    return np.asarray(batch)[idx]


def _key_to_json(key: Key) -> Any:
    return list(key) if isinstance(key, tuple) else key


def _key_from_json(key: Any) -> Key:
    return tuple(key) if isinstance(key, list) else key


class SlidingWindow(Generic[S]):
    """Windows of `size` every `step` by event time, as panes of `step` merged.

    Each event updates exactly one pane (``floor(t / step)``); a window is the merge of
    its ``size / step`` panes when it closes, and a pane is freed once the last window
    that needs it has closed.

    >>> from monitors.sketches import Moments
    >>> w = SlidingWindow(10.0, 5.0, Moments)
    >>> [c.end for t in (1, 6, 12, 17) for c in w.update(("m", "1"), t, float(t))]
    [5.0, 10.0, 15.0]
    >>> [(c.start, c.end, c.state.n) for c in w.flush()]
    [(10.0, 20.0, 2), (15.0, 25.0, 1)]

    """

    def __init__(
        self,
        size: float,
        step: float,
        factory: Callable[..., S],
        allowed_lateness: float = 0.0,
        keyed: bool = False,
    ) -> None:
        ratio = size / step
        if step <= 0 or ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("size must be a positive whole multiple of step")
        if allowed_lateness < 0:
            raise ValueError("allowed_lateness must be >= 0")
        self.size = float(size)
        self.step = float(step)
        self.panes_per_window = int(round(ratio))
        self.factory = factory
        self.keyed = keyed
        self.allowed_lateness = float(allowed_lateness)
        self.max_event_time = -math.inf
        self.dropped_late: dict[Key, int] = {}
        self._panes: dict[Key, dict[int, S]] = {}

    @property
    def watermark(self) -> float:
        return self.max_event_time - self.allowed_lateness

    def _closed_upto(self) -> float:
        # The last pane index j whose window (ending at (j + 1) * step) has closed.
        w = self.watermark
        return -math.inf if w == -math.inf else math.floor(w / self.step) - 1

    def _accepts(self, pane: int, closed: float) -> bool:
        return pane + self.panes_per_window - 1 > closed

    def _pane(self, key: Key, pane: int) -> S:
        panes = self._panes.setdefault(key, {})
        state = panes.get(pane)
        if state is None:
            state = panes[pane] = self._new_state(key)
        return state

    def _new_state(self, key: Key) -> S:
        return self.factory(key) if self.keyed else self.factory()

    def _late(self, key: Key, n: int) -> None:
        self.dropped_late[key] = self.dropped_late.get(key, 0) + n

    def update(self, key: Key, t: float, x: Any) -> list[ClosedWindow[S]]:
        """Add one event; return the windows this event's time closed."""
        pane = math.floor(t / self.step)
        if self._accepts(pane, self._closed_upto()):
            self._pane(key, pane).update(x)
        else:
            self._late(key, 1)
        return self.advance(t)

    def update_many(self, key: Key, times: Any, batch: Any) -> list[ClosedWindow[S]]:
        """Add a batch of events of one key (`times` aligned with the batch's rows)."""
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            return []
        panes = np.floor(times / self.step).astype(np.int64)
        closed = self._closed_upto()
        lo, hi = int(panes.min()), int(panes.max())
        if lo == hi and self._accepts(lo, closed):
            self._pane(key, lo).update_many(batch)
        else:
            ok = panes + self.panes_per_window - 1 > closed
            if not ok.all():
                self._late(key, int((~ok).sum()))
            kept = np.flatnonzero(ok)
            uniq, inverse = np.unique(panes[kept], return_inverse=True)
            for i, pane in enumerate(uniq.tolist()):
                self._pane(key, pane).update_many(take(batch, kept[inverse == i]))
        return self.advance(float(times.max()))

    def advance(self, event_time: float) -> list[ClosedWindow[S]]:
        """Move the watermark as if an event at `event_time` arrived; return closed windows."""
        before = self._closed_upto()
        if event_time > self.max_event_time:
            self.max_event_time = float(event_time)
        after = self._closed_upto()
        if after <= before:
            return []
        return self._emit(before, after)

    def flush(self) -> list[ClosedWindow[S]]:
        """Close every open window (at shutdown, or at the end of a replay)."""
        last = max((max(p) for p in self._panes.values() if p), default=None)
        if last is None:
            return []
        return self._emit(self._closed_upto(), last + self.panes_per_window - 1)

    def _emit(self, before: float, after: float) -> list[ClosedWindow[S]]:
        m = self.panes_per_window
        out: list[tuple[int, int, ClosedWindow[S]]] = []
        for order, (key, panes) in enumerate(self._panes.items()):
            ends: set[int] = set()
            for p in panes:
                lo = p if before == -math.inf else max(p, int(before) + 1)
                ends.update(range(lo, min(p + m - 1, int(after)) + 1))
            for j in sorted(ends):
                members = [panes[p] for p in range(j - m + 1, j + 1) if p in panes]
                if m == 1:
                    state = members[0]
                else:
                    state = self._new_state(key)
                    for pane_state in members:
                        state.merge(pane_state)
                start = (j + 1 - m) * self.step
                out.append((j, order, ClosedWindow(key, start, start + self.size, state)))
            for p in [p for p in panes if p + m - 1 <= after]:
                del panes[p]
        for key in [k for k, p in self._panes.items() if not p]:
            del self._panes[key]
        out.sort(key=lambda t: (t[0], t[1]))
        return [c for _, _, c in out]

    def open_windows(self) -> int:
        """Panes held, across keys (the memory in use, in states)."""
        return sum(len(p) for p in self._panes.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "step": self.step,
            "allowed_lateness": self.allowed_lateness,
            "max_event_time": None if self.max_event_time == -math.inf else self.max_event_time,
            "dropped_late": [[_key_to_json(k), n] for k, n in self.dropped_late.items()],
            "panes": [
                [_key_to_json(k), [[p, s.to_dict()] for p, s in panes.items()]]
                for k, panes in self._panes.items()
            ],
        }

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        factory: Callable[..., S],
        load_state: Callable[[Any], S],
        keyed: bool = False,
    ) -> Self:
        """Restore from :meth:`to_dict`; `load_state` rebuilds a state from its dict (the
        same for a :class:`TumblingWindow`, whose step is its size)."""
        w = cls.__new__(cls)
        SlidingWindow.__init__(w, d["size"], d["step"], factory, d["allowed_lateness"], keyed)
        met = d["max_event_time"]
        w.max_event_time = -math.inf if met is None else float(met)
        w.dropped_late = {_key_from_json(k): int(n) for k, n in d["dropped_late"]}
        w._panes = {
            _key_from_json(k): {int(p): load_state(s) for p, s in panes} for k, panes in d["panes"]
        }
        return w


class TumblingWindow(SlidingWindow[S]):
    """Back-to-back windows of `size` by event time (a sliding window whose step is its size).

    >>> from monitors.sketches import Moments
    >>> w = TumblingWindow(60.0, Moments, allowed_lateness=5.0)
    >>> w.update("k", 10.0, 1.0), w.update("k", 64.0, 2.0)
    ([], [])
    >>> [(c.start, c.end, c.state.n) for c in w.update("k", 66.0, 3.0)]
    [(0.0, 60.0, 1)]
    >>> w.update("k", 30.0, 9.0), w.dropped_late
    ([], {'k': 1})

    """

    def __init__(
        self,
        size: float,
        factory: Callable[..., S],
        allowed_lateness: float = 0.0,
        keyed: bool = False,
    ) -> None:
        super().__init__(size, size, factory, allowed_lateness, keyed)


class CountWindow(Generic[S]):
    """Windows of `n` events per key, in arrival order; start/end are the first and last
    event times seen in the window (so the end is inclusive here).

    >>> from monitors.sketches import Moments
    >>> w = CountWindow(3, Moments)
    >>> [(c.start, c.end, c.state.n) for c in w.update_many("k", [1, 2, 3, 4, 5, 6, 7], range(7))]
    [(1.0, 3.0, 3), (4.0, 6.0, 3)]
    >>> w.pending("k")
    1

    """

    def __init__(self, n: int, factory: Callable[..., S], keyed: bool = False) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.factory = factory
        self.keyed = keyed
        self.dropped_late: dict[Key, int] = {}  # never late: kept for a uniform interface
        # key -> [state, count, first time, last time]
        self._open: dict[Key, list[Any]] = {}

    def pending(self, key: Key) -> int:
        """Events in `key`'s open window."""
        entry = self._open.get(key)
        return 0 if entry is None else entry[1]

    def _entry(self, key: Key, t: float) -> list[Any]:
        entry = self._open.get(key)
        if entry is None:
            state = self.factory(key) if self.keyed else self.factory()
            entry = self._open[key] = [state, 0, t, t]
        return entry

    def update(self, key: Key, t: float, x: Any) -> list[ClosedWindow[S]]:
        entry = self._entry(key, float(t))
        entry[0].update(x)
        entry[1] += 1
        entry[3] = max(entry[3], float(t))
        entry[2] = min(entry[2], float(t))
        if entry[1] >= self.n:
            del self._open[key]
            return [ClosedWindow(key, entry[2], entry[3], entry[0])]
        return []

    def update_many(self, key: Key, times: Any, batch: Any) -> list[ClosedWindow[S]]:
        times = np.asarray(times, dtype=np.float64)
        out: list[ClosedWindow[S]] = []
        i = 0
        while i < times.size:
            entry = self._entry(key, float(times[i]))
            j = min(times.size, i + self.n - entry[1])
            idx = np.arange(i, j)
            entry[0].update_many(take(batch, idx) if (i, j) != (0, times.size) else batch)
            entry[1] += j - i
            entry[2] = min(entry[2], float(times[i:j].min()))
            entry[3] = max(entry[3], float(times[i:j].max()))
            if entry[1] >= self.n:
                del self._open[key]
                out.append(ClosedWindow(key, entry[2], entry[3], entry[0]))
            i = j
        return out

    def flush(self) -> list[ClosedWindow[S]]:
        out = [ClosedWindow(k, e[2], e[3], e[0]) for k, e in self._open.items()]
        self._open.clear()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "open": [
                [_key_to_json(k), e[0].to_dict(), e[1], e[2], e[3]] for k, e in self._open.items()
            ],
        }

    @classmethod
    def from_dict(
        cls,
        d: Mapping[str, Any],
        factory: Callable[..., S],
        load_state: Callable[[Any], S],
        keyed: bool = False,
    ) -> CountWindow[S]:
        w = cls(d["n"], factory, keyed)
        w._open = {
            _key_from_json(k): [load_state(s), int(c), float(a), float(b)]
            for k, s, c, a, b in d["open"]
        }
        return w
