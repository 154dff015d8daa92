"""Dead letters: what could not be processed, by stage and reason, and the latest examples."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import queries as q


def render(view: q.View) -> None:
    counts = q.dead_letter_counts(view)
    totals = q.traffic_totals(view)
    total = int(counts["n"].sum()) if len(counts) else 0
    cols = st.columns(3)
    cols[0].metric("Dead letters", f"{total:,}", help="In the time range, replays counted once.")
    cols[1].metric("Per second", charts.fmt_rate(total / view.seconds))
    requests = totals["requests"]
    cols[2].metric(
        "Share of requests",
        f"{totals['dead_letters'] / requests:.2%}" if requests else "–",
        help="Dead letters over requests (answered or dead-lettered).",
    )
    if total == 0:
        st.success(
            "No dead letters in this time range: every message was processed.",
            icon=":material/check_circle:",
        )
        return
    left, right = st.columns(2)
    left.altair_chart(
        charts.stacked_bars(
            counts,
            "n",
            "stage",
            "error_type",
            "Dead letters by stage and error type",
            "dead letters",
            "stage",
        ),
        width="stretch",
    )
    series = q.dead_letter_series(view)
    if len(series):
        series = series.assign(t=pd.to_datetime(series["t"]))
        right.altair_chart(
            charts.count_bars_over_time(
                series, view.step, "stage", "Dead letters over time by stage"
            ),
            width="stretch",
        )
    st.subheader("Most common reasons")
    _table(
        q.dead_letter_reasons(view),
        n=st.column_config.NumberColumn("count", format="localized"),
        last_seen=_utc_time("last seen (UTC)"),
    )
    st.subheader("Latest dead letters")
    st.caption("Replay chosen ones to their source topic with `lastmile dlq replay`.")
    _table(q.dead_letter_examples(view), ts=_utc_time("time (UTC)"))


def _utc_time(label: str) -> Any:
    return st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm:ss")


def _table(frame: pd.DataFrame, **columns: Any) -> None:
    """A full-width table without its index, `columns` configuring some of them."""
    st.dataframe(frame, hide_index=True, width="stretch", column_config=columns)


charts.page("Dead letters", render)
