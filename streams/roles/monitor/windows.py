"""The monitor's event-time windows: a watermark held back to the slowest partition,
the windows built from the settings, and feeding a batch in pane order."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from monitors.aggregate import PredictionSketch
from monitors.state import RateCounter
from monitors.windows import ClosedWindow, SlidingWindow, TumblingWindow, take
from streams.roles.monitor.settings import MonitorSettings

__all__ = [
    "FrontierClamp",
    "FrontierRateWindow",
    "FrontierSlidingWindow",
    "FrontierTumblingWindow",
    "fold_in_pane_order",
    "new_dead_letter_window",
    "new_prediction_window",
]


class FrontierClamp:
    """Mixin for windows: the watermark never passes `frontier`.

    The monitor reads several partitions whose event times advance unevenly (a fetch
    brings thousands of messages of one partition): the watermark follows the slowest
    partition that still has data, so the others' events are never judged late.
    """

    frontier: float = math.inf

    def advance(self, event_time: float) -> list[ClosedWindow[Any]]:
        return super().advance(min(event_time, self.frontier))  # type: ignore[misc]


class FrontierSlidingWindow(FrontierClamp, SlidingWindow[PredictionSketch]):
    """A sliding window whose watermark is held back to :attr:`frontier`."""


class FrontierTumblingWindow(FrontierClamp, TumblingWindow[PredictionSketch]):
    """A tumbling window whose watermark is held back to :attr:`frontier`."""


class FrontierRateWindow(FrontierClamp, TumblingWindow[RateCounter]):
    """The dead-letter rate's window held back to :attr:`frontier`, in scorer time: a
    partitioned monitor's owner reads its rows from several routers at their own paces."""


def fold_in_pane_order(
    window: SlidingWindow[Any], items: Sequence[tuple[Any, np.ndarray, Any]]
) -> list[ClosedWindow[Any]]:
    """Feed ``(key, times, batch)`` items into `window` pane by pane, oldest pane first.

    One window object holds every key and its watermark is shared: feeding a whole key
    at once would let that key's newest events close windows that another key's older
    events of the same batch still belong to. Pane order is what one-event-at-a-time
    processing in time order would do, at numpy speed.
    """
    runs: list[tuple[int, int, Any, np.ndarray, Any]] = []
    for order, (key, times, batch) in enumerate(items):
        if times.size == 0:
            continue
        panes = np.floor(times / window.step).astype(np.int64)
        lo, hi = int(panes.min()), int(panes.max())
        if lo == hi:
            runs.append((lo, order, key, times, batch))
            continue
        idx = np.argsort(panes, kind="stable")
        cuts = np.flatnonzero(np.diff(panes[idx])) + 1
        for chunk in np.split(idx, cuts):
            runs.append((int(panes[chunk[0]]), order, key, times[chunk], take(batch, chunk)))
    closed: list[ClosedWindow[Any]] = []
    for _pane, _order, key, times, batch in sorted(runs, key=lambda r: (r[0], r[1])):
        closed.extend(window.update_many(key, times, batch))
    return closed


def new_prediction_window(
    options: MonitorSettings, factory: Callable[[tuple[str, ...]], PredictionSketch]
) -> SlidingWindow[PredictionSketch]:
    """The predictions' window (tumbling or sliding, as configured), keyed, with a
    fresh sketch per key from `factory`."""
    o = options
    if o.tumbling:
        return FrontierTumblingWindow(o.window, factory, o.allowed_lateness, keyed=True)
    assert o.step is not None
    return FrontierSlidingWindow(o.window, o.step, factory, o.allowed_lateness, keyed=True)


def new_dead_letter_window(
    options: MonitorSettings, held: bool = False
) -> TumblingWindow[RateCounter]:
    """The dead-letter rate's tumbling window (`held`: a :class:`FrontierRateWindow`)."""
    # Dead letters and predictions meet in scorer time, read from two topics that
    # advance at their own pace: a window's worth of lateness keeps both.
    o = options
    cls = FrontierRateWindow if held else TumblingWindow
    return cls(o.window, RateCounter, max(o.allowed_lateness, o.window))
