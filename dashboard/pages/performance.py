"""Performance: rolling metrics per version with the label delay shown, champion
against challenger on the labelled predictions, and the learner's online snapshots."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import queries as q
from dashboard.charts.performance import DECISION_WORDS, lift_band
from dashboard.queries.performance import comparison_metrics

K_METRIC = "lm_perf_metric"


def _labels(versions: pd.DataFrame) -> dict[int, str]:
    out = {0: "all versions"}
    for r in versions.itertuples():
        out[int(r.version)] = charts.version_label(
            int(r.version), list(r.aliases), bool(r.is_shadow)
        )
    return out


def _primary_version(view: q.View, labels: dict[int, str], present: set[int]) -> int:
    if view.version >= 0:
        return view.version
    champions = [v for v, label in labels.items() if "champion" in label and v in present]
    return champions[0] if champions else min(present)


def _rolling(view: q.View, labels: dict[int, str]) -> None:
    frame = q.performance_metrics(view)
    if frame.empty:
        charts.empty(
            f"No performance metrics for **{view.model}** in this range. They need labels: "
            "send outcomes to `scoring.outcomes` (`lastmile simulate` does) and run the "
            "monitor (`lastmile up`)."
        )
        return
    frame = frame.assign(
        t=pd.to_datetime(frame["t"]), series=[labels.get(int(v), f"v{v}") for v in frame["version"]]
    )
    delay = frame[frame["metric"] == q.LABEL_DELAY_METRIC].sort_values("t")
    latest_delay = float(delay["value"].iloc[-1]) if len(delay) else math.nan
    available = [m for m in q.PERFORMANCE_METRICS if m in set(frame["metric"])]
    cols = st.columns(1 + len(available))
    cols[0].metric(
        "Label delay (p50)",
        charts.fmt_age(latest_delay) if math.isfinite(latest_delay) else "–",
        help="How long after a prediction its label arrives (median of the latest window). "
        "The newest predictions are not in these metrics until then.",
    )
    # The tiles follow one version: the sidebar's, else the champion, else the first.
    last = frame.sort_values("t").groupby(["metric", "version"]).tail(1)
    primary = _primary_version(view, labels, set(last["version"]))
    for col, name in zip(cols[1:], available, strict=False):
        rows = last[last["metric"] == name]
        mine = rows[rows["version"] == primary]
        others = " · ".join(f"{r.series} {r.value:.3f}" for r in rows.itertuples())
        col.metric(
            f"{q.PERFORMANCE_METRICS[name]} · {labels.get(primary, f'v{primary}')}",
            f"{mine['value'].iloc[0]:.3f}" if len(mine) else "–",
            help=f"Latest window: {others}",
        )
    if not available:
        return
    if st.session_state.get(K_METRIC) not in available:
        st.session_state[K_METRIC] = available[0]
    metric = st.radio(
        "Metric",
        available,
        key=K_METRIC,
        horizontal=True,
        format_func=lambda m: q.PERFORMANCE_METRICS[m],
    )
    pending = None
    if math.isfinite(latest_delay) and latest_delay > 0:
        pending = dt.datetime.now(q.UTC) - dt.timedelta(seconds=latest_delay)
    st.altair_chart(
        charts.metric_lines(
            frame[frame["metric"] == metric],
            q.PERFORMANCE_METRICS[metric],
            f"Rolling {q.PERFORMANCE_METRICS[metric]} per version (grey: labels not arrived yet)",
            pending,
        ),
        width="stretch",
    )


def _champion_challenger(view: q.View, labels: dict[int, str]) -> None:
    st.subheader("Champion against challenger")
    joined = q.outcome_join(view)
    if joined.empty:
        charts.empty("No predictions of this model in the range.")
        return
    sample = int(joined["sample"].iloc[0])
    st.caption(
        "From the predictions of the range joined to the labels that have arrived so far"
        + (f" (on 1 request in {sample}, hashed; counts scaled up)." if sample > 1 else ".")
    )
    joined = joined.assign(
        version_label=[labels.get(int(v), f"v{v}") for v in joined["version"]],
        labelled_pct=100 * joined["labelled"] / joined["predictions"].clip(lower=1),
    )
    # Classifiers are compared on accuracy (higher is better), regressors on MAE (lower).
    metric, better = ("accuracy", 1.0) if joined["accuracy"].notna().any() else ("mae", -1.0)
    order = {"champion": 0, "challenger": 1, "shadow": 2}
    ranked = joined.sort_values("variant", key=lambda v: v.map(order).fillna(3))
    champion = ranked[ranked["variant"] == "champion"]
    base = float(champion[metric].iloc[0]) if len(champion) else math.nan
    cols = st.columns(max(min(len(ranked), 4), 1))
    for col, r in zip(cols, ranked.itertuples(), strict=False):
        value = float(getattr(r, metric))
        delta = None
        if r.variant != "champion" and math.isfinite(base) and math.isfinite(value):
            delta = f"{value - base:+.3f} vs champion"
        col.metric(
            f"{'Accuracy' if metric == 'accuracy' else 'MAE'} · v{int(r.version)} {r.variant}",
            f"{value:.3f}" if math.isfinite(value) else "–",
            delta=delta,
            delta_color="normal" if better > 0 else "inverse",
            help=f"{int(r.labelled):,} labelled of {int(r.predictions):,} predictions",
        )
    columns = ["version_label", "variant", "predictions", "labelled", "labelled_pct"]
    # Classifiers have an accuracy, regressors an MAE; show what the model has.
    columns += [c for c in ("accuracy", "mae") if joined[c].notna().any()]
    st.dataframe(
        joined[[*columns, "label_delay_s"]],
        hide_index=True,
        width="stretch",
        column_config={
            "version_label": st.column_config.TextColumn("version"),
            "predictions": st.column_config.NumberColumn(format="localized"),
            "labelled": st.column_config.NumberColumn(format="localized"),
            "labelled_pct": st.column_config.NumberColumn("labelled", format="%.1f%%"),
            "accuracy": st.column_config.NumberColumn(format="%.3f"),
            "mae": st.column_config.NumberColumn("MAE", format="%.4g"),
            "label_delay_s": st.column_config.NumberColumn("label delay p50 (s)", format="%.0f"),
        },
    )


def _lift(view: q.View, labels: dict[int, str]) -> None:
    """The monitor's per-window comparison: the lift, its band and the decision."""
    frame = comparison_metrics(view)
    if frame.empty:
        charts.empty(
            "No comparison yet: the monitor publishes one per window once a challenger (or "
            "a shadow) has outcomes. `lastmile models compare "
            f"{view.model}` computes it from the stored outcomes."
        )
        return
    frame = frame.assign(
        t=pd.to_datetime(frame["t"]),
        series=[
            f"{labels.get(int(v), f'v{v}')}{' (paired)' if seg else ''} vs champion"
            for v, seg in zip(frame["version"], frame["segment"], strict=True)
        ],
    )
    latest = frame.sort_values("t").groupby("series").tail(1)
    cols = st.columns(max(min(len(latest), 4), 1))
    for col, r in zip(cols, latest.itertuples(), strict=False):
        bounds = "–" if pd.isna(r.lower) else f"[{r.lower:+.4f}, {r.upper:+.4f}]"
        col.metric(
            f"Decision · {r.series}",
            DECISION_WORDS.get(int(r.decision) if pd.notna(r.decision) else 0, "undecided"),
            delta=f"lift {r.lift:+.4f}",
            delta_color="off",
            help=f"Lift {r.lift:+.4f}, always-valid band {bounds} on {int(r.n):,} outcomes "
            "(accuracy for classifiers, MAE for regressors; positive: challenger better).",
        )
    st.altair_chart(
        lift_band(frame, "Lift over the champion, with its always-valid band (alpha 0.05)"),
        width="stretch",
    )


