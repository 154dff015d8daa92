"""How the dashboard looks: the frame every page renders in (sidebar pickers, links'
query parameters, the refreshing fragment), Altair charts with labelled axes and
units, number formats and empty states.

Times in the frames are naive UTC; Vega-Lite shows a naive time as wall-clock
time, so axes read in UTC in every browser, as the sidebar says.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import queries as q

# Bucketing keeps frames small; this only stops Altair refusing an unusual one.
alt.data_transformers.disable_max_rows()

TIME_AXIS = alt.Axis(title="time (UTC)", format="%H:%M", labelOverlap=True)
SEVERITY_COLORS = alt.Scale(
    domain=["info", "warning", "critical"], range=["#4c78a8", "#f58518", "#e45756"]
)
HEIGHT = 300
ROW_STEP = 24


# ------------------------------------------------------------------------- formats


def fmt_rate(per_second: float) -> str:
    """A rate for a metric tile: about 3 significant digits.

    >>> [fmt_rate(x) for x in (0, 0.012345, 2.5, 123.456, 12345.6)]
    ['0', '0.0123', '2.50', '123', '12.3k']
    """
    if per_second == 0 or not math.isfinite(per_second):
        return "0" if per_second == 0 else "–"
    if per_second >= 10_000:
        return f"{per_second / 1000:.3g}k"
    if per_second >= 100:
        return f"{per_second:.0f}"
    return f"{per_second:.3g}" if per_second < 1 else f"{per_second:.2f}"


def fmt_ms(ms: float) -> str:
    """Milliseconds for people.

    >>> [fmt_ms(x) for x in (0.42, 12.345, 1530.0, float("nan"))]
    ['0.42 ms', '12.3 ms', '1.53 s', '–']
    """
    if not math.isfinite(ms):
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.3g} s"
    return f"{ms:.3g} ms"


def fmt_time(t: Any) -> str:
    if t is None or (isinstance(t, float) and math.isnan(t)) or pd.isna(t):
        return "–"
    return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M UTC")


def fmt_age(seconds: float) -> str:
    """A duration for people.

    >>> [fmt_age(s) for s in (5, 125, 7300, 200000)]
    ['5 s', '2 min', '2.0 h', '2.3 d']
    """
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def version_label(version: int, aliases: Sequence[str] = (), shadow: bool = False) -> str:
    """A version with its aliases; version 0 is the monitor's "all versions".

    >>> version_label(3, ["champion"]), version_label(0)
    ('v3 (champion)', 'all versions')
    """
    if version == 0:
        return "all versions"
    tags = list(aliases) + (["shadow"] if shadow else [])
    return f"v{version}" + (f" ({', '.join(tags)})" if tags else "")


# --------------------------------------------------------------------- page frame

# Query parameters a link may carry (alerts link to the drift view "at" a moment).
LINK_PARAMS = ("model", "version", "from", "to", "at", "feature", "statistic")
FOCUS_BEFORE = dt.timedelta(hours=1)
FOCUS_AFTER = dt.timedelta(minutes=30)


def apply_link(params: dict[str, str]) -> None:
    """Take over a link's query parameters into the shared state, once per link:
    afterwards the sidebar is the user's again, even while the URL still carries them."""
    given = {k: params[k] for k in LINK_PARAMS if params.get(k)}
    signature = tuple(sorted(given.items()))
    if not given or st.session_state.get("lm_link") == signature:
        return
    st.session_state["lm_link"] = signature
    state = st.session_state
    if "model" in given:
        state[q.K_MODEL] = given["model"]
    if "version" in given:
        try:
            state[q.K_VERSION] = int(given["version"])
        except ValueError:
            state[q.K_VERSION] = q.ALL_VERSIONS
    at = q.parse_time(given.get("at"))
    start, end = q.parse_time(given.get("from")), q.parse_time(given.get("to"))
    if at is not None:
        state[q.K_FOCUS] = at
        start, end = start or at - FOCUS_BEFORE, end or at + FOCUS_AFTER
    if start is not None or end is not None:
        now = dt.datetime.now(q.UTC)
        start = start or (end or now) - dt.timedelta(hours=1)
        end = min(end or now, max(now, start + dt.timedelta(minutes=1)))
        state[q.K_RANGE] = "Custom"
        # The datetime widgets take naive values; the sidebar says they are UTC.
        state[q.K_FROM] = start.replace(tzinfo=None)
        state[q.K_TO] = end.replace(tzinfo=None)
    if "feature" in given:
        state[q.K_FEATURE] = given["feature"]
    if "statistic" in given:
        state["lm_drift_statistic"] = given["statistic"]


def _keep(key: str, options: list, default: object) -> None:
    """A widget's state must be one of its options (a model may be gone by now)."""
    if st.session_state.get(key, default) not in options:
        st.session_state[key] = default if default in options else options[0]
    else:
        st.session_state.setdefault(key, default)


