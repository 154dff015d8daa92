"""Records <-> Avro: the one place where lastmile's event objects become the dicts its
schemas describe, and back.

The roles, the CLI and the tests all map through here, so a schema change is met in one
module: a metric written by the monitor and one written by the learner are the same record.
Metrics and alerts (``MonitorMetric``, ``Alert``), a model event (``ModelEvent``), and the
values the scorer adds to a request to make its ``Prediction`` (as a projection: the hot
path builds no dict). Dead letters are built where messages fail
(:mod:`streams.kafka.deadletters`).

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

from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from monitors.events import AlertEvent, MetricValue

__all__ = [
    "ALL_VERSIONS",
    "MODEL_VERSION_DEFAULTS",
    "PREDICTION_FIELDS",
    "alert_from_avro",
    "alert_to_avro",
    "metric_from_avro",
    "metric_to_avro",
    "model_event_to_avro",
    "ms_from_seconds",
    "prediction_values",
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


# -- predictions ----------------------------------------------------------------------------


# What the scorer adds to a request's fields to make its Prediction (the others,
# request_id, model, features, event_time, entity_id, caller and metadata, are the
# request's own): encoded together with Codec.encode_projections, no record dict built.
PREDICTION_FIELDS = ("version", "variant", "score", "label", "scored_time", "latency_ms")


def prediction_values(
    messages: Sequence[Any],
    requests: Sequence[dict[str, Any]],
    results: Sequence[tuple[float, str]],
    version: int,
    variant: str,
    now_ms: int,
) -> list[tuple]:
    """The values of :data:`PREDICTION_FIELDS` for each request (read from its message)
    and its ``(score, label)``, scored at `now_ms`; a latency counts from when its
    request reached the broker (else from its event time).

    >>> from schemas import Codec
    >>> class Sent:
    ...     def timestamp(self): return (1, 1_000)
    >>> class Unstamped:
    ...     def timestamp(self): return (0, -1)
    >>> r = {"request_id": "r1", "model": "m", "features": {"x": 1.0}, "event_time": 900,
    ...      "entity_id": None, "caller": None, "metadata": {}}
    >>> values = prediction_values(
    ...     [Sent(), Unstamped()], [r, r], [(0.7, "1"), (0.2, "0")], 2, "champion", 1_025)
    >>> [v[-1] for v in values]
    [25.0, 125.0]
    >>> codec = Codec()
    >>> [value, _], headers = codec.encode_projections(
    ...     "Prediction", [r, r], PREDICTION_FIELDS, values)
    >>> p = codec.decode(value, headers, "Prediction")
    >>> p["request_id"], p["version"], p["variant"], p["latency_ms"], p["features"]
    ('r1', 2, 'champion', 25.0, {'x': 1.0})
    """
    if not len(messages) == len(requests) == len(results):
        raise ValueError(
            f"{len(messages)} messages, {len(requests)} requests and {len(results)} results"
        )
    if not results:
        return []
    sent = [message.timestamp()[1] for message in messages]
    if min(sent) <= 0:  # no broker time: count from the event time
        sent = [ms if ms > 0 else r["event_time"] for ms, r in zip(sent, requests, strict=True)]
    latencies = [float(now_ms - ms) if ms < now_ms else 0.0 for ms in sent]
    scores, labels = zip(*results, strict=True)
    return list(zip(repeat(version), repeat(variant), scores, labels, repeat(now_ms), latencies))


# -- model events ---------------------------------------------------------------------------

#: A ModelEvent version's fields beside ``version``, with the value a missing one takes.
MODEL_VERSION_DEFAULTS = {
    "flavor": "",
    "sha256": "",
    "path": "",
    "created_at": 0,
    "parent": None,
    "retired": False,
    "meta_json": "{}",
}


def model_event_to_avro(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event cut to the fields of ``schemas/ModelEvent.avsc`` (the codec refuses others).

    Lost on the way: ``seq``, ``detail``, and the alias log's ``rollback`` marks;
    workers need none of them (ordering uses ``ts``, rollback reads state.json).
    """
    state = event["state"]
    return {
        "model": event["model"],
        "kind": event["kind"],
        "version": event.get("version"),
        "actor": event.get("actor"),
        "ts": event["ts"],
        "state": {
            "versions": [
                {
                    "version": int(v["version"]),
                    **{
                        k: v.get(k, d) if v.get(k) is not None else d
                        for k, d in MODEL_VERSION_DEFAULTS.items()
                    },
                }
                for v in state.get("versions") or []
            ],
            "aliases": dict(state.get("aliases") or {}),
            "split": {k: float(w) for k, w in (state.get("split") or {}).items()},
            "shadow": state.get("shadow"),
            "alias_history": [
                {"alias": e["alias"], "version": e.get("version"), "ts": e.get("ts") or 0}
                for e in state.get("alias_history") or []
            ],
            "pause": state.get("pause"),
            "snapshot_request": state.get("snapshot_request"),
        },
    }
