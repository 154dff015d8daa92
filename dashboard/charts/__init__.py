"""How the dashboard looks: the frame every page renders in (sidebar pickers, links'
query parameters, the refreshing fragment), Altair charts with labelled axes and
units, number formats and empty states. The face of the package: one module per
concept (style, formats, page frame) or page (traffic, drift, performance, versions,
alerts, reference profiles).

Times in the frames are naive UTC; Vega-Lite shows a naive time as wall-clock
time, so axes read in UTC in every browser, as the sidebar says.
"""

from __future__ import annotations

from dashboard.charts.alerts import alert_spans, alert_timeline
from dashboard.charts.drift import drift_heatmap, histogram_compare, score_heatmap, threshold_lines
from dashboard.charts.formats import fmt_age, fmt_ms, fmt_rate, fmt_time, version_label
from dashboard.charts.page_frame import (
    FOCUS_AFTER,
    FOCUS_BEFORE,
    LINK_PARAMS,
    NO_PREDICTIONS,
    apply_link,
    empty,
    live,
    need_model,
    page,
    sidebar,
)
from dashboard.charts.performance import metric_lines, snapshot_timeline
from dashboard.charts.reference import (
    bin_labels,
    categorical_compare,
    numeric_compare,
    profile_kind,
    reference_counts,
    reference_shape,
    score_compare,
)
from dashboard.charts.style import HEIGHT, ROW_STEP, SEVERITY_COLORS, TIME_AXIS
from dashboard.charts.traffic import (
    count_bars_over_time,
    latency_lines,
    rate_area,
    share_area,
    stacked_bars,
)
from dashboard.charts.versions import lineage_dot, split_bars

__all__ = [
    "FOCUS_AFTER",
    "FOCUS_BEFORE",
    "HEIGHT",
    "LINK_PARAMS",
    "NO_PREDICTIONS",
    "ROW_STEP",
    "SEVERITY_COLORS",
    "TIME_AXIS",
    "alert_spans",
    "alert_timeline",
    "apply_link",
    "bin_labels",
    "categorical_compare",
    "count_bars_over_time",
    "drift_heatmap",
    "empty",
    "fmt_age",
    "fmt_ms",
    "fmt_rate",
    "fmt_time",
    "histogram_compare",
    "latency_lines",
    "lineage_dot",
    "live",
    "metric_lines",
    "need_model",
    "numeric_compare",
    "page",
    "profile_kind",
    "rate_area",
    "reference_counts",
    "reference_shape",
    "score_compare",
    "score_heatmap",
    "share_area",
    "sidebar",
    "snapshot_timeline",
    "split_bars",
    "stacked_bars",
    "threshold_lines",
    "version_label",
]
