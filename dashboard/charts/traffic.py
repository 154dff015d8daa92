"""Traffic and latency over time, and counts as bars (overview and dead letters)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts.style import HEIGHT, ROW_STEP, TIME_AXIS, time_bounds


def rate_area(frame: pd.DataFrame, step: int, color: str, title: str) -> alt.Chart:
    """Stacked per-second rates per series (frame: t, n, <color>)."""
    data = frame.assign(rate=frame["n"] / step)
    return (
        alt.Chart(data, height=HEIGHT, title=title)
        .mark_area(interpolate="step-after", opacity=0.85)
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            y=alt.Y("sum(rate):Q", stack="zero", title="per second"),
            color=alt.Color(f"{color}:N", title=None),
            tooltip=[
                alt.Tooltip("t:T", title="from", format="%Y-%m-%d %H:%M"),
                alt.Tooltip(f"{color}:N"),
                alt.Tooltip("sum(rate):Q", title="per second", format=".3g"),
            ],
        )
    )


def latency_lines(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame, height=HEIGHT, title="Scoring latency (ms)")
        .mark_line(point=False, interpolate="monotone")
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            y=alt.Y("latency_ms:Q", title="milliseconds"),
            color=alt.Color(
                "quantile:N",
                title=None,
                sort=["p50", "p95", "p99"],
            ),
            tooltip=[
                alt.Tooltip("t:T", format="%H:%M"),
                "quantile:N",
                alt.Tooltip("latency_ms:Q", format=".3g", title="ms"),
            ],
        )
    )


def share_area(frame: pd.DataFrame, title: str) -> alt.Chart:
    """Each series' share of the answered requests per bucket (frame: t, n, series):
    a canary or a split change shows as a band growing or shrinking."""
    return (
        alt.Chart(frame, height=HEIGHT, title=title)
        .mark_area(interpolate="step-after", opacity=0.85)
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            y=alt.Y("sum(n):Q", stack="normalize", title="share", axis=alt.Axis(format="%")),
            color=alt.Color("series:N", title=None),
            tooltip=[
                alt.Tooltip("t:T", title="from", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("series:N"),
                alt.Tooltip("sum(n):Q", title="requests", format=","),
            ],
        )
    )


def stacked_bars(
    frame: pd.DataFrame, x: str, y: str, color: str, title: str, x_title: str, y_title: str
) -> alt.Chart:
    return (
        alt.Chart(frame, height=alt.Step(ROW_STEP + 8), title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"sum({x}):Q", title=x_title),
            y=alt.Y(f"{y}:N", title=y_title, sort="-x"),
            color=alt.Color(f"{color}:N", title=color.replace("_", " ")),
            tooltip=[f"{y}:N", f"{color}:N", alt.Tooltip(f"sum({x}):Q", format=",")],
        )
    )


def count_bars_over_time(frame: pd.DataFrame, step: int, color: str, title: str) -> alt.Chart:
    data = time_bounds(frame, step)
    return (
        alt.Chart(data, height=HEIGHT, title=title)
        .mark_bar()
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            x2="t_end:T",
            y=alt.Y("sum(n):Q", title="dead letters per bucket", stack="zero"),
            color=alt.Color(f"{color}:N", title=None),
            tooltip=[
                alt.Tooltip("t:T", format="%Y-%m-%d %H:%M"),
                f"{color}:N",
                alt.Tooltip("sum(n):Q", format=",", title="dead letters"),
            ],
        )
    )