def sidebar() -> None:
    """The pickers every page shares. Their widget keys are the session-state keys
    queries.current_view() reads, so a choice carries over from page to page."""
    state = st.session_state
    state.setdefault(q.K_NONCE, 0)
    _keep(q.K_RANGE, list(q.RANGE_CHOICES), q.DEFAULT_RANGE)
    _keep(q.K_REFRESH, list(q.REFRESH_CHOICES), q.DEFAULT_REFRESH)
    s = q.settings()
    db = q.Db.from_settings(s)
    with st.sidebar:
        st.markdown("## lastmile")
        try:
            catalog = q.models(db, s.registry_location, q.current_tick())
        except q.StoreUnavailable as err:
            st.error(str(err))
            catalog = {}
        model_options = [q.ALL_MODELS, *catalog]
        _keep(q.K_MODEL, model_options, q.ALL_MODELS)
        model = st.selectbox(
            "Model",
            model_options,
            key=q.K_MODEL,
            format_func=lambda m: m or "All models",
        )
        version_options = [q.ALL_VERSIONS, *catalog.get(model, [])]
        _keep(q.K_VERSION, version_options, q.ALL_VERSIONS)
        st.selectbox(
            "Version",
            version_options,
            key=q.K_VERSION,
            format_func=lambda v: "All versions" if v < 0 else f"v{v}",
            disabled=not model,
        )
        choice = st.selectbox("Time range", list(q.RANGE_CHOICES), key=q.K_RANGE)
        if choice == "Custom":
            now = dt.datetime.now(q.UTC).replace(tzinfo=None, second=0, microsecond=0)
            state.setdefault(q.K_FROM, now - dt.timedelta(hours=1))
            state.setdefault(q.K_TO, now)
            st.datetime_input("From (UTC)", key=q.K_FROM, step=dt.timedelta(minutes=1))
            st.datetime_input("To (UTC)", key=q.K_TO, step=dt.timedelta(minutes=1))
        left, right = st.columns([3, 2], vertical_alignment="bottom")
        left.selectbox("Refresh every", list(q.REFRESH_CHOICES), key=q.K_REFRESH)
        if right.button("Refresh", help="Fetch everything again now"):
            state[q.K_NONCE] += 1
        since, until = q.resolve_range(choice, state.get(q.K_FROM), state.get(q.K_TO))
        st.caption(
            f"{since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC  \nClickHouse `{db.label}`"
        )


def page(title: str, render: Callable[[q.View], None]) -> None:
    """A page's entry point: its title, then its body refreshing in a fragment.

    Normally app.py has already gated the session and drawn the sidebar. But a
    ``pages/`` directory beside the entry point makes Streamlit run a page file on
    its own until something calls st.navigation (a server's first request for
    /drift, and every page run under AppTest): then the page draws the frame itself,
    password gate first.
    """
    from streamlit.runtime.pages_manager import PagesManager

    from dashboard import auth

    if PagesManager.uses_pages_directory:
        st.set_page_config(page_title="lastmile", layout="wide")
        if not auth.signed_in(q.settings().dashboard_password):
            auth.login_form(q.settings().dashboard_password or "")
            st.stop()
        apply_link(st.query_params.to_dict())
        sidebar()
    st.title(title)
    live(render)


# ------------------------------------------------------------------- page body


def empty(message: str) -> None:
    """An empty state that says what to do."""
    st.info(message, icon=":material/info:")


NO_PREDICTIONS = (
    "No predictions yet — run `lastmile simulate` (or `lastmile up --demo`) "
    "to send traffic, then come back."
)


def live(render: Callable[[q.View], None]) -> None:
    """Run a page's body in a fragment that reruns itself every refresh interval.

    Only the fragment is redrawn, not the page: no flicker, and the sidebar keeps
    its state. The view is resolved inside, so a relative range moves with time.
    """

    @st.fragment(run_every=q.refresh_seconds())
    def body() -> None:
        try:
            view = q.current_view()
            render(view)
            st.caption(f"Data as of {dt.datetime.now(q.UTC):%H:%M:%S} UTC from `{view.db.label}`")
        except q.StoreUnavailable as err:
            st.error(str(err), icon=":material/cloud_off:")

    body()


def need_model(view: q.View) -> q.View | None:
    """Pages about one model: the sidebar's, or the first one there is (said so)."""
    if view.model:
        return view
    names = list(q.models(view.db, view.registry, view.tick))
    if not names:
        empty(NO_PREDICTIONS)
        return None
    st.caption(f"Showing model **{names[0]}** — pick another in the sidebar.")
    return view.with_model(names[0])


# -------------------------------------------------------------------------- charts


