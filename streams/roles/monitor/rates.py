"""The dead-letter rate: processed requests and dead letters, in scorer time, per model
and for all models, as a metric when their window closes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from confluent_kafka import Message

from monitors.events import MetricValue
from monitors.quality import dead_letter_rate
from monitors.state import RateCounter
from monitors.windows import ClosedWindow
from streams.records import ALL_VERSIONS

__all__ = ["ALL_MODELS", "DeadLetterRate"]

#: The model of metrics about all traffic (the dead-letter rate of everything).
ALL_MODELS = "*"


class DeadLetterRate:
    """Part of :class:`~streams.roles.monitor.handler.Monitor`: the rows of the
    dead-letter rate window, and the metrics of its closed windows (a mixin: ``counts``
    is the monitor's)."""

    def rate_items(
        self,
        predictions: Sequence[tuple[Message, dict[str, Any]]],
        dead: Sequence[tuple[Message, dict[str, Any]]],
    ) -> list[tuple[Any, np.ndarray, Any]]:
        """Rows of the dead-letter rate window: processed requests (non-shadow predictions,
        at their scored time) and dead letters (at their dead-lettering time), per model
        and for all models."""
        models: list[str | None] = []
        times: list[float] = []
        flags: list[bool] = []
        for _m, r in predictions:
            if r.get("variant") != "shadow":
                models.append(r["model"])
                times.append(r["scored_time"] / 1000.0)
                flags.append(False)
        for _m, r in dead:
            models.append(r.get("model"))
            times.append(r["ts"] / 1000.0)
            flags.append(True)
        self.counts["dead_letters"] += len(dead)
        if not times:
            return []
        t = np.asarray(times, dtype=np.float64)
        f = np.asarray(flags, dtype=bool)
        items: list[tuple[Any, np.ndarray, Any]] = [((ALL_MODELS,), t, {"dead": f})]
        by_model: dict[str, list[int]] = defaultdict(list)
        for i, model in enumerate(models):
            if model is not None:
                by_model[model].append(i)
        for model, idx in by_model.items():
            sel = np.asarray(idx, dtype=np.int64)
            items.append(((model,), t[sel], {"dead": f[sel]}))
        return items

    def evaluate_rates(self, closed: Sequence[ClosedWindow[RateCounter]]) -> list[MetricValue]:
        """The dead-letter rate and count of each closed window."""
        out = []
        for c in closed:
            state = c.state
            for metric, value in (
                ("dead_letter_rate", dead_letter_rate(state.dead, state.processed)),
                ("dead_letters", float(state.dead)),
            ):
                out.append(
                    MetricValue(
                        c.key[0], ALL_VERSIONS, c.start, c.end, metric, None, value, None, state.n
                    )
                )
        return out
