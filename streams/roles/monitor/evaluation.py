"""Closed windows out: their drift, quality and performance metrics, and the metrics
and alerts encoded for ``monitor.metrics`` / ``monitor.alerts``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from monitors.aggregate import PredictionSketch
from monitors.events import AlertEvent, MetricValue
from monitors.windows import ClosedWindow
from streams.kafka.lane import Output
from streams.kafka.takeover import identity_header
from streams.records import alert_to_avro, metric_to_avro

log = logging.getLogger("lastmile.monitor")

__all__ = ["WindowEmission", "alert_identity", "metric_identity"]


class WindowEmission:
    """Part of :class:`~streams.roles.monitor.handler.Monitor`: evaluates closed windows
    and encodes what goes out (the rule engine turns metrics into alerts in between).

    A mixin: ``settings``, ``codec``, ``performance``, ``comparison``, ``counts`` and
    :meth:`context` are the monitor's."""

    def evaluate_windows(
        self, closed: Sequence[ClosedWindow[PredictionSketch]]
    ) -> list[MetricValue]:
        """The metrics of closed windows, each window span followed by the rolling
        performance up to its end."""
        out: list[MetricValue] = []
        last: tuple[float, float] | None = None
        for c in closed:
            if last is not None and (c.start, c.end) != last:
                out += self._collect_performance(*last)
            last = (c.start, c.end)
            if len(c.key) > 2:
                # Within segment "plan=gold", plan is constant by construction: its drift
                # says nothing, and it would count in the segment's drift share.
                c.state.features.pop(str(c.key[2]).partition("=")[0], None)
            try:
                out += self.context(c.key[0], c.key[1]).evaluate(c)
            except Exception:
                # One broken window must not stop the monitor (or replay forever).
                self.counts["evaluate_errors"] += 1
                log.exception("monitor: cannot evaluate window %s [%s, %s)", c.key, c.start, c.end)
        if last is not None:
            out += self._collect_performance(*last)
        return out

    def _collect_performance(self, start: float, end: float) -> list[MetricValue]:
        out = [m for p in self.performance.values() for m in p.collect(start, end)]
        return out + self.comparison.collect(start, end)

    def encode_outputs(
        self, metrics: Sequence[MetricValue], alerts: Sequence[AlertEvent], now_ms: int
    ) -> list[Output]:
        """Metrics and alerts as records for their topics, keyed by model."""
        s = self.settings
        out: list[Output] = []
        if metrics:
            encoded = self.codec.encode_many(
                "MonitorMetric", [metric_to_avro(m, now_ms) for m in metrics], s.topic_metrics
            )
            out += [
                Output(s.topic_metrics, value, m.model, [*headers, metric_identity(m)])
                for m, (value, headers) in zip(metrics, encoded, strict=True)
            ]
        for a in alerts:
            value, headers = self.codec.encode("Alert", alert_to_avro(a), s.topic_alerts)
            out.append(Output(s.topic_alerts, value, a.model, [*headers, alert_identity(a)]))
        return out


# A replay emits the same metrics and alerts, but maybe in other batches (a window closes
# when the watermark allows): the identity lets the lane skip what a killed worker left
# visible wherever the replay emits it again (streams/kafka/takeover.py).


def metric_identity(m: MetricValue) -> tuple[str, bytes]:
    """The ``lastmile-id`` header of a metric record: which value of which window.

    >>> metric_identity(MetricValue("m", "1", 60.0, 120.0, "psi", "x", 0.1))
    ('lastmile-id', b'm|1|None|psi|x|60.0|120.0')
    """
    parts = (m.model, m.version, m.segment, m.metric, m.feature, m.window_start, m.window_end)
    return identity_header("|".join(map(str, parts)))


def alert_identity(a: AlertEvent) -> tuple[str, bytes]:
    """The ``lastmile-id`` header of an alert record: which transition of which rule.
    The time is the window's end, not the wall clock, so a replay gives the same id.

    >>> a = AlertEvent("m", "1", "drift", "drift", "x", 0.4, 0.2, "warning",
    ...                state="firing", rule="feature_drift", ts=120.0)
    >>> alert_identity(a)
    ('lastmile-id', b'feature_drift|m|1|None|drift|x|firing|120.0')
    """
    parts = (a.rule, a.model, a.version, a.segment, a.metric, a.feature, a.state, a.ts)
    return identity_header("|".join(map(str, parts)))
