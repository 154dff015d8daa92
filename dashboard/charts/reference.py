"""Reference profiles (a version's drift baseline) against the current window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

from dashboard.charts.style import HEIGHT


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
