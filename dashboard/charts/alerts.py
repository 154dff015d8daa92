"""Alert events as spans (firing to resolved) and their timeline."""

from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd

from dashboard.charts.style import ROW_STEP, SEVERITY_COLORS, TIME_AXIS


def alert_spans(events: pd.DataFrame, until: dt.datetime) -> pd.DataFrame:
    """Firing-to-resolved spans per alert; one still firing runs to ``until``.

    >>> t = pd.Timestamp("2024-05-01 12:00")
    >>> ev = pd.DataFrame({"alert_id": ["a", "a", "b"], "ts": [t, t + pd.Timedelta("5min"), t],
    ...     "state": ["firing", "resolved", "firing"], "rule": ["r1", "r1", "r2"],
    ...     "model": ["m"] * 3, "version": [1] * 3, "feature": ["x", "x", ""],
    ...     "severity": ["warning"] * 3, "value": [1.0, 0.0, 2.0], "threshold": [0.5] * 3,
    ...     "kind": ["drift"] * 3, "metric": ["drift"] * 3})
    >>> [(r.label, r.status) for r in alert_spans(ev, t + pd.Timedelta("1h")).itertuples()]
    [('m v1 · r1 · x', 'resolved'), ('m v1 · r2', 'firing')]
    """
    rows = []
    end_of_view = (
        pd.Timestamp(until).tz_localize(None)
        if pd.Timestamp(until).tzinfo
        else (pd.Timestamp(until))
    )
    for alert_id, group in events.sort_values("ts").groupby("alert_id", sort=False):
        opened = None
        for r in group.itertuples():
            if r.state == "firing" and opened is None:
                opened = r
            elif r.state == "resolved" and opened is not None:
                rows.append(_span(alert_id, opened, r.ts, "resolved"))
                opened = None
        if opened is not None:
            rows.append(_span(alert_id, opened, end_of_view, "firing"))
    columns = [
        "alert_id",
        "label",
        "start",
        "end",
        "status",
        "open",
        "severity",
        "value",
        "threshold",
        "rule",
        "kind",
        "metric",
        "feature",
        "model",
        "version",
    ]
    return (
        pd.DataFrame(rows, columns=columns).sort_values("start")
        if rows
        else pd.DataFrame(columns=columns)
    )


def _span(alert_id: str, r: object, end: object, status: str) -> dict:
    label = " · ".join(
        x for x in (f"{r.model} v{r.version}" if r.version else r.model, r.rule, r.feature) if x
    )
    return {
        "alert_id": alert_id,
        "label": label,
        "start": r.ts,
        "end": end,
        "status": status,
        "open": status == "firing",
        "severity": r.severity,
        "value": r.value,
        "threshold": r.threshold,
        "rule": r.rule,
        "kind": r.kind,
        "metric": r.metric,
        "feature": r.feature,
        "model": r.model,
        "version": r.version,
    }


def alert_timeline(frame: pd.DataFrame) -> alt.Chart:
    """One bar per alert from firing to resolution (or to now, still firing)."""
    base = alt.Chart(frame, height=alt.Step(ROW_STEP), title="Alert timeline")
    bars = base.mark_bar(cornerRadius=3, height=14).encode(
        x=alt.X("start:T", axis=TIME_AXIS),
        x2="end:T",
        y=alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=320)),
        color=alt.Color("severity:N", scale=SEVERITY_COLORS),
        opacity=alt.condition("datum.open", alt.value(1.0), alt.value(0.55)),
        tooltip=[
            "label:N",
            "severity:N",
            "status:N",
            alt.Tooltip("start:T", format="%Y-%m-%d %H:%M", title="fired"),
            alt.Tooltip("end:T", format="%Y-%m-%d %H:%M", title="until"),
            alt.Tooltip("value:Q", format=".4g"),
            alt.Tooltip("threshold:Q", format=".4g"),
        ],
    )
    return bars