def _snapshots(view: q.View) -> None:
    st.subheader("Online model snapshots")
    versions = q.model_versions(view, view.model)
    if versions.empty:
        charts.empty(f"No versions of **{view.model}** known (registry or `model_versions`).")
        return
    versions = versions.assign(
        origin=[
            "learner snapshot" if q.is_learner(w) else "registered"
            for w in versions["registered_by"]
        ],
        created_at=pd.to_datetime(versions["created_at"]),
    )
    snapshots = versions[versions["origin"] == "learner snapshot"]
    if snapshots.empty:
        charts.empty(
            "No online snapshots: the learner registers one as its model learns "
            "from outcomes (`lastmile up` runs it)."
        )
    st.altair_chart(charts.snapshot_timeline(versions), width="stretch")
    if len(snapshots):
        table = snapshots.assign(
            metrics=[
                ", ".join(
                    f"{k} {v:.3g}" if isinstance(v, int | float) else f"{k} {v}"
                    for k, v in (m or {}).items()
                )
                for m in snapshots["metrics"]
            ],
        )[["version", "parent", "created_at", "registered_by", "metrics"]]
        st.dataframe(table, hide_index=True, width="stretch")


def render(view: q.View) -> None:
    view = charts.need_model(view)
    if view is None:
        return
    labels = _labels(q.model_versions(view, view.model))
    _rolling(view, labels)
    _champion_challenger(view, labels)
    _lift(view, labels)
    _snapshots(view)


charts.page("Performance", render)