def _time_bounds(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    out = frame.copy()
    out["t_end"] = pd.to_datetime(out["t"]) + pd.Timedelta(seconds=step)
    return out


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


def drift_heatmap(
    frame: pd.DataFrame, step: int, title: str, direction: str, threshold: float | None
) -> alt.Chart:
    """Features by time, coloured by the statistic: darker is worse (for p-values,
    smaller is worse). Cells across the threshold are outlined."""
    data = _time_bounds(frame, step)
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
    data = _time_bounds(frame, step)
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
    data = _time_bounds(frame, step)
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


def split_bars(split: dict[str, float], title: str = "Traffic split") -> alt.Chart:
    total = sum(split.values()) or 1.0
    data = pd.DataFrame({"alias": list(split), "weight": [w / total for w in split.values()]})
    return (
        alt.Chart(data, height=alt.Step(ROW_STEP + 4), title=title)
        .mark_bar()
        .encode(
            x=alt.X(
                "weight:Q",
                title="share of requests",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            y=alt.Y("alias:N", title=None),
            color=alt.Color("alias:N", legend=None),
            tooltip=["alias:N", alt.Tooltip("weight:Q", format=".0%")],
        )
    )


def lineage_dot(versions: pd.DataFrame) -> str:
    """Graphviz DOT of parent -> child; learner snapshots drawn apart from the rest."""
    lines = [
        "digraph lineage {",
        '  rankdir=LR; node [shape=box, style="rounded,filled", fontname="sans-serif",'
        ' fontsize=11, fillcolor="#eef3fb", color="#4c78a8"];',
    ]
    for r in versions.itertuples():
        label = version_label(int(r.version), list(r.aliases), bool(r.is_shadow))
        who = str(r.registered_by or "?").replace('"', "'")
        fill = "#fde9d9" if q.is_learner(r.registered_by) else "#eef3fb"
        style = "rounded,filled,dashed" if r.retired else "rounded,filled"
        lines.append(
            f'  v{int(r.version)} [label="{label}\\n{who}", fillcolor="{fill}", style="{style}"];'
        )
    known = {int(v) for v in versions["version"]}
    for r in versions.itertuples():
        if r.parent is not None and not pd.isna(r.parent) and int(r.parent) in known:
            lines.append(f"  v{int(r.parent)} -> v{int(r.version)};")
    lines.append("}")
    return "\n".join(lines)


# ------------------------------------------------------------- reference profiles


def profile_kind(profile: dict[str, Any]) -> str:
    """ "numeric" or "categorical", for a monitors.profile feature profile and for the
    registry's minimal stand-in (``type``: number / string / bool)."""
    kind = profile.get("kind")
    if kind in ("numeric", "categorical"):
        return kind
    return "numeric" if profile.get("type") == "number" else "categorical"


def reference_counts(profile: dict[str, Any]) -> tuple[list[float], list[float]]:
    """A numeric profile's edges and its counts per cell: underflow, the bins, overflow.

    >>> reference_counts({"kind": "numeric", "edges": [0, 1, 2], "counts": [0, 5, 5, 0]})
    ([0.0, 1.0, 2.0], [0.0, 5.0, 5.0, 0.0])
    >>> reference_counts({"type": "number", "edges": [0, 1, 2], "fractions": [0.25, 0.75]})
    ([0.0, 1.0, 2.0], [0.0, 0.25, 0.75, 0.0])
    """
    edges = [float(e) for e in profile.get("edges") or []]
    if "counts" in profile:
        counts = [float(c) for c in profile["counts"]]
    else:
        counts = [0.0] + [float(f) for f in profile.get("fractions") or []] + [0.0]
    if len(counts) != len(edges) + 1:
        counts = (counts + [0.0] * (len(edges) + 1))[: len(edges) + 1]
    return edges, counts


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the cells of :func:`reference_counts`.

    >>> bin_labels([0, 1.5, 20])
    ['< 0', '0 – 1.5', '1.5 – 20', '> 20']
    """

    def g(x: float) -> str:
        return f"{x:.3g}"

    inner = [f"{g(a)} – {g(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return [f"< {g(edges[0])}", *inner, f"> {g(edges[-1])}"]


def numeric_compare(
    profile: dict[str, Any], current: pd.DataFrame
) -> tuple[pd.DataFrame, list[float]]:
    """Reference and current shares per reference bin (current: bin, n)."""
    edges, ref = reference_counts(profile)
    labels = bin_labels(edges)
    cur = [0.0] * len(labels)
    for r in current.itertuples():
        if 0 <= int(r.bin) < len(cur):
            cur[int(r.bin)] = float(r.n)
    rows = []
    for source, counts in (("reference", ref), ("current", cur)):
        total = sum(counts) or 1.0
        for i, (label, n) in enumerate(zip(labels, counts, strict=True)):
            rows.append({"bin": i, "label": label, "source": source, "n": n, "share": n / total})
    frame = pd.DataFrame(rows)
    # Under/overflow cells empty on both sides only add noise.
    keep = frame.groupby("bin")["n"].transform("sum") > 0
    inner = frame["bin"].between(1, len(labels) - 2)
    return frame[keep | inner], edges


def categorical_compare(profile: dict[str, Any], current: pd.DataFrame) -> pd.DataFrame:
    """Reference and current shares per category (current: category, n); categories
    the reference never saw are kept under their own name, marked "(unseen)"."""
    ref = {str(k): float(v) for k, v in (profile.get("counts") or {}).items()}
    if not ref and profile.get("frequencies"):
        ref = {str(k): float(v) for k, v in profile["frequencies"].items()}
    cur = {str(r.category): float(r.n) for r in current.itertuples()}
    names = list(ref) + [c for c in cur if c not in ref]
    rows = []
    for source, counts in (("reference", ref), ("current", cur)):
        total = sum(counts.values()) or 1.0
        for i, name in enumerate(names):
            label = name if name in ref else f"{name} (unseen)"
            n = counts.get(name, 0.0)
            rows.append({"bin": i, "label": label, "source": source, "n": n, "share": n / total})
    frame = pd.DataFrame(rows)
    return frame[frame.groupby("bin")["n"].transform("sum") > 0]


def score_compare(profile: dict[str, Any] | None, hist: pd.DataFrame) -> pd.DataFrame:
    """The reference score profile against the range's score on the rollup's 20 bins.

    The reference's quantile bins are spread onto the 20-bin grid assuming values are
    uniform inside each bin (its CDF is piecewise linear between the edges).
    """
    cur = hist.groupby("bin")["n"].sum().reindex(range(20), fill_value=0).astype(float)
    rows = []
    total = float(cur.sum()) or 1.0
    for b in range(20):
        rows.append(
            {
                "bin": b,
                "label": f"{b / 20:.2f}",
                "source": "current",
                "n": cur[b],
                "share": cur[b] / total,
            }
        )
    if profile:
        edges, counts = reference_counts(profile)
        inner = counts[1:-1]
        ref_total = sum(counts) or 1.0

        def cdf(x: float) -> float:
            acc = counts[0]
            for (a, b), n in zip(zip(edges[:-1], edges[1:], strict=True), inner, strict=True):
                if x >= b:
                    acc += n
                elif x > a:
                    acc += n * (x - a) / (b - a) if b > a else n
            if edges and x >= edges[-1]:
                acc += counts[-1]
            return acc / ref_total

        for b in range(20):
            upper = cdf((b + 1) / 20) if b < 19 else 1.0
            share = upper - (cdf(b / 20) if b else 0.0)
            rows.append(
                {
                    "bin": b,
                    "label": f"{b / 20:.2f}",
                    "source": "reference",
                    "n": share * ref_total,
                    "share": share,
                }
            )
    return pd.DataFrame(rows)


def reference_shape(profile: dict[str, Any], feature: str) -> alt.Chart:
    """A feature's reference distribution: density over the quantile bins for numbers
    (equal-frequency bins all hold ~10%, so their widths carry the shape), shares of
    the categories otherwise."""
    if profile_kind(profile) == "numeric":
        edges, counts = reference_counts(profile)
        total = sum(counts) or 1.0
        rows = [
            {"from": a, "to": b, "share": n / total, "density": n / total / (b - a)}
            for a, b, n in zip(edges[:-1], edges[1:], counts[1:-1], strict=True)
            if b > a
        ]
        return (
            alt.Chart(pd.DataFrame(rows), height=HEIGHT, title=f"{feature}: reference density")
            .mark_bar(color="#9ecae9", stroke="#4c78a8", strokeWidth=0.5)
            .encode(
                x=alt.X("from:Q", title=feature, scale=alt.Scale(zero=False)),
                x2="to:Q",
                y=alt.Y("density:Q", title="density (share per unit)"),
                tooltip=[
                    alt.Tooltip("from:Q", format=".4g"),
                    alt.Tooltip("to:Q", format=".4g"),
                    alt.Tooltip("share:Q", format=".1%"),
                ],
            )
        )
    frame = categorical_compare(profile, pd.DataFrame(columns=["category", "n"]))
    frame = frame[frame["source"] == "reference"]
    return (
        alt.Chart(frame, height=HEIGHT, title=f"{feature}: reference shares")
        .mark_bar(color="#9ecae9")
        .encode(
            x=alt.X("label:N", title=feature, sort="-y"),
            y=alt.Y("share:Q", title="share of rows", axis=alt.Axis(format="%")),
            tooltip=["label:N", alt.Tooltip("share:Q", format=".1%")],
        )
    )
