"""The overview page's queries: traffic, latency, traffic share and the sink's health."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dashboard.queries.cache import cached
from dashboard.queries.connection import query_frame
from dashboard.queries.filters import (
    BUCKET_SQL,
    MINUTES_FILTER,
    MODEL_FILTER,
    TS_FILTER,
    VERSION_FILTER,
)
from dashboard.queries.time_range import as_utc
from dashboard.queries.view import View


@cached
def traffic_totals(view: View) -> dict[str, float]:
    """Predictions, requests and latency quantiles (ms) of the range, from the rollup.

    Requests are the predictions of the answering variants (a shadow scores the same
    request again) plus the requests that were dead-lettered instead of scored.
    """
    totals = query_frame(
        view.db,
        "traffic_totals",
        f"""
        SELECT sum(n) AS predictions,
               sumIf(n, variant != 'shadow') AS answered,
               quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS latency_ms
        FROM predictions_1m
        WHERE {MINUTES_FILTER} AND {MODEL_FILTER} AND {VERSION_FILTER}""",
        view.params(),
    )
    dead = query_frame(
        view.db,
        "dead_letter_totals",
        f"""
        SELECT count() AS dead_letters,
               countIf(source_topic = {{requests_topic:String}}) AS dead_requests
        FROM dead_letters FINAL
        WHERE {TS_FILTER} AND {MODEL_FILTER}""",
        view.params(requests_topic=view.requests_topic),
    )
    row = totals.iloc[0] if len(totals) else None
    q = list(row["latency_ms"]) if row is not None and row["latency_ms"] is not None else []
    q = [float(x) for x in q] + [math.nan] * (3 - len(q))
    predictions = int(row["predictions"] or 0) if row is not None else 0
    answered = int(row["answered"] or 0) if row is not None else 0
    dead_letters = int(dead.iloc[0]["dead_letters"]) if len(dead) else 0
    dead_requests = int(dead.iloc[0]["dead_requests"]) if len(dead) else 0
    if predictions == 0:
        q = [math.nan] * 3
    return {
        "predictions": predictions,
        "requests": answered + dead_requests,
        "dead_letters": dead_letters,
        "latency_p50_ms": q[0],
        "latency_p95_ms": q[1],
        "latency_p99_ms": q[2],
    }


@cached
def traffic_now(view: View) -> dict[str, float]:
    """Requests, predictions and dead letters per second over the range's last minute.

    From the raw tables, not the per-minute rollup: a minute of the rollup is still
    filling while it lasts. Requests count as in :func:`traffic_totals`.
    """
    since, until = view.last_minute
    params = view.params(since=since, until=until, requests_topic=view.requests_topic)
    frame = query_frame(
        view.db,
        "traffic_now",
        f"""
        SELECT (SELECT count() FROM predictions
                WHERE {TS_FILTER} AND {MODEL_FILTER} AND {VERSION_FILTER}) AS predictions,
               (SELECT count() FROM predictions
                WHERE {TS_FILTER} AND {MODEL_FILTER} AND {VERSION_FILTER}
                  AND variant != 'shadow') AS answered,
               (SELECT count() FROM dead_letters FINAL
                WHERE {TS_FILTER} AND {MODEL_FILTER}) AS dead_letters,
               (SELECT count() FROM dead_letters FINAL
                WHERE {TS_FILTER} AND {MODEL_FILTER}
                  AND source_topic = {{requests_topic:String}}) AS dead_requests""",
        params,
    )
    row = frame.iloc[0] if len(frame) else {}
    seconds = max((until - since).total_seconds(), 1.0)
    count = {k: int(row.get(k, 0) or 0) for k in ("predictions", "answered", "dead_letters")}
    dead_requests = int(row.get("dead_requests", 0) or 0)
    return {
        "seconds": seconds,
        "predictions": count["predictions"] / seconds,
        "requests": (count["answered"] + dead_requests) / seconds,
        "dead_letters": count["dead_letters"] / seconds,
    }


@cached
def traffic_series(view: View) -> pd.DataFrame:
    """Predictions per chart bucket and model/version/variant."""
    return query_frame(
        view.db,
        "traffic_series",
        f"""
        SELECT {BUCKET_SQL.format(col="minute")} AS t, model, version, variant, sum(n) AS n
        FROM predictions_1m
        WHERE {MINUTES_FILTER} AND {MODEL_FILTER} AND {VERSION_FILTER}
        GROUP BY t, model, version, variant ORDER BY t""",
        view.params(),
    )


@cached
def latency_series(view: View) -> pd.DataFrame:
    """Latency quantiles (ms) per chart bucket, merged from the per-minute t-digests."""
    frame = query_frame(
        view.db,
        "latency_series",
        f"""
        SELECT {BUCKET_SQL.format(col="minute")} AS t,
               quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_q) AS q
        FROM predictions_1m
        WHERE {MINUTES_FILTER} AND {MODEL_FILTER} AND {VERSION_FILTER}
        GROUP BY t ORDER BY t""",
        view.params(),
    )
    rows = []
    for r in frame.itertuples():
        for name, value in zip(("p50", "p95", "p99"), r.q, strict=False):
            rows.append({"t": r.t, "quantile": name, "latency_ms": float(value)})
    return pd.DataFrame(rows, columns=["t", "quantile", "latency_ms"])


@cached
def traffic_share(view: View) -> pd.DataFrame:
    """Each model version's predictions in the range and its share of its model's traffic."""
    frame = query_frame(
        view.db,
        "traffic_share",
        f"""
        SELECT model, version, variant, sum(n) AS predictions
        FROM predictions_1m
        WHERE {MINUTES_FILTER} AND {MODEL_FILTER} AND {VERSION_FILTER}
        GROUP BY model, version, variant ORDER BY model, version, variant""",
        view.params(),
    )
    if frame.empty:
        return frame.assign(share=pd.Series(dtype=float))
    answered = frame[frame["variant"] != "shadow"].groupby("model")["predictions"].sum()
    frame["share"] = [
        (r.predictions / answered.get(r.model, 0)) if answered.get(r.model, 0) else math.nan
        for r in frame.itertuples()
    ]
    return frame


@cached
def sink_status(view: View) -> dict[str, Any] | None:
    """The sink workers' latest self-report (streams/roles/sink/writer.py writes it every 10 s)."""
    frame = query_frame(
        view.db,
        "sink_status",
        """
        SELECT count() AS workers, sum(lag) AS lag, max(ts) AS last_report,
               sum(buffered_rows) AS buffered_rows, max(paused) AS paused,
               sum(errors) AS errors, argMax(last_error, ts) AS last_error
        FROM sink_status FINAL""",
        {},
    )
    if frame.empty or int(frame.iloc[0]["workers"]) == 0:
        return None
    row = frame.iloc[0].to_dict()
    row["last_report"] = as_utc(pd.Timestamp(row["last_report"]).to_pydatetime())
    return row
