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
