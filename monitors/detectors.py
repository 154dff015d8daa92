"""Streaming change detectors on a scalar stream (the score, or the model's error).

Windows compare distributions once per window; these react within a window, one value
at a time. They wrap River's detectors (``drift.ADWIN``, ``drift.PageHinkley``,
``drift.KSWIN``) behind one protocol, ``update(x) -> bool`` (True when a change is
detected at this value), so the role can swap them by name.

State is River objects: pickle-safe (``pickle.dumps(bank)``), which is how the role
persists them; :meth:`DetectorBank.to_bytes`/``from_bytes`` do that.

"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from river import drift as river_drift

from monitors.events import MetricValue

__all__ = [
    "ADWIN",
    "KSWIN",
    "DETECTORS",
    "Detector",
    "DetectorBank",
    "PageHinkley",
    "RiverDetector",
    "make_detector",
    "prediction_error",
]


class Detector(Protocol):
    def update(self, x: float) -> bool: ...


class RiverDetector:
    """Adapts any River drift detector to ``update(x) -> bool``.

    >>> from river import drift
    >>> det = RiverDetector(drift.PageHinkley())
    >>> det.update_many([0.0] * 100 + [5.0] * 100)
    [110]

    """

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.n = 0
        self.detections = 0

    def update(self, x: float) -> bool:
        self.detector.update(x)
        self.n += 1
        if self.detector.drift_detected:
            self.detections += 1
            return True
        return False

    def update_many(self, xs: Iterable[float]) -> list[int]:
        """Feed values in order; the indices (within `xs`) where a change was detected."""
        update = self.update
        return [i for i, x in enumerate(xs) if update(float(x))]

    @property
    def drift_detected(self) -> bool:
        return bool(self.detector.drift_detected)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detector!r})"


class ADWIN(RiverDetector):
    """ADaptive WINdowing: a change when two sub-windows' means differ significantly.

    Good on the error stream (0/1 mistakes or absolute errors): no parameter but the
    confidence `delta`.

    >>> det = ADWIN()
    >>> hits = det.update_many([0.0] * 1000 + [1.0] * 1000)
    >>> len(hits) >= 1 and 1000 < hits[0] < 1100
    True

    """

    def __init__(self, delta: float = 0.002, **kwargs: Any) -> None:
        super().__init__(river_drift.ADWIN(delta=delta, **kwargs))


class PageHinkley(RiverDetector):
    """Page-Hinkley: cumulative deviation from the running mean beyond `threshold`.

    >>> PageHinkley(threshold=10).update_many([0.0] * 100 + [2.0] * 50)
    [105]

    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 0.9999,
        mode: str = "both",
    ) -> None:
        super().__init__(
            river_drift.PageHinkley(
                min_instances=min_instances,
                delta=delta,
                threshold=threshold,
                alpha=alpha,
                mode=mode,
            )
        )


class KSWIN(RiverDetector):
    """Kolmogorov-Smirnov windowing: a KS test between recent values and older ones.

    Suits the score stream (any distribution change, not just the mean). Seeded, so a
    replay detects at the same indices.

    >>> det = KSWIN(seed=42)
    >>> hits = det.update_many([0.1, 0.2, 0.3, 0.4] * 50 + [0.9, 0.95] * 50)
    >>> len(hits) > 0 and hits[0] >= 200
    True

    """

    def __init__(
        self, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30, seed: int = 42
    ) -> None:
        super().__init__(
            river_drift.KSWIN(alpha=alpha, window_size=window_size, stat_size=stat_size, seed=seed)
        )


def prediction_error(y_true: Any, y_pred: Any) -> float:
    """The error stream's value for one joined outcome.

    Classification (labels, bools or strings): 1.0 for a mistake, 0.0 otherwise, so a
    detector's mean is the error rate. Regression (numbers): the absolute error.

    >>> prediction_error(True, False), prediction_error("a", "a"), prediction_error(3.0, 2.5)
    (1.0, 0.0, 0.5)

    """
    numbers = (int, float)
    if (
        isinstance(y_true, numbers)
        and isinstance(y_pred, numbers)
        and not isinstance(y_true, bool)
        and not isinstance(y_pred, bool)
    ):
        return abs(float(y_true) - float(y_pred))
    return float(y_true != y_pred)


#: Detector classes by the name used in configuration.
DETECTORS: dict[str, type[RiverDetector]] = {
    "adwin": ADWIN,
    "page_hinkley": PageHinkley,
    "kswin": KSWIN,
}


def make_detector(name: str, **params: Any) -> RiverDetector:
    """A detector by configuration name (``adwin``, ``page_hinkley``, ``kswin``).

    >>> make_detector("adwin", delta=0.01).detector.delta
    0.01

    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; one of {sorted(DETECTORS)}") from None
    return cls(**params)


class DetectorBank:
    """One detector per (model, version[, segment]) on one named stream.

    A detection becomes a :class:`MetricValue` with value 1.0 and metric
    ``"<stream>_change"`` (e.g. ``score_change``, ``error_change``), which alert rules
    pick up like any other metric; the window fields are the detection's event time.

    >>> bank = DetectorBank("error", lambda: PageHinkley(threshold=10))
    >>> events = [bank.update(("churn", "3"), x, ts=float(i))
    ...           for i, x in enumerate([0.0] * 100 + [2.0] * 50)]
    >>> [(e.metric, e.window_end) for e in events if e is not None]
    [('error_change', 105.0)]
    >>> DetectorBank.from_bytes(bank.to_bytes()).stream
    'error'

    """

    def __init__(self, stream: str, factory: Callable[[], RiverDetector]) -> None:
        self.stream = stream
        self.factory = factory
        self.detectors: dict[tuple[str, ...], RiverDetector] = {}

    @property
    def metric(self) -> str:
        return f"{self.stream}_change"

    def detector(self, key: tuple[str, ...]) -> RiverDetector:
        det = self.detectors.get(key)
        if det is None:
            det = self.detectors[key] = self.factory()
        return det

    def update(self, key: tuple[Any, ...], x: float, ts: float) -> MetricValue | None:
        """Feed `x` of `key` = (model, version[, segment]); a metric value on a detection."""
        det = self.detector(key)
        if not det.update(x):
            return None
        model, version, *rest = key
        return MetricValue(
            model=model,
            version=version,
            window_start=ts,
            window_end=ts,
            metric=self.metric,
            feature=None,
            value=1.0,
            segment=rest[0] if rest else None,
            n=det.n,
        )

    def to_bytes(self) -> bytes:
        # The factory is often a lambda: keep only what a restart needs and
        # rebuild new keys' detectors from the first detector's class.
        return pickle.dumps({"stream": self.stream, "detectors": self.detectors})

    @classmethod
    def from_bytes(
        cls, data: bytes, factory: Callable[[], RiverDetector] | None = None
    ) -> DetectorBank:
        """Restore; `factory` makes detectors for keys not seen before the restart."""
        d = pickle.loads(data)
        bank = cls(d["stream"], factory or ADWIN)
        bank.detectors = d["detectors"]
        return bank
