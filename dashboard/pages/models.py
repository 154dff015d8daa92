"""Models: versions, aliases, traffic split, lineage of online snapshots, the operator's
actions on a timeline, reference profiles."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import queries as q

K_MODEL = "lm_models_model"
K_PROFILE_VERSION = "lm_models_profile_version"
K_PROFILE_FEATURE = "lm_models_profile_feature"
NO_MODELS = (
    "No models registered yet — `lastmile demo-models` registers the demo models, "
    "`lastmile models register` your own."
)


def _profile_table(profile: dict) -> pd.DataFrame:
    rows = []
    for name, p in sorted((profile.get("features") or {}).items()):
        kind = charts.profile_kind(p)
        n = p.get("n", p.get("count"))
        missing = p.get("missing", 0) or 0
        total = (n or 0) + missing
        row = {
            "feature": name,
            "kind": kind,
            "rows": n,
            "missing": missing / total if total else math.nan,
        }
        if kind == "numeric":
            row.update({k: p.get(k) for k in ("mean", "std", "min", "max")})
            row["bins"] = max(len(p.get("edges") or []) - 1, 0)
        else:
            counts = p.get("counts") or p.get("frequencies") or {}
            row["bins"] = len(counts)
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
            row["top values"] = ", ".join(str(k) for k, _ in top)
        rows.append(row)
    return pd.DataFrame(rows)


def _actions(view: q.View, model: str) -> None:
    st.subheader("Actions")
    actions = q.model_actions(view, model)
    if actions.empty:
        st.caption(
            "The operator did nothing to this model in this range (alert rules with an "
            "`action:` in monitors/rules.yaml; `lastmile actions list`)."
        )
        return
    actions = actions.assign(ts=pd.to_datetime(actions["ts"]))
    timeline = (
        alt.Chart(actions, title="Actions timeline")
        .mark_point(filled=True, size=120)
        .encode(
            x=alt.X("ts:T", title="time (UTC)"),
            y=alt.Y("kind:N", title=None),
            color=alt.Color("outcome:N", scale=alt.Scale(domain=["done", "would", "skipped"])),
            tooltip=["ts:T", "message:N", "rule:N", "metric:N", "value:Q", "threshold:Q"],
        )
    )
    st.altair_chart(timeline, width="stretch")
    st.dataframe(
        actions[["ts", "kind", "outcome", "reason", "mode", "rule", "message", "actor"]],
        hide_index=True,
        width="stretch",
        column_config={
            "ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss")
        },
    )


def _profiles(view: q.View, model: str, versions: pd.DataFrame) -> None:
    st.subheader("Reference profiles")
    numbers = [int(v) for v in versions["version"]]
    if st.session_state.get(K_PROFILE_VERSION) not in numbers:
        st.session_state[K_PROFILE_VERSION] = numbers[-1]
    version = st.selectbox("Version", numbers, key=K_PROFILE_VERSION, format_func=lambda v: f"v{v}")
    profile = q.reference_profile(view.registry, model, version, view.tick)
    if not profile or not profile.get("features"):
        charts.empty(
            f"No reference profile for {model} v{version} in the registry at "
            f"`{view.registry}` (register it with reference rows)."
        )
        return
    st.caption(f"Profiled on {int(profile.get('n') or profile.get('rows') or 0):,} training rows.")
    formats = {
        k: st.column_config.NumberColumn(format="%.4g") for k in ("mean", "std", "min", "max")
    }
    st.dataframe(
        _profile_table(profile),
        hide_index=True,
        width="stretch",
        column_config={"missing": st.column_config.NumberColumn(format="percent"), **formats},
    )
    features = sorted(profile["features"])
    if st.session_state.get(K_PROFILE_FEATURE) not in features:
        st.session_state[K_PROFILE_FEATURE] = features[0]
    feature = st.selectbox("Feature", features, key=K_PROFILE_FEATURE)
    st.altair_chart(charts.reference_shape(profile["features"][feature], feature), width="stretch")


def render(view: q.View) -> None:
    catalog = q.models(view.db, view.registry, view.tick)
    if not catalog:
        charts.empty(NO_MODELS)
        return
    names = list(catalog)
    wanted = view.model if view.model in names else names[0]
    if st.session_state.get(K_MODEL) not in names or view.model:
        st.session_state[K_MODEL] = wanted
    model = st.selectbox(
        "Model",
        names,
        key=K_MODEL,
        disabled=bool(view.model),
        help="The sidebar's model, when one is picked there.",
    )
    versions = q.model_versions(view, model)
    if versions.empty:
        charts.empty(
            f"{model} has predictions but no registered versions in ClickHouse or "
            f"the registry at `{view.registry}`."
        )
        return
    aliases = {a: int(r.version) for r in versions.itertuples() for a in r.aliases}
    shadow = [int(r.version) for r in versions.itertuples() if r.is_shadow]
    cols = st.columns(4)
    cols[0].metric("Versions", f"{len(versions)}")
    cols[1].metric("Champion", f"v{aliases['champion']}" if "champion" in aliases else "none")
    cols[2].metric("Challenger", f"v{aliases['challenger']}" if "challenger" in aliases else "none")
    cols[3].metric("Shadow", f"v{shadow[0]}" if shadow else "none")
    st.caption(
        f"Source: {versions['source'].iloc[0]} "
        "(ClickHouse `model_versions`, fed by models.events; else the registry on disk)."
    )

    table = versions.assign(
        aliases=[", ".join(a) for a in versions["aliases"]],
        metrics=[
            ", ".join(
                f"{k} {v:.3g}" if isinstance(v, int | float) else f"{k} {v}"
                for k, v in (m or {}).items()
            )
            for m in versions["metrics"]
        ],
        snapshot=[q.is_learner(w) for w in versions["registered_by"]],
    )
    st.dataframe(
        table[
            [
                "version",
                "aliases",
                "is_shadow",
                "retired",
                "parent",
                "created_at",
                "registered_by",
                "snapshot",
                "flavor",
                "task",
                "metrics",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "is_shadow": st.column_config.CheckboxColumn("shadow"),
            "snapshot": st.column_config.CheckboxColumn("online snapshot"),
            "created_at": st.column_config.DatetimeColumn(
                "registered (UTC)", format="YYYY-MM-DD HH:mm"
            ),
        },
    )
    left, right = st.columns([2, 3])
    with left:
        split = versions["split"].iloc[0] or {}
        if split:
            st.altair_chart(charts.split_bars(dict(split)), width="stretch")
        else:
            st.caption("No traffic split: the champion answers every request.")
    with right:
        st.markdown("**Lineage** (parent → child; orange: online snapshots by the learner)")
        st.graphviz_chart(charts.lineage_dot(versions), width="content")
    _actions(view, model)
    _profiles(view, model, versions)


charts.page("Models", render)
