"""The drift page's queries: the monitor's statistics and the feature and score
distributions of a window."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboard.queries.cache import cached
from dashboard.queries.connection import query_frame
from dashboard.queries.filters import BUCKET_SQL, MINUTES_FILTER, VERSION_FILTER
from dashboard.queries.view import View

# Drift statistics the monitor emits (monitors/report.py), with the direction of
# "worse" and the threshold to draw. The monitor's own decision is `drift` (0/1);
# the distance thresholds are its policy's (monitors/drift.py), PSI's the usual 0.2.
# Both spellings of the tests' names are listed (report.py writes ks_p_value and
# chi_square*, the design notes say ks_pvalue and chi2*): whichever arrives is shown.
DRIFT_STATISTICS: dict[str, tuple[str, str, float | None]] = {
    # name: (label, "above" | "below", threshold)
    "drift": ("drift decision (0/1)", "above", 0.5),
    "wasserstein": ("Wasserstein (normalised)", "above", 0.1),
    "jensen_shannon": ("Jensen-Shannon distance", "above", 0.1),
    "psi": ("PSI", "above", 0.2),
    "ks": ("KS statistic", "above", None),
    "ks_p_value": ("KS p-value", "below", 0.05),
    "ks_pvalue": ("KS p-value", "below", 0.05),
    "chi_square": ("chi-square statistic", "above", None),
    "chi2": ("chi-square statistic", "above", None),
    "chi_square_p_value": ("chi-square p-value", "below", 0.05),
    "chi2_pvalue": ("chi-square p-value", "below", 0.05),
}


@cached
def drift_statistics(view: View) -> list[str]:
    """The drift statistics the monitor reported for the model in the range."""
    frame = query_frame(
        view.db,
        "drift_statistics",
        f"""
        SELECT DISTINCT metric FROM metrics
        WHERE model = {{model:String}} AND has({{names:Array(String)}}, metric)
          AND window_start >= {{since:DateTime64(3, 'UTC')}}
          AND window_start < {{until:DateTime64(3, 'UTC')}} AND {VERSION_FILTER}""",
        view.params(names=list(DRIFT_STATISTICS)),
    )
    present = set(frame["metric"]) if len(frame) else set()
    return [name for name in DRIFT_STATISTICS if name in present]


@cached
def drift_matrix(view: View, statistic: str) -> pd.DataFrame:
    """One statistic per feature and chart bucket: worst, best and mean over the
    bucket's windows (and versions, when all are shown)."""
    return query_frame(
        view.db,
        "drift_matrix",
        f"""
        SELECT {BUCKET_SQL.format(col="window_start")} AS t, feature,
               max(value) AS hi, min(value) AS lo, avg(value) AS mean,
               count() AS windows, sum(n) AS n
        FROM metrics
        WHERE model = {{model:String}} AND metric = {{metric:String}} AND segment = ''
          AND window_start >= {{since:DateTime64(3, 'UTC')}}
          AND window_start < {{until:DateTime64(3, 'UTC')}} AND {VERSION_FILTER}
        GROUP BY t, feature ORDER BY feature, t""",
        view.params(metric=statistic),
    )


@cached
def drift_windows(view: View) -> pd.DataFrame:
    """The monitor's windows of the model in the range, newest first."""
    return query_frame(
        view.db,
        "drift_windows",
        f"""
        SELECT window_start, max(window_end) AS window_end, sum(n) AS n
        FROM metrics
        WHERE model = {{model:String}} AND metric = 'count' AND segment = ''
          AND window_start >= {{since:DateTime64(3, 'UTC')}}
          AND window_start < {{until:DateTime64(3, 'UTC')}} AND {VERSION_FILTER}
        GROUP BY window_start ORDER BY window_start DESC LIMIT 2000""",
        view.params(),
    )


@cached
def numeric_histogram(
    view: View, feature: str, edges: tuple[float, ...], start: dt.datetime, end: dt.datetime
) -> pd.DataFrame:
    """Counts of a numeric feature in [start, end) over the reference's bins.

    Bin 0 is underflow, 1..B the B = len(edges) - 1 bins (the last closed on the
    right), B + 1 overflow: the monitor's binning (monitors/sketches.bin_indices).
    Windows are in event time; the scored-time bound (ts, the sorting key) only
    prunes, with an hour of slack for events scored late.
    """
    frame = query_frame(
        view.db,
        "numeric_histogram",
        f"""
        SELECT if(x = {{last:Float64}}, {{nbins:UInt32}},
                  arrayCount(e -> e <= x, {{edges:Array(Float64)}})) AS bin,
               count() AS n
        FROM (
            SELECT features_num[{{feature:String}}] AS x FROM predictions
            WHERE model = {{model:String}} AND {VERSION_FILTER}
              AND ts >= {{start:DateTime64(3, 'UTC')}}
              AND ts < {{end:DateTime64(3, 'UTC')}} + INTERVAL 1 HOUR
              AND event_time >= {{start:DateTime64(3, 'UTC')}}
              AND event_time < {{end:DateTime64(3, 'UTC')}}
              AND mapContains(features_num, {{feature:String}})
        )
        GROUP BY bin ORDER BY bin""",
        view.params(
            feature=feature,
            edges=list(edges),
            last=edges[-1],
            nbins=len(edges) - 1,
            start=start,
            end=end,
        ),
    )
    return frame


@cached
def category_counts(view: View, feature: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Counts of a categorical feature's values in [start, end), the 50 most common."""
    return query_frame(
        view.db,
        "category_counts",
        f"""
        SELECT features_cat[{{feature:String}}] AS category, count() AS n
        FROM predictions
        WHERE model = {{model:String}} AND {VERSION_FILTER}
          AND ts >= {{start:DateTime64(3, 'UTC')}}
          AND ts < {{end:DateTime64(3, 'UTC')}} + INTERVAL 1 HOUR
          AND event_time >= {{start:DateTime64(3, 'UTC')}}
          AND event_time < {{end:DateTime64(3, 'UTC')}}
          AND mapContains(features_cat, {{feature:String}})
        GROUP BY category ORDER BY n DESC LIMIT 50""",
        view.params(feature=feature, start=start, end=end),
    )


@cached
def score_histograms(view: View) -> pd.DataFrame:
    """The score's 20-bin histogram per chart bucket (bin i: [i/20, (i+1)/20))."""
    frame = query_frame(
        view.db,
        "score_histograms",
        f"""
        SELECT {BUCKET_SQL.format(col="minute")} AS t, sumMap(score_hist) AS hist
        FROM predictions_1m
        WHERE {MINUTES_FILTER} AND model = {{model:String}} AND {VERSION_FILTER}
        GROUP BY t ORDER BY t""",
        view.params(),
    )
    rows = []
    for r in frame.itertuples():
        total = sum(r.hist.values()) or 1
        for b in range(20):
            count = int(r.hist.get(b, 0))
            rows.append(
                {
                    "t": r.t,
                    "bin": b,
                    "score_from": b / 20,
                    "score_to": (b + 1) / 20,
                    "n": count,
                    "share": count / total,
                }
            )
    return pd.DataFrame(rows, columns=["t", "bin", "score_from", "score_to", "n", "share"])
