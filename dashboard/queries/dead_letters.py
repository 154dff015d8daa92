"""The dead letters page's queries: counts, common reasons, series and examples."""

from __future__ import annotations

import pandas as pd

from dashboard.queries.cache import cached
from dashboard.queries.connection import query_frame
from dashboard.queries.filters import BUCKET_SQL, MODEL_FILTER, TS_FILTER
from dashboard.queries.view import View


@cached
def dead_letter_counts(view: View) -> pd.DataFrame:
    """Dead letters in the range by stage and error type (replays collapsed: FINAL)."""
    return query_frame(
        view.db,
        "dead_letter_counts",
        f"""
        SELECT stage, error_type, count() AS n
        FROM dead_letters FINAL
        WHERE {TS_FILTER} AND {MODEL_FILTER}
        GROUP BY stage, error_type ORDER BY n DESC""",
        view.params(),
    )


@cached
def dead_letter_reasons(view: View) -> pd.DataFrame:
    """The most common reasons, digits folded so "offset 41" and "offset 42" group."""
    return query_frame(
        view.db,
        "dead_letter_reasons",
        f"""
        SELECT stage, error_type,
               replaceRegexpAll(left(error, 160), '[0-9]+', 'N') AS reason,
               count() AS n, max(ts) AS last_seen
        FROM dead_letters FINAL
        WHERE {TS_FILTER} AND {MODEL_FILTER}
        GROUP BY stage, error_type, reason ORDER BY n DESC LIMIT 25""",
        view.params(),
    )


@cached
def dead_letter_series(view: View) -> pd.DataFrame:
    return query_frame(
        view.db,
        "dead_letter_series",
        f"""
        SELECT {BUCKET_SQL.format(col="ts")} AS t, stage, count() AS n
        FROM dead_letters FINAL
        WHERE {TS_FILTER} AND {MODEL_FILTER}
        GROUP BY t, stage ORDER BY t""",
        view.params(),
    )


@cached
def dead_letter_examples(view: View, limit: int = 50) -> pd.DataFrame:
    """The latest dead letters, the original value cut to 300 characters of valid UTF-8."""
    return query_frame(
        view.db,
        "dead_letter_examples",
        f"""
        SELECT ts, stage, error_type, error, model, source_topic, source_partition,
               source_offset, worker, toValidUTF8(ifNull(original_key, '')) AS original_key,
               toValidUTF8(left(ifNull(original_value, ''), 300)) AS original_value
        FROM dead_letters FINAL
        WHERE {TS_FILTER} AND {MODEL_FILTER}
        ORDER BY ts DESC LIMIT {{limit:UInt32}}""",
        view.params(limit=limit),
    )
