"""Performance charts: rolling metrics per version and the learner's snapshots."""

from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd

from dashboard import queries as q
from dashboard.charts.style import HEIGHT, TIME_AXIS


def metric_lines(
    frame: pd.DataFrame, y_title: str, title: str, pending_from: dt.datetime | None = None
) -> alt.LayerChart | alt.Chart:
    """A metric over time per version (frame: t, series, value); the span whose labels
    have not arrived yet (pending_from .. now) is shaded."""
    lines = (
        alt.Chart(frame, height=HEIGHT, title=title)
        .mark_line(point=True, interpolate="monotone")
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title="version"),
            tooltip=[
                "series:N",
                alt.Tooltip("t:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("value:Q", format=".4g", title=y_title),
            ],
        )
    )
    if pending_from is None:
        return lines
    now = dt.datetime.now(q.UTC).replace(tzinfo=None)
    band = pd.DataFrame(
        {
            "start": [pending_from.replace(tzinfo=None)],
            "end": [now],
            "label": ["labels not arrived yet"],
        }
    )
    shade = (
        alt.Chart(band)
        .mark_rect(color="#bbbbbb", opacity=0.25)
        .encode(x="start:T", x2="end:T", tooltip=["label:N"])
    )
    return shade + lines


def snapshot_timeline(frame: pd.DataFrame) -> alt.Chart:
    """Online snapshots (and other versions) by registration time."""
    return (
        alt.Chart(frame, height=180, title="Model versions by registration time")
        .mark_point(filled=True, size=90)
        .encode(
            x=alt.X(
                "created_at:T", title="registered at (UTC)", axis=alt.Axis(format="%m-%d %H:%M")
            ),
            y=alt.Y("version:Q", title="version", axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("origin:N", title=None),
            shape=alt.Shape("origin:N", legend=None),
            tooltip=[
                "version:Q",
                "parent:Q",
                "registered_by:N",
                alt.Tooltip("created_at:T", format="%Y-%m-%d %H:%M"),
            ],
        )
    )


#: The decision codes the monitor publishes, as words.
DECISION_WORDS = {1: "challenger better", -1: "champion better", 0: "undecided"}


def lift_band(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    """The lift over time with its always-valid band, a rule at no difference, and each
    window's decision as the point's colour (frame: t, series, lift, lower, upper,
    decision)."""
    frame = frame.assign(
        decided=[DECISION_WORDS.get(int(d), "undecided") for d in frame["decision"].fillna(0)]
    )
    base = alt.Chart(frame, height=HEIGHT, title=title)
    x = alt.X("t:T", axis=TIME_AXIS)
    band = base.mark_area(opacity=0.2).encode(
        x=x,
        y=alt.Y("lower:Q", title="lift (positive: challenger better)"),
        y2="upper:Q",
        color=alt.Color("series:N", title="compared"),
    )
    line = base.mark_line().encode(x=x, y="lift:Q", color="series:N")
    points = base.mark_point(filled=True, size=50).encode(
        x=x,
        y="lift:Q",
        shape=alt.Shape("decided:N", title="decision"),
        tooltip=[
            "series:N",
            alt.Tooltip("t:T", format="%Y-%m-%d %H:%M"),
            alt.Tooltip("lift:Q", format=".4f"),
            alt.Tooltip("lower:Q", format=".4f"),
            alt.Tooltip("upper:Q", format=".4f"),
            "decided:N",
            alt.Tooltip("n:Q", format=",", title="outcomes"),
        ],
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    return band + line + points + zero
