"""The performance page's queries: the monitor's rolling metrics and the outcome join."""

from __future__ import annotations

import math

import pandas as pd

from dashboard.queries.cache import cached
from dashboard.queries.connection import query_frame
from dashboard.queries.filters import BUCKET_SQL, MINUTES_FILTER, TS_FILTER, VERSION_FILTER
from dashboard.queries.view import View

PERFORMANCE_METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "mae": "MAE",
    "rmse": "RMSE",
}
LABEL_DELAY_METRIC = "label_delay_p50"
# Above this many predictions in the range, the outcome join reads a hash sample.
JOIN_SAMPLE_ROWS = 1_000_000


@cached
def performance_metrics(view: View) -> pd.DataFrame:
    """Rolling performance and label delay per version, per chart bucket (mean)."""
    return query_frame(
        view.db,
        "performance_metrics",
        f"""
        SELECT {BUCKET_SQL.format(col="window_end")} AS t, version, metric,
               avg(value) AS value, max(n) AS n
        FROM metrics
        WHERE model = {{model:String}} AND has({{names:Array(String)}}, metric)
          AND segment = ''
          AND window_end > {{since:DateTime64(3, 'UTC')}}
          AND window_end <= {{until:DateTime64(3, 'UTC')}}
          AND ({{version:Int64}} < 0 OR version = {{version:Int64}} OR version = 0)
        GROUP BY t, version, metric ORDER BY t""",
        view.params(names=[*PERFORMANCE_METRICS, LABEL_DELAY_METRIC]),
    )


@cached
def outcome_join(view: View) -> pd.DataFrame:
    """Per version and variant: predictions in the range, how many have their label
    by now, and the accuracy / MAE / label delay on those, from the raw rows.

    Written against the base tables rather than the ``prediction_outcomes`` view,
    which has no model parameter. Three things keep it inside a page's budget on a
    big table:

    * the join key is ``cityHash64(request_id)``, not the string (half the time);
    * outcomes are bounded by time: a label's event time comes after its prediction
      (an hour of slack for clocks and labels stamped with the request's own time), so
      a short range never hashes the model's whole history of outcomes;
    * above ``JOIN_SAMPLE_ROWS`` predictions, a deterministic 1-in-k sample of the
      requests (by the same hash, on both sides: a sampled request keeps its label);
      ``sample`` says k, and the counts are scaled back up by it.
    """
    rows = query_frame(
        view.db,
        "outcome_join_size",
        f"""
        SELECT sum(n) FROM predictions_1m
        WHERE {MINUTES_FILTER} AND model = {{model:String}} AND {VERSION_FILTER}""",
        view.params(),
    ).iloc[0, 0]
    sample = max(1, math.ceil(int(rows or 0) / JOIN_SAMPLE_ROWS))
    frame = query_frame(
        view.db,
        "outcome_join",
        f"""
        SELECT p.version AS version, p.variant AS variant,
               count() AS predictions,
               countIf(o.matched = 1) AS labelled,
               avgIf(toFloat64(p.label = o.outcome_label),
                     o.matched = 1 AND o.outcome_label IS NOT NULL) AS accuracy,
               avgIf(abs(p.score - o.outcome_value),
                     o.matched = 1 AND o.outcome_value IS NOT NULL) AS mae,
               quantileIf(0.5)(dateDiff('millisecond', p.event_time, o.outcome_ts) / 1000.0,
                               o.matched = 1) AS label_delay_s
        FROM (
            SELECT cityHash64(request_id) AS key, version, variant, score, label, event_time
            FROM predictions
            WHERE model = {{model:String}} AND {VERSION_FILTER} AND {TS_FILTER}
              AND key % {{sample:UInt64}} = 0
        ) AS p
        LEFT ANY JOIN (
            SELECT cityHash64(request_id) AS key, label AS outcome_label,
                   value AS outcome_value, ts AS outcome_ts, toUInt8(1) AS matched
            FROM outcomes
            WHERE model = {{model:String}}
              AND ts >= {{since:DateTime64(3, 'UTC')}} - INTERVAL 1 HOUR
              AND key % {{sample:UInt64}} = 0
        ) AS o ON p.key = o.key
        GROUP BY version, variant ORDER BY version, variant""",
        view.params(sample=sample),
    )
    frame["predictions"] *= sample
    frame["labelled"] *= sample
    frame["sample"] = sample
    return frame


#: What the monitor publishes per window about champion against challenger or shadow.
COMPARISON_METRICS = ("lift", "lift_lower", "lift_upper", "comparison_decision")


@cached
def comparison_metrics(view: View) -> pd.DataFrame:
    """The monitor's comparisons per window, one row per (window, version, segment):
    lift, its always-valid bounds (null before enough outcomes) and the decision (1
    challenger better, -1 champion better, 0 undecided). Segment ``variant=shadow`` is
    the paired shadow comparison, the empty one the split's; `version` is the
    challenger's (or the shadow's)."""
    return query_frame(
        view.db,
        "comparison_metrics",
        """
        SELECT window_end AS t, version, segment,
               anyLastIf(toNullable(value), metric = 'lift') AS lift,
               anyLastIf(toNullable(value), metric = 'lift_lower') AS lower,
               anyLastIf(toNullable(value), metric = 'lift_upper') AS upper,
               anyLastIf(toNullable(value), metric = 'comparison_decision') AS decision,
               max(n) AS n
        FROM metrics
        WHERE model = {model:String} AND has({names:Array(String)}, metric)
          AND window_end > {since:DateTime64(3, 'UTC')}
          AND window_end <= {until:DateTime64(3, 'UTC')}
        GROUP BY t, version, segment
        HAVING lift IS NOT NULL
        ORDER BY t""",
        view.params(names=list(COMPARISON_METRICS)),
    )
