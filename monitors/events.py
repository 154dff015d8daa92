"""What the monitor emits: one window's value of one metric, and alerts.

These are plain records. The monitor role maps them one-to-one onto the Avro
records of `monitor.metrics` and `monitor.alerts`, so field names are kept plain
and every value is a JSON/Avro primitive.

>>> m = MetricValue("churn", "3", 0.0, 60.0, "psi", "age", 0.31, n=5000)
>>> m.key
('churn', '3', None, 'psi', 'age')
>>> MetricValue.from_dict(m.to_dict()) == m
True

"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Literal, NamedTuple

__all__ = ["AlertEvent", "MetricValue", "Measure", "KINDS", "SEVERITIES"]

#: Alert kinds, as in DESIGN.md's `monitor.alerts` contract.
KINDS = ("drift", "performance", "quality", "latency")
#: Severities, from least to most urgent.
SEVERITIES = ("info", "warning", "critical")


class Measure(NamedTuple):
    """A metric computed from a window, before it is stamped with model and window."""

    metric: str
    feature: str | None
    value: float
    n: int


@dataclasses.dataclass(frozen=True, slots=True)
class MetricValue:
    """One window's value of one metric, for one feature where it applies.

    `feature` is None for metrics of the whole model (accuracy, throughput, ...);
    the model score is reported as the pseudo-feature ``"__score__"``.
    `window_start`/`window_end` are event times (seconds) of the window ``[start, end)``,
    `n` the number of events the value was computed over.

    """

    model: str
    version: str
    window_start: float
    window_end: float
    metric: str
    feature: str | None
    value: float
    segment: str | None = None
    n: int = 0

    @property
    def key(self) -> tuple[str, str, str | None, str, str | None]:
        return (self.model, self.version, self.segment, self.metric, self.feature)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricValue:
        return cls(**d)


@dataclasses.dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert firing or resolved.

    `ts` is the event time of the window that caused the transition (its end), not
    the wall clock, so that replaying the same metrics yields the same alerts.

    >>> a = AlertEvent("churn", "3", "drift", "drift", "age", 1.0, 0.5, "warning",
    ...                state="firing", rule="feature_drift", ts=120.0)
    >>> AlertEvent.from_dict(a.to_dict()) == a
    True
    >>> a.alert_id == dataclasses.replace(a, state="resolved", value=0.0).alert_id
    True

    """

    model: str
    version: str
    kind: str
    metric: str
    feature: str | None
    value: float
    threshold: float
    severity: str
    state: Literal["firing", "resolved"] = "firing"
    rule: str = ""
    ts: float = 0.0
    segment: str | None = None

    @property
    def alert_id(self) -> str:
        """Stable id shared by an alert's firing and its resolution (the dedupe key)."""
        key = "|".join(
            str(p)
            for p in (self.rule, self.model, self.version, self.segment, self.metric, self.feature)
        )
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    @property
    def message(self) -> str:
        """One line for people.

        >>> AlertEvent("churn", "3", "drift", "drift", "age", 1.0, 0.5, "warning",
        ...            rule="feature_drift").message
        '[WARNING] FIRING churn v3 drift: drift of age = 1 (threshold 0.5, rule feature_drift)'

        """
        what = self.metric if self.feature is None else f"{self.metric} of {self.feature}"
        segment = f" segment {self.segment}" if self.segment else ""
        return (
            f"[{self.severity.upper()}] {self.state.upper()} {self.model} v{self.version}"
            f"{segment} {self.kind}: {what} = {self.value:.4g} "
            f"(threshold {self.threshold:.4g}, rule {self.rule})"
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertEvent:
        return cls(**d)
