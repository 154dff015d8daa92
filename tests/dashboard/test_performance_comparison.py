"""The Performance page draws the monitor's comparison: the lift with its always-valid
band over time, and the latest decision (AppTest against the session's ClickHouse)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from test_dashboard import Filled, charts_of, make_database, metrics, render, title_of, use

from streams.storage import db

__all__ = ["use"]  # the fixture, imported for the tests below

LIFT_TITLE = "Lift over the champion, with its always-valid band (alpha 0.05)"


@pytest.fixture(scope="module")
def compared(clickhouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """The synthetic run, plus 20 windows of fraud's challenger (v2) comparison: the
    band narrows around a lift of 0.03 until it leaves 0 behind in the last 5 windows;
    the first window has no bounds yet (too few outcomes)."""
    filled = make_database(clickhouse, True, tmp_path_factory.mktemp("compared"))
    end = filled.run.end.replace(tzinfo=None)
    rows = []
    for i in range(20):
        t = end - dt.timedelta(minutes=20 - i)
        n = 200 * (i + 1)
        half = 0.12 / (1 + i) ** 0.5
        values = {"lift": 0.03, "comparison_decision": 1.0 if half < 0.03 else 0.0}
        if i:
            values |= {"lift_lower": 0.03 - half, "lift_upper": 0.03 + half}
        for metric, value in values.items():
            rows.append(["fraud", 2, "", metric, "", value, n, t - dt.timedelta(minutes=1), t, t])
    client = db.connect(filled.settings)
    try:
        client.insert(
            "metrics",
            rows,
            column_names=["model", "version", "segment", "metric", "feature", "value", "n",
                          "window_start", "window_end", "ts"],
        )  # fmt: skip
    finally:
        client.close()
    return filled


def chart_data(at: Any, title: str) -> pd.DataFrame:
    """The frame the chart titled `title` drew its lift from (Streamlit sends the data
    beside the spec, as Arrow)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    nodes = [n for n in at.get("vega_lite_chart") if title_of(json.loads(n.proto.spec)) == title]
    assert len(nodes) == 1
    frames = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in nodes[0].proto.datasets]
    return next(f for f in frames if "lift" in f.columns)


def test_lift_band_and_decision_are_drawn(compared: Filled, use: Callable) -> None:
    use(compared)
    at = render(compared, "performance", model="fraud")
    decisions = {k: v for k, v in metrics(at).items() if k.startswith("Decision · ")}
    assert len(decisions) == 1
    label, value = next(iter(decisions.items()))
    assert "v2" in label and "challenger" in label and value == "challenger better"
    frame = chart_data(at, LIFT_TITLE)
    assert len(frame) == 20 and (frame["lift"] == 0.03).all()
    # The first window had no bounds: drawn without a band, not as a band at 0.
    first = frame.sort_values("t").iloc[0]
    assert pd.isna(first["lower"]) and pd.isna(first["upper"])
    widths = (frame["upper"] - frame["lower"]).dropna()
    assert widths.is_monotonic_decreasing
    assert set(frame["decided"]) == {"undecided", "challenger better"}


def test_no_comparison_says_how_to_get_one(compared: Filled, use: Callable) -> None:
    use(compared)
    at = render(compared, "performance", model="churn")
    assert any("No comparison yet" in i.value for i in at.info)
    assert not [s for s in charts_of(at) if title_of(s) == LIFT_TITLE]
