"""Alert events: the range's history and the alerts still firing."""

from __future__ import annotations

import pandas as pd

from dashboard.queries.cache import cached
from dashboard.queries.connection import query_frame
from dashboard.queries.filters import MODEL_FILTER, TS_FILTER
from dashboard.queries.view import View


@cached
def alerts(view: View) -> pd.DataFrame:
    """Alert events (firing and resolved) in the range, newest first."""
    return query_frame(
        view.db,
        "alerts",
        f"""
        SELECT alert_id, ts, state, model, version, kind, rule, metric, feature,
               value, threshold, severity, message
        FROM alerts
        WHERE {TS_FILTER} AND {MODEL_FILTER}
          AND ({{version:Int64}} < 0 OR version = {{version:Int64}} OR version = 0)
        ORDER BY ts DESC LIMIT 5000""",
        view.params(),
    )


@cached
def active_alerts(view: View) -> pd.DataFrame:
    """Alerts whose latest event is a firing, whatever the time range (still firing now)."""
    frame = query_frame(
        view.db,
        "active_alerts",
        f"""
        SELECT alert_id,
               any(model) AS alert_model,
               argMax(version, (ts, state = 'resolved')) AS alert_version,
               argMax(kind, (ts, state = 'resolved')) AS alert_kind,
               argMax(rule, (ts, state = 'resolved')) AS alert_rule,
               argMax(metric, (ts, state = 'resolved')) AS alert_metric,
               argMax(feature, (ts, state = 'resolved')) AS alert_feature,
               argMax(severity, (ts, state = 'resolved')) AS alert_severity,
               argMax(value, (ts, state = 'resolved')) AS alert_value,
               argMax(threshold, (ts, state = 'resolved')) AS alert_threshold,
               argMax(state, (ts, state = 'resolved')) AS last_state,
               maxIf(ts, state = 'firing') AS firing_since
        FROM alerts
        WHERE {MODEL_FILTER}
        GROUP BY alert_id
        HAVING last_state = 'firing'
        ORDER BY firing_since DESC""",
        view.params(),
    )
    # Aliases differ from the columns: ClickHouse would read WHERE model as the alias.
    return frame.rename(columns=lambda c: c.removeprefix("alert_"))


@cached
def alert_actions(view: View) -> pd.DataFrame:
    """What the operator did about the alerts of the range (``actions``: done, would or
    skipped with the reason), one row per firing acted on, keyed by (alert_id, ts)."""
    return query_frame(
        view.db,
        "alert_actions",
        f"""
        SELECT alert_id, window_end AS ts, ts AS acted_at, kind, mode, outcome, reason,
               message AS action
        FROM actions
        WHERE window_end >= {{since:DateTime64(3, 'UTC')}}
          AND window_end < {{until:DateTime64(3, 'UTC')}} AND {MODEL_FILTER}
          AND alert_id != ''
        ORDER BY ts DESC LIMIT 5000""",
        view.params(),
    )


def with_actions(events: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """Alert events with what was done about each firing (``action``; empty: nothing).

    >>> t = pd.Timestamp("2026-12-01 10:00")
    >>> ev = pd.DataFrame({"alert_id": ["a", "a"], "ts": [t, t], "state": ["firing", "resolved"]})
    >>> ac = pd.DataFrame({"alert_id": ["a"], "ts": [t], "action": ["rolled back m from v2 to v1"],
    ...                    "outcome": ["done"]})
    >>> list(with_actions(ev, ac)["action"])
    ['rolled back m from v2 to v1', '']
    """
    if actions.empty:
        return events.assign(action="", outcome="")
    keys = actions[["alert_id", "ts", "action", "outcome"]].drop_duplicates(["alert_id", "ts"])
    keys = keys.assign(ts=pd.to_datetime(keys["ts"]))
    merged = events.assign(ts=pd.to_datetime(events["ts"])).merge(
        keys, on=["alert_id", "ts"], how="left"
    )
    firing = merged["state"] == "firing"
    merged["action"] = merged["action"].where(firing, "").fillna("")
    merged["outcome"] = merged["outcome"].where(firing, "").fillna("")
    return merged
