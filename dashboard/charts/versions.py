"""Model version charts: the traffic split and the lineage graph."""

from __future__ import annotations

import altair as alt
import pandas as pd

from dashboard import queries as q
from dashboard.charts.formats import version_label
from dashboard.charts.style import ROW_STEP


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
