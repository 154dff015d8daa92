"""Drift: each feature's drift statistic over time against its threshold, reference
against current histograms for a feature and window, the score distribution over time."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import queries as q

K_STATISTIC = "lm_drift_statistic"
K_LINES = "lm_drift_lines"
K_WINDOW = "lm_drift_window"
K_VERSION_REF = "lm_drift_reference"
WHOLE_RANGE = "whole time range"


def _pick(key: str, options: list, default: object) -> None:
    if not options:
        return
    if st.session_state.get(key) not in options:
        st.session_state[key] = default if default in options else options[0]


def _reference_version(view: q.View) -> int | None:
    """The selected version, else the champion, else the newest version."""
    if view.version >= 0:
        return view.version
    versions = q.model_versions(view, view.model)
    if versions.empty:
        return None
    champions = [int(r.version) for r in versions.itertuples() if "champion" in list(r.aliases)]
    return champions[0] if champions else int(versions["version"].max())


def _statistics(view: q.View) -> str | None:
    stats = q.drift_statistics(view)
    if not stats:
        charts.empty(
            f"No drift metrics for **{view.model}** in this range. The monitor writes them "
            "each time a window closes: run it with `lastmile up` (or "
            "`lastmile worker --roles monitor`) and send traffic with `lastmile simulate`."
        )
        return None
    # PSI applies to numeric and categorical features alike, so every feature has a row.
    default = next((s for s in ("psi", "drift") if s in stats), stats[0])
    _pick(K_STATISTIC, stats, default)
    return st.selectbox(
        "Statistic", stats, key=K_STATISTIC, format_func=lambda s: q.DRIFT_STATISTICS[s][0]
    )


def _over_time(view: q.View) -> None:
    statistic = _statistics(view)
    if statistic is None:
        return
    label, direction, threshold = q.DRIFT_STATISTICS[statistic]
    matrix = q.drift_matrix(view, statistic)
    if matrix.empty:
        charts.empty("No values of this statistic in the range.")
        return
    matrix = matrix.assign(t=pd.to_datetime(matrix["t"]))
    worst = "lowest" if direction == "below" else "highest"
    where = f"threshold {threshold:g}" if threshold is not None else "no fixed threshold"
    st.altair_chart(
        charts.drift_heatmap(
            matrix,
            view.step,
            f"{label} per feature ({worst} per {charts.fmt_age(view.step)}; "
            f"outlined: across the {where})",
            direction,
            threshold,
        ),
        width="stretch",
    )
    features = sorted(matrix["feature"].unique())
    value = matrix["lo"] if direction == "below" else matrix["hi"]
    ranked = (
        matrix.assign(v=value)
        .groupby("feature")["v"]
        .agg("min" if direction == "below" else "max")
        .sort_values(ascending=direction == "below")
    )
    focus = st.session_state.get(q.K_FEATURE)
    default = [focus] if focus in features else list(ranked.index[:3])
    current = [f for f in st.session_state.get(K_LINES, default) if f in features]
    st.session_state[K_LINES] = current or default
    chosen = st.multiselect("Features to plot", features, key=K_LINES)
    if chosen:
        st.altair_chart(
            charts.threshold_lines(
                matrix[matrix["feature"].isin(chosen)],
                label,
                threshold,
                direction,
                f"{label} over time",
            ),
            width="stretch",
        )


def _window_options(view: q.View) -> tuple[list[str], dict[str, tuple[dt.datetime, dt.datetime]]]:
    windows = q.drift_windows(view)
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {WHOLE_RANGE: (view.since, view.until)}
    for r in windows.itertuples():
        start = q.as_utc(pd.Timestamp(r.window_start).to_pydatetime())
        end = q.as_utc(pd.Timestamp(r.window_end).to_pydatetime())
        spans[f"{start:%Y-%m-%d %H:%M:%S} – {end:%H:%M:%S} UTC"] = (start, end)
    return list(spans), spans


def _histograms(view: q.View) -> None:
    st.subheader("Reference against current")
    version = _reference_version(view)
    profile = (
        q.reference_profile(view.registry, view.model, version, view.tick) if version else None
    )
    if not profile or not profile.get("features"):
        charts.empty(
            f"No reference profile for **{view.model}**"
            + (f" v{version}" if version else "")
            + f" in the registry at `{view.registry}`. Register the model with reference rows "
            "(`lastmile models register ... --reference data.csv`) to compare against training "
            "data; the dashboard needs the registry directory (setting `registry`)."
        )
        return
    features = sorted(profile["features"])
    focus = st.session_state.get(q.K_FEATURE)
    _pick(q.K_FEATURE, features, focus if focus in features else features[0])
    labels, spans = _window_options(view)
    focus_at = st.session_state.get(q.K_FOCUS)
    default = labels[1] if len(labels) > 1 else WHOLE_RANGE
    if focus_at is not None:
        for label, (start, end) in spans.items():
            if label != WHOLE_RANGE and start <= focus_at < end:
                default = label
                break
    _pick(K_WINDOW, labels, default)
    left, right = st.columns(2)
    feature = left.selectbox("Feature", features, key=q.K_FEATURE)
    chosen = right.selectbox("Window (event time)", labels, key=K_WINDOW)
    start, end = spans[chosen]
    feature_profile = profile["features"][feature]
    if charts.profile_kind(feature_profile) == "numeric":
        edges, _ = charts.reference_counts(feature_profile)
        if not edges:
            charts.empty("The reference profile has no bins for this feature.")
            return
        current = q.numeric_histogram(view, feature, tuple(edges), start, end)
        frame, _ = charts.numeric_compare(feature_profile, current)
        x_title = f"{feature} (reference v{version} quantile bins)"
    else:
        current = q.category_counts(view, feature, start, end)
        frame = charts.categorical_compare(feature_profile, current)
        x_title = feature
    rows = int(current["n"].sum()) if len(current) else 0
    if rows == 0:
        charts.empty(f"No values of `{feature}` in this window — pick another window.")
        return
    st.altair_chart(
        charts.histogram_compare(
            frame, f"{feature}: reference v{version} against {rows:,} rows of the window", x_title
        ),
        width="stretch",
    )


def _score(view: q.View) -> None:
    st.subheader("Score distribution")
    hist = q.score_histograms(view)
    if hist.empty or hist["n"].sum() == 0:
        charts.empty("No scored predictions in this range.")
        return
    hist = hist.assign(t=pd.to_datetime(hist["t"]))
    left, right = st.columns([3, 2])
    left.altair_chart(charts.score_heatmap(hist, view.step), width="stretch")
    version = _reference_version(view)
    profile = (
        q.reference_profile(view.registry, view.model, version, view.tick) if version else None
    )
    compare = charts.score_compare((profile or {}).get("score"), hist)
    title = f"Score: reference v{version} against the range" if profile else "Score in the range"
    right.altair_chart(
        charts.histogram_compare(compare, title, "score (bins of 0.05)"), width="stretch"
    )


def render(view: q.View) -> None:
    view = charts.need_model(view)
    if view is None:
        return
    _over_time(view)
    _histograms(view)
    _score(view)


charts.page("Drift", render)
