"""Alerts: what fired and resolved, with rule, value and threshold, on a timeline, what
the operator did about each (rules with an action), and a link from each alert to the
drift view at that moment."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import queries as q

K_SEVERITY = "lm_alert_severity"
K_KIND = "lm_alert_kind"
LINKS = 12


def _links(events: pd.DataFrame) -> None:
    st.subheader("Open the drift view at an alert")
    firing = events[events["state"] == "firing"].head(LINKS)
    if firing.empty:
        st.caption("No alert fired in this range.")
        return
    for r in firing.itertuples():
        at = q.as_utc(pd.Timestamp(r.ts).to_pydatetime())
        params = {"model": r.model, "at": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if r.version:
            params["version"] = str(int(r.version))
        if r.feature:
            params["feature"] = r.feature
        if r.kind == "drift" and r.metric in q.DRIFT_STATISTICS:
            params["statistic"] = r.metric
        what = f"{r.rule} · {r.feature}" if r.feature else r.rule
        who = f"{r.model} v{r.version}" if r.version else r.model
        label = (
            f"{at:%m-%d %H:%M} UTC — {r.severity} — {who} {what} = {r.value:.3g} "
            f"(threshold {r.threshold:.3g})"
        )
        st.page_link(
            "pages/drift.py",
            # Labels are Markdown: feature names like __score__ would turn bold.
            label=label.replace("_", "\\_"),
            icon=":material/query_stats:",
            query_params=params,
        )


def render(view: q.View) -> None:
    active = q.active_alerts(view)
    events = q.alerts(view)
    fired = int((events["state"] == "firing").sum()) if len(events) else 0
    resolved = int((events["state"] == "resolved").sum()) if len(events) else 0
    cols = st.columns(3)
    cols[0].metric("Firing now", f"{len(active):,}")
    cols[1].metric("Fired in range", f"{fired:,}")
    cols[2].metric("Resolved in range", f"{resolved:,}")
    if events.empty:
        charts.empty(
            "No alerts in this time range. Alerts come from the monitor's rules "
            "(`monitors/rules.yaml`); `lastmile alerts` lists and tests them."
        )
        return
    events = events.assign(ts=pd.to_datetime(events["ts"]))
    left, right = st.columns(2)
    severities = sorted(events["severity"].unique())
    kinds = sorted(events["kind"].unique())
    for key, options in ((K_SEVERITY, severities), (K_KIND, kinds)):
        kept = [o for o in st.session_state.get(key, options) if o in options]
        st.session_state[key] = kept or options
    chosen_sev = left.multiselect("Severity", severities, key=K_SEVERITY)
    chosen_kind = right.multiselect("Kind", kinds, key=K_KIND)
    events = events[events["severity"].isin(chosen_sev) & events["kind"].isin(chosen_kind)]
    events = q.with_actions(events, q.alert_actions(view))
    spans = charts.alert_spans(events, min(view.until, dt.datetime.now(q.UTC)))
    if len(spans):
        st.altair_chart(charts.alert_timeline(spans), width="stretch")
    st.subheader("Alert events")
    st.dataframe(
        events[
            [
                "ts",
                "state",
                "severity",
                "model",
                "version",
                "kind",
                "rule",
                "metric",
                "feature",
                "value",
                "threshold",
                "action",
                "message",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "value": st.column_config.NumberColumn(format="%.4g"),
            "threshold": st.column_config.NumberColumn(format="%.4g"),
            "action": st.column_config.TextColumn(
                "action", help="What the operator did about it (rules with an action)"
            ),
        },
    )
    _links(events)


charts.page("Alerts", render)
