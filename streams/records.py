"""Records <-> Avro: the one place where lastmile's event objects become the dicts its
schemas describe, and back.

The roles, the CLI and the tests all map through here, so a schema change is met in one
module: a metric written by the monitor and one written by the learner are the same record.

>>> from monitors.events import MetricValue
>>> m = MetricValue(model="fraud", version="3", window_start=0.0, window_end=60.0,
...                 metric="accuracy", feature=None, value=0.9, n=100)
>>> record = metric_to_avro(m, ts_ms=1)
>>> record["version"], record["window_end"]
(3, 60000)
>>> metric_from_avro(record) == m
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitors.events import AlertEvent, MetricValue

__all__ = [
    "ALL_VERSIONS",
    "alert_from_avro",
    "alert_to_avro",
    "metric_from_avro",
    "metric_to_avro",
    "ms_from_seconds",
    "version_from_avro",
    "version_to_avro",
]

#: The version of metrics and alerts about a model as a whole (Avro: null).
ALL_VERSIONS = "*"


def ms_from_seconds(seconds: float) -> int:
    return int(round(seconds * 1000.0))


def version_to_avro(version: str | int | None) -> int | None:
    """Monitor versions are strings ("3", or "*" for all versions); Avro's are ints or null."""
    if version is None or isinstance(version, int):
        return version
    text = str(version).lstrip("v")
    return int(text) if text.isdigit() else None


def version_from_avro(version: int | None) -> str:
    return ALL_VERSIONS if version is None else str(version)


def metric_to_avro(metric: MetricValue, ts_ms: int) -> dict[str, Any]:
    """A MonitorMetric record: window times to epoch ms, version to int, `ts` stamped."""
    return {
        "model": metric.model,
        "version": version_to_avro(metric.version),
        "segment": metric.segment,
        "metric": metric.metric,
        "feature": metric.feature,
        "value": float(metric.value),
        "n": int(metric.n),
        "window_start": ms_from_seconds(metric.window_start),
        "window_end": ms_from_seconds(metric.window_end),
        "ts": int(ts_ms),
    }


def metric_from_avro(record: Mapping[str, Any]) -> MetricValue:
    """The inverse of :func:`metric_to_avro` (`ts` is dropped)."""
    return MetricValue(
        model=record["model"],
        version=version_from_avro(record.get("version")),
        window_start=record["window_start"] / 1000.0,
        window_end=record["window_end"] / 1000.0,
        metric=record["metric"],
        feature=record.get("feature"),
        value=record["value"],
        segment=record.get("segment"),
        n=record.get("n", 0),
    )


def alert_to_avro(alert: AlertEvent) -> dict[str, Any]:
    """An Alert record. The schema has no segment: it is in `message` and `alert_id`."""
    return {
        "alert_id": alert.alert_id,
        "model": alert.model,
        "version": version_to_avro(alert.version),
        "kind": alert.kind,
        "metric": alert.metric,
        "feature": alert.feature,
        "state": alert.state,
        "value": float(alert.value),
        "threshold": float(alert.threshold),
        "severity": alert.severity,
        "rule": alert.rule,
        "ts": ms_from_seconds(alert.ts),
        "message": alert.message,
    }


def alert_from_avro(record: Mapping[str, Any]) -> AlertEvent:
    """An AlertEvent from an Alert record (segment unknown: the schema does not carry it)."""
    return AlertEvent(
        model=record["model"],
        version=version_from_avro(record.get("version")),
        kind=record["kind"],
        metric=record["metric"],
        feature=record.get("feature"),
        value=record["value"],
        threshold=record["threshold"],
        severity=record["severity"],
        state=record["state"],
        rule=record.get("rule", ""),
        ts=record["ts"] / 1000.0,
    )
