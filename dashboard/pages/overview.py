"""Overview: traffic, latency, alerts firing, versions and their traffic share, sink lag."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import queries as q

# The sink reports every 10 s; a report older than this says nothing about now.
SINK_STALE_S = 120


def _sink_tile(column: st.delta_generator.DeltaGenerator, view: q.View) -> None:
    status = q.sink_status(view)
    if status is None:
        column.metric("Sink lag", "unknown", help="No sink has reported to `sink_status` yet.")
        return
    age = (dt.datetime.now(q.UTC) - status["last_report"]).total_seconds()
    if age > SINK_STALE_S:
        column.metric(
            "Sink lag",
            "unknown",
            help=f"The sink's last report is {charts.fmt_age(age)} old: is it running?",
        )
        return
    column.metric(
        "Sink lag",
        f"{int(status['lag']):,} msgs",
        help=f"Messages not yet in ClickHouse, over {int(status['workers'])} sink worker(s); "
        f"reported {charts.fmt_age(age)} ago.",
    )


def _versions_table(view: q.View) -> pd.DataFrame:
    share = q.traffic_share(view)
    if share.empty:
        return share
    labels = []
    for r in share.itertuples():
        versions = q.model_versions(view, r.model)
        row = versions[versions["version"] == r.version]
        aliases = list(row.iloc[0]["aliases"]) if len(row) else []
        labels.append(charts.version_label(int(r.version), aliases))
    return share.assign(version_label=labels)


def render(view: q.View) -> None:
    if not q.has_predictions(view.db, view.tick):
        charts.empty(charts.NO_PREDICTIONS)
        return
    totals = q.traffic_totals(view)
    now = q.traffic_now(view)
    seconds = view.seconds
    active = q.active_alerts(view)
    # The tiles say now (the range's last minute); the range's history is in the charts.
    last = f"over the last {now['seconds']:.0f} s of the range"
    row1 = st.columns(4)
    row1[0].metric(
        "Requests/s",
        charts.fmt_rate(now["requests"]),
        help=f"Requests answered or dead-lettered instead, {last}. "
        f"The whole range: {totals['requests']:,}, "
        f"{charts.fmt_rate(totals['requests'] / seconds)}/s.",
    )
    row1[1].metric(
        "Predictions/s",
        charts.fmt_rate(now["predictions"]),
        help=f"Predictions, shadow ones included, {last}. "
        f"The whole range: {totals['predictions']:,}.",
    )
    row1[2].metric(
        "Dead letters/s",
        charts.fmt_rate(now["dead_letters"]),
        help=f"Dead letters {last}. The whole range: {totals['dead_letters']:,}.",
    )
    row1[3].metric(
        "Active alerts", f"{len(active):,}", help="Alerts firing now (whatever the time range)."
    )
    row2 = st.columns(4)
    row2[0].metric("Latency p50", charts.fmt_ms(totals["latency_p50_ms"]))
    row2[1].metric("Latency p95", charts.fmt_ms(totals["latency_p95_ms"]))
    row2[2].metric("Latency p99", charts.fmt_ms(totals["latency_p99_ms"]))
    _sink_tile(row2[3], view)
    if totals["predictions"] == 0:
        charts.empty(
            "No predictions in this time range — widen it in the sidebar, or run "
            "`lastmile simulate` to send traffic."
        )

    left, right = st.columns(2)
    series = q.traffic_series(view)
    if len(series):
        series = series.assign(
            series=[f"{r.model} v{r.version} {r.variant}" for r in series.itertuples()]
        )
        left.altair_chart(
            charts.rate_area(series, view.step, "series", "Predictions per second"), width="stretch"
        )
    latency = q.latency_series(view)
    if len(latency):
        right.altair_chart(charts.latency_lines(latency), width="stretch")

    st.subheader("Alerts firing now")
    if active.empty:
        st.success("No alert is firing.", icon=":material/check_circle:")
    else:
        shown = active.assign(
            version=[charts.version_label(int(v)) for v in active["version"]],
            firing_since=[charts.fmt_time(t) for t in active["firing_since"]],
        )[
            [
                "severity",
                "model",
                "version",
                "rule",
                "metric",
                "feature",
                "value",
                "threshold",
                "firing_since",
            ]
        ]
        st.dataframe(shown, hide_index=True, width="stretch")

    st.subheader("Model versions and their traffic")
    table = _versions_table(view)
    if table.empty:
        charts.empty("No traffic in this range.")
    else:
        left, right = st.columns(2)
        left.dataframe(
            table[["model", "version_label", "variant", "predictions", "share"]],
            hide_index=True,
            width="stretch",
            column_config={
                "version_label": st.column_config.TextColumn("version"),
                "predictions": st.column_config.NumberColumn("predictions", format="localized"),
                "share": st.column_config.ProgressColumn(
                    "share of the model's traffic", format="percent", min_value=0, max_value=1
                ),
            },
        )
        series = q.traffic_series(view)
        answered = series[series["variant"] != "shadow"]
        if len(answered):
            answered = answered.assign(
                series=[f"{r.model} v{r.version} {r.variant}" for r in answered.itertuples()]
            )
            right.altair_chart(
                charts.share_area(answered, "Share of answered requests over time"),
                width="stretch",
            )


charts.page("Overview", render)
