"""What the scorer and the monitor count for Prometheus beyond their status counters.

The scorer's :class:`ScorerTally` takes one call per (model, version, variant) group
of a batch: its predictions and their latencies, binned at once. The monitor's
:class:`MonitorTally` takes one call per batch (the windows it closed, the dead
letters it read, the metrics it computed) and keeps it aside until the batch's
transaction commits: an aborted batch is folded again from the last snapshot, and
must not count twice.

Labels stay bounded: model, version and variant come from the registry, never a
request; a dead letter's stage and type are words of the code, but anyone may
produce to the dead-letter topic, so past :data:`MAX_REASONS` pairs the rest count as
``other``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from streams.metrics.histogram import BatchHistogram

__all__ = ["MAX_REASONS", "MonitorTally", "ScorerTally"]

MAX_REASONS = 64
_LATENCY = itemgetter(-1)  # latency_ms, the last of PREDICTION_FIELDS
_OTHER = ("other", "other")


class ScorerTally:
    """Predictions and their scoring latency per model, version and variant.

    >>> tally = ScorerTally()
    >>> tally.scored("fraud", 3, "champion", [(3, "champion", 0.9, "1", 0, 2.0),
    ...                                       (3, "champion", 0.1, "0", 0, 40.0)])
    >>> tally.predictions("fraud", 3, "champion")
    2
    >>> sorted(f.name for f in tally.families())
    ['lastmile_predictions', 'lastmile_scoring_latency_seconds']
    >>> tally.families()[1].samples[0].labels
    {'role': 'scorer', 'model': 'fraud', 'version': '3', 'variant': 'champion'}
    """

    def __init__(self) -> None:
        self.latency = BatchHistogram(
            "lastmile_scoring_latency_seconds",
            "From a request reaching the broker to its prediction (the Prediction's "
            "latency_ms), per model version and variant.",
            ["model", "version", "variant"],
            count_name="lastmile_predictions_total",
            count_documentation="Predictions made, per model version and variant.",
        )

    def scored(self, model: str, version: int, variant: str, values: Sequence[tuple]) -> None:
        """One group of a batch was scored: `values` are its predictions' field values
        (:func:`~streams.records.prediction_values`), the latency in ms last."""
        if values:
            milliseconds = np.fromiter(map(_LATENCY, values), np.float64, len(values))
            self.latency.observe_many((model, str(version), variant), milliseconds / 1000.0)

    def predictions(self, model: str, version: int, variant: str) -> int:
        return self.latency.count((model, str(version), variant))

    def families(self, role: str = "scorer", into: list[Any] | None = None) -> list[Any]:
        """Its families, labelled with the `role` that scored; added to `into` (an
        earlier call's result) when given, so a worker running the scorer and the
        gateway shows one family of each name."""
        merged = self.latency.families(tuple(into) if into else None, [("role", role)])
        return list(merged)


class MonitorTally:
    """Windows closed, dead letters read, and the latest drift, per batch, on commit.

    >>> from types import SimpleNamespace as NS
    >>> from monitors.events import MetricValue
    >>> tally = MonitorTally()
    >>> window = NS(key=("fraud", "3"))
    >>> share = MetricValue("fraud", "3", 0.0, 60.0, "drift_share", None, 0.5)
    >>> tally.batch([window], [{"stage": "score", "error_type": "feature_missing"}], [share])
    >>> tally.windows_closed
    Counter()
    >>> tally.committed()
    >>> tally.windows_closed[("fraud", "3")], tally.dead_letters[("score", "feature_missing")]
    (1, 1)
    """

    def __init__(self, stale_after_s: float = 6 * 3600.0) -> None:
        self.windows_closed: Counter[tuple[str, str]] = Counter()
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        # Latest value and when it came, so versions no longer served drop out.
        self.drift_share: dict[tuple[str, str], tuple[float, float]] = {}
        self.feature_drift: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.stale_after_s = stale_after_s
        self._pending: tuple[Counter, Counter, list[Any]] | None = None
        self._lock = threading.Lock()

    def batch(self, closed: Iterable[Any], letters: Iterable[dict], metrics: Iterable[Any]) -> None:
        """What one batch closed (windows keyed ``(model, version[, segment])``), the
        dead-letter records it read and the metrics it computed; counted on commit."""
        windows = Counter((w.key[0], w.key[1]) for w in closed if len(w.key) == 2)
        dead = Counter((str(r.get("stage")), str(r.get("error_type"))) for r in letters)
        drift = [m for m in metrics if m.segment is None and m.metric in ("drift_share", "drift")]
        self._pending = (windows, dead, drift)

    def committed(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        windows, dead, drift = pending
        now = time.time()
        with self._lock:
            self.windows_closed.update(windows)
            for key, n in dead.items():
                if key not in self.dead_letters and len(self.dead_letters) >= MAX_REASONS:
                    key = _OTHER
                self.dead_letters[key] += n
            for m in drift:
                if m.metric == "drift_share":
                    self.drift_share[(m.model, m.version)] = (m.value, now)
                elif m.feature is not None:
                    self.feature_drift[(m.model, m.version, m.feature)] = (m.value, now)

    def discard(self) -> None:
        """The batch's transaction aborted: it is folded again, and counted then."""
        self._pending = None

    def families(self) -> list[Any]:
        windows = CounterMetricFamily(
            "lastmile_monitor_windows_closed",
            "Windows the monitor closed and evaluated, per model version.",
            labels=["model", "version"],
        )
        dead = CounterMetricFamily(
            "lastmile_dead_letters",
            "Dead letters in the dead-letter topic, by stage and reason (error_type), "
            "counted by the monitor as it reads them: every role's and the gateway's.",
            labels=["stage", "reason"],
        )
        share = GaugeMetricFamily(
            "lastmile_drift_share",
            "Share of a version's features that drifted in its last closed window.",
            labels=["model", "version"],
        )
        feature = GaugeMetricFamily(
            "lastmile_feature_drift",
            "1 when a feature (or __score__) drifted in the version's last closed window.",
            labels=["model", "version", "feature"],
        )
        cutoff = time.time() - self.stale_after_s
        with self._lock:
            for key, n in self.windows_closed.items():
                windows.add_metric(list(key), n)
            for key, n in self.dead_letters.items():
                dead.add_metric(list(key), n)
            for family, latest in ((share, self.drift_share), (feature, self.feature_drift)):
                for key, (value, at) in list(latest.items()):
                    if at < cutoff:
                        del latest[key]
                    else:
                        family.add_metric(list(key), value)
        return [windows, dead, share, feature]
