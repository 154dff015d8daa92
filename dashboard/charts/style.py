"""What every chart shares: the time axis, severity colours, sizes and bucket ends.

Times in the frames are naive UTC; Vega-Lite shows a naive time as wall-clock
time, so axes read in UTC in every browser, as the sidebar says.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

# Bucketing keeps frames small; this only stops Altair refusing an unusual one.
alt.data_transformers.disable_max_rows()

TIME_AXIS = alt.Axis(title="time (UTC)", format="%H:%M", labelOverlap=True)
SEVERITY_COLORS = alt.Scale(
    domain=["info", "warning", "critical"], range=["#4c78a8", "#f58518", "#e45756"]
)
HEIGHT = 300
ROW_STEP = 24


def time_bounds(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    out = frame.copy()
    out["t_end"] = pd.to_datetime(out["t"]) + pd.Timedelta(seconds=step)
    return out
