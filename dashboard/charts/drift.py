"""Drift charts: the statistic heatmap and lines, histograms against the reference,
and the score heatmap."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard.charts.style import HEIGHT, ROW_STEP, TIME_AXIS, time_bounds


def drift_heatmap(
    frame: pd.DataFrame, step: int, title: str, direction: str, threshold: float | None
) -> alt.Chart:
    """Features by time, coloured by the statistic: darker is worse (for p-values,
    smaller is worse). Cells across the threshold are outlined."""
    data = time_bounds(frame, step)
    data["value"] = data["lo"] if direction == "below" else data["hi"]
    if threshold is not None:
        data["breach"] = (
            (data["value"] < threshold) if direction == "below" else (data["value"] >= threshold)
        )
    else:
        data["breach"] = False
    if direction == "below":
        scale = alt.Scale(scheme="orangered", reverse=True, domain=[0, 0.2], clamp=True)
    else:
        top = threshold * 2 if threshold else float(data["value"].max() or 1.0)
        scale = alt.Scale(scheme="orangered", domain=[0, top], clamp=True)
    # Discrete rows get a fixed step each: a pixel height would be squeezed by Streamlit.
    base = alt.Chart(data, height=alt.Step(ROW_STEP), title=title)
    cells = base.mark_rect().encode(
        x=alt.X("t:T", axis=TIME_AXIS),
        x2="t_end:T",
        y=alt.Y("feature:N", title=None),
        color=alt.Color("value:Q", title=None, scale=scale),
        tooltip=[
            alt.Tooltip("feature:N"),
            alt.Tooltip("t:T", format="%Y-%m-%d %H:%M"),
            alt.Tooltip("value:Q", format=".4g"),
            alt.Tooltip("windows:Q"),
            alt.Tooltip("n:Q", title="events", format=","),
        ],
    )
    marks = (
        base.transform_filter("datum.breach")
        .mark_rect(fill=None, stroke="#222", strokeWidth=1.2)
        .encode(x="t:T", x2="t_end:T", y="feature:N")
    )
    return cells + marks


def threshold_lines(
    frame: pd.DataFrame, y_title: str, threshold: float | None, direction: str, title: str
) -> alt.LayerChart | alt.Chart:
    """A line per feature over time, with the threshold as a dashed rule."""
    value = "lo" if direction == "below" else "hi"
    lines = (
        alt.Chart(frame, height=HEIGHT, title=title)
        .mark_line(point=True, interpolate="monotone")
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            y=alt.Y(f"{value}:Q", title=y_title),
            color=alt.Color("feature:N", title="feature"),
            tooltip=[
                "feature:N",
                alt.Tooltip("t:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip(f"{value}:Q", format=".4g", title=y_title),
            ],
        )
    )
    if threshold is None:
        return lines
    rule_data = pd.DataFrame({"threshold": [threshold], "label": [f"threshold {threshold:g}"]})
    rule = (
        alt.Chart(rule_data).mark_rule(color="#e45756", strokeDash=[6, 4]).encode(y="threshold:Q")
    )
    text = (
        alt.Chart(rule_data)
        .mark_text(align="left", dx=4, dy=-6, color="#e45756")
        .encode(y="threshold:Q", text="label:N", x=alt.value(0))
    )
    return lines + rule + text


def histogram_compare(frame: pd.DataFrame, title: str, x_title: str) -> alt.Chart:
    """Reference against current, as shares of each side (frame: bin, label, source, share)."""
    order = list(dict.fromkeys(frame.sort_values("bin")["label"]))
    return (
        alt.Chart(frame, height=HEIGHT, title=title)
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=order, title=x_title, axis=alt.Axis(labelAngle=-35)),
            xOffset=alt.XOffset("source:N", sort=["reference", "current"]),
            y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
            color=alt.Color(
                "source:N",
                title=None,
                sort=["reference", "current"],
                scale=alt.Scale(range=["#9ecae9", "#f58518"]),
            ),
            tooltip=[
                "label:N",
                "source:N",
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("n:Q", format=",", title="rows"),
            ],
        )
    )


def score_heatmap(frame: pd.DataFrame, step: int) -> alt.Chart:
    """The score distribution over time: each column one bucket, shares of its rows."""
    data = time_bounds(frame, step)
    return (
        alt.Chart(data, height=HEIGHT, title="Score distribution over time")
        .mark_rect()
        .encode(
            x=alt.X("t:T", axis=TIME_AXIS),
            x2="t_end:T",
            y=alt.Y("score_from:Q", title="score", scale=alt.Scale(domain=[0, 1])),
            y2="score_to:Q",
            color=alt.Color(
                "share:Q",
                title="share",
                scale=alt.Scale(scheme="blues"),
                legend=alt.Legend(format="%"),
            ),
            tooltip=[
                alt.Tooltip("t:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("score_from:Q", title="score from"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("n:Q", format=","),
            ],
        )
    )
